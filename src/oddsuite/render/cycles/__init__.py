"""The Cycles engine (Blender's path tracer): the main-process client (``engine``), the
file protocol it speaks with its worker (``protocol``), and ``blender/``, the worker
scripts that run in the separate Python that has ``bpy`` and are never imported here.
Imports render's own modules, scenes and odd only."""
from oddsuite.render.cycles.engine import CyclesEngine, cycles_python, cycles_unavailable, get_worker
from oddsuite.render.cycles.protocol import PROTOCOL, scene_document, write_scene

__all__ = ["CyclesEngine", "cycles_python", "cycles_unavailable", "get_worker", "PROTOCOL", "scene_document",
           "write_scene"]

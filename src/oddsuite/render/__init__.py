"""Rendering: the pyrender offscreen renderer (EGL) that turns a ``Scene`` and an
environment into a ``Frame`` (rgb, depth, instance ids, per-ROI boxes and visibility),
and the effects it applies (``effects``: one file per environment or sensor effect,
registered against its declaration in ``odd.effects``). It may import ``scenes`` and
``odd`` (and ``errors``), nothing above them."""
from oddsuite.render.renderer import Frame, ObjectStats, Renderer, get_renderer

__all__ = ["Frame", "ObjectStats", "Renderer", "get_renderer"]

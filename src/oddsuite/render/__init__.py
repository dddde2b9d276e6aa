"""Rendering: engines behind one interface (``engine``): the rasterizer (pyrender, EGL;
``renderer``) and Cycles (Blender, in its own worker process; ``cycles``), each turning a
``Scene`` and an environment into a ``Frame`` (rgb, depth, instance ids, per-ROI boxes and
visibility). Labels always come from the rasterizer's ID pass, so they are the same for
both engines. The effects (``effects``: one file per environment or sensor effect,
registered against its declaration in ``odd.effects``) set the scene state both engines
draw, and ``post.post_effects`` is the one place where any engine's final image leaves
the render step. It may import ``scenes`` and ``odd`` (and ``errors``), nothing above them."""
from oddsuite.render.engine import Engine, RasterEngine, get_engine
from oddsuite.render.post import post_effects
from oddsuite.render.renderer import Frame, ObjectStats, Renderer, get_renderer

__all__ = ["Engine", "Frame", "ObjectStats", "RasterEngine", "Renderer", "get_engine", "get_renderer", "post_effects"]

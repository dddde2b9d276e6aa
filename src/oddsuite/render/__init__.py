"""Render engines behind one interface (``engine``): the rasterizer (pyrender, EGL) and
Cycles (Blender, in its own worker process); image-space weather applied after either
(``weather``). Labels always come from the rasterizer's ID pass. Imports scenes and odd."""
from oddsuite.render.engine import Engine, RasterEngine, get_engine, post_effects
from oddsuite.render.renderer import Frame, ObjectStats, Renderer, get_renderer

__all__ = ["Engine", "Frame", "ObjectStats", "RasterEngine", "Renderer", "get_engine", "get_renderer", "post_effects"]

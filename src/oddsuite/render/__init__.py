"""pyrender offscreen renderer (EGL), lighting, depth-based fog, rain/snow/wet-road effects."""
from oddsuite.render.renderer import Frame, ObjectStats, Renderer, get_renderer

__all__ = ["Frame", "ObjectStats", "Renderer", "get_renderer"]

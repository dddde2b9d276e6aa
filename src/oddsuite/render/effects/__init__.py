"""Environment and sensor effects: one file per effect, each registered against its
declaration in ``odd.effects`` (dimensions, variant overrides, taxonomy bins) with
``implement``. A new effect is its ``declare(Effect(...))``, one file here, and one
import line below. ``scene_pass`` and ``image_pass`` run them for the renderer."""
from __future__ import annotations

from oddsuite.render.effects.registry import (IMPLEMENTATIONS, ImageContext, Implementation, SceneState, image_pass,
                                              implement, scene_pass, withdraw)

# the built-in effects (importing a file registers it): one line per effect
from oddsuite.render.effects import daylight, fog, headlights, rain, road_surface, shadows, snow  # noqa: E402,F401

__all__ = ["IMPLEMENTATIONS", "ImageContext", "Implementation", "SceneState", "image_pass", "implement",
           "scene_pass", "withdraw"]

"""Environment and sensor effects: one file per effect, each registered against its
declaration in ``odd.effects`` (dimensions, variant overrides, taxonomy bins) with
``implement``. A new effect is its ``declare(Effect(...))``, one file here, and one
import line below. ``scene_pass`` and ``image_pass`` run the environment's effects for the
renderer; ``apply_sensor`` (``sensor.py``) runs the camera's on every finished image."""
from __future__ import annotations

from oddsuite.render.effects.registry import (IMPLEMENTATIONS, SENSOR_STAGES, ImageContext, Implementation, SceneState,
                                              SensorContext, image_pass, implement, scene_pass, withdraw)

# the built-in effects (importing a file registers it): one line per effect
from oddsuite.render.effects import daylight, fog, headlights, rain, road_surface, shadows, snow  # noqa: E402,F401
from oddsuite.render.effects import defocus, exposure, jpeg, motion_blur, noise, tone_mapping, vignetting  # noqa: E402,F401
from oddsuite.render.effects.sensor import apply_sensor, noise_generator  # noqa: E402

__all__ = ["IMPLEMENTATIONS", "SENSOR_STAGES", "ImageContext", "Implementation", "SceneState", "SensorContext",
           "apply_sensor", "image_pass", "implement", "noise_generator", "scene_pass", "withdraw"]

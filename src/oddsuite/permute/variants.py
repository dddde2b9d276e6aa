"""Environment variant expansion: a scene's sampled environment with a variant's overrides."""
from __future__ import annotations

from typing import Any

from oddsuite.scenes.scene import Scene

#: the environment keys a variant may override
OVERRIDABLE = ("sun_elevation_deg", "sun_azimuth_deg", "cloud_cover", "fog_visibility_m", "rain_mm_h",
               "snow_mm_h", "road_surface", "shadows", "headlights")

def environment_of(scene: Scene, variant: Any = None) -> dict[str, Any]:
    """The environment in effect: the scene's sampled values with the variant's overrides."""
    env = dict(scene.params.environment)
    env["road_surface"] = scene.params.scenery["road_surface"]
    env["shadows"] = True
    env["headlights"] = None
    if variant is not None:
        for k in OVERRIDABLE:
            v = getattr(variant, k)
            if v is not None:
                env[k] = v
    if env["headlights"] is None:
        env["headlights"] = env["sun_elevation_deg"] < 0
    return env

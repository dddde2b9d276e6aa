"""Daylight: the sun's direction and strength, sky light and sky colour from the sun's
elevation and azimuth and the cloud cover. The one daylight formula of oddsuite: the
renderer's lights and the image effects' brightness (``light_level``) both come from here."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from oddsuite.odd.effects import DAYLIGHT
from oddsuite.render.effects.registry import SceneState, implement


def day_factor(sun_elevation_deg: float) -> float:
    """0 with the sun below −6° (civil twilight), 1 above 10°, linear between."""
    return float(np.clip((sun_elevation_deg + 6) / 16, 0, 1))


def light_level(env: dict[str, Any]) -> float:
    """How bright the scene is, 0.08 (night) to 0.8 (clear day): fog airlight, the
    brightness of rain streaks and snowflakes."""
    day = day_factor(env["sun_elevation_deg"])
    return 0.08 + 0.72 * day * (1 - 0.3 * float(env["cloud_cover"]))


def scene(state: SceneState, env: dict[str, Any]) -> None:
    el, az = math.radians(env["sun_elevation_deg"]), math.radians(env["sun_azimuth_deg"])
    cloud = float(env["cloud_cover"])
    state.sun_to = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    day = day_factor(env["sun_elevation_deg"])
    state.day, state.cloud = day, cloud
    warm = float(np.clip(1 - env["sun_elevation_deg"] / 15, 0, 1))  # low sun is orange
    state.sun_intensity = 4.0 * math.sqrt(max(math.sin(el), 0.0)) * (1 - 0.8 * cloud)
    state.sun_color = np.array([1.0, 1 - 0.25 * warm, 1 - 0.5 * warm])
    amb = 0.04 + 0.5 * day * (0.6 + 0.4 * cloud)
    state.ambient = np.array([amb, amb, amb * (1.05 + 0.1 * (1 - day))])
    sky_day = np.array([0.55, 0.7, 0.92]) * (1 - cloud) + np.array([0.72, 0.74, 0.76]) * cloud
    sky_dusk = np.array([0.85, 0.55, 0.35])
    sky_night = np.array([0.02, 0.03, 0.07])
    sky = sky_day * day + sky_night * (1 - day)
    state.sky = sky * (1 - 0.6 * warm * day) + sky_dusk * 0.6 * warm * day


implement(DAYLIGHT, scene=scene, order=0)

"""Shadows: the sun casts shadows when the spec allows it and the sun is more than 1° up
(the renderer draws them only with scenery: isolate renders have nothing to fall on)."""
from __future__ import annotations

from typing import Any

from oddsuite.odd.effects import SHADOWS
from oddsuite.render.effects.registry import SceneState, implement


def scene(state: SceneState, env: dict[str, Any]) -> None:
    state.shadows = bool(env.get("shadows", True)) and env["sun_elevation_deg"] > 1


implement(SHADOWS, scene=scene, order=20)

"""Headlights: the ego vehicle's two low beams (spot lights at the camera's height)."""
from __future__ import annotations

from typing import Any

from oddsuite.odd.effects import HEADLIGHTS
from oddsuite.render.effects.registry import SceneState, implement

#: intensity of each low beam when on
BEAM = 120.0


def scene(state: SceneState, env: dict[str, Any]) -> None:
    state.headlights = BEAM if env["headlights"] else 0.0


implement(HEADLIGHTS, scene=scene, order=10)

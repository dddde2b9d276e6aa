"""Road surface: the road's base colour, metallic and roughness under each surface state;
a snowy road also covers the lane markings and the terrain."""
from __future__ import annotations

from typing import Any

from oddsuite.odd.effects import ROAD_SURFACE
from oddsuite.render.effects.registry import SceneState, implement

SURFACES = {  # base colour, metallic, roughness of the road under each surface state
    "dry": ((0.22, 0.22, 0.23), 0.0, 0.9),
    "wet": ((0.10, 0.10, 0.11), 0.25, 0.18),
    "icy": ((0.42, 0.46, 0.52), 0.1, 0.06),
    "snow": ((0.88, 0.89, 0.92), 0.0, 0.95),
}
#: the colour of snow lying on markings and terrain
SNOW_COVER = SURFACES["snow"][0]


def scene(state: SceneState, env: dict[str, Any]) -> None:
    state.road = SURFACES[env["road_surface"]]
    state.road_state = env["road_surface"]
    if env["road_surface"] == "snow":
        state.markings_cover = state.terrain_cover = SNOW_COVER


implement(ROAD_SURFACE, scene=scene, order=30)

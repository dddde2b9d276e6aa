"""Where an engine's image leaves the render step: ``post_effects``.

Every image oddsuite writes passes through ``post_effects`` last, whichever engine drew
it: the rasterizer (``Renderer.render``), Cycles (``CyclesEngine.render``) and the layer
composite of remove subsets (``permute.CompositeRenderer.frame``). It runs the image
stage of the declared effects (``render.effects.image_pass``: fog by Koschmieder's law on
the frame's depth, rain, snow, in their registered order), so a visibility in metres or a
rain rate means the same thing for every engine. A post-pass on the final image (a camera
sensor model, say) is one call added here. Imports ``render.effects`` only.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from oddsuite.render.effects import image_pass


def post_effects(rgb: np.ndarray, depth: np.ndarray, env: dict[str, Any], camera: Any,
                 rng: Optional[np.random.Generator] = None, isolate: bool = False) -> np.ndarray:
    """The final image of a frame from an engine's clean HxWx3 uint8 ``rgb``, given the
    frame's ``depth`` (HxW metres along the view axis, 0 where nothing is hit), its
    environment ``env``, its ``camera`` (``scenes.CameraSetup``: the intrinsics), the
    scene's weather Generator ``rng`` (needed when an effect draws: rain, snow; ValueError
    otherwise) and ``isolate`` (no scenery: ROIs on the neutral background). Returns a new
    HxWx3 uint8 array."""
    return image_pass(rgb, depth, env, camera, rng, isolate=isolate)


__all__ = ["post_effects"]

"""Vignetting: a lens lets less light reach the image corners than its centre. Natural
vignetting falls off as cos⁴ of the field angle θ (Ray, *Applied Photographic Optics*,
the cosine-fourth law); lens data sheets state the result as the relative
illumination at the corner. Here ``vignetting`` is the light lost at the farthest corner
(1 − relative illumination) and the falloff between centre and corner has the cos⁴ shape
of this camera's own field angles (from its intrinsics):
``gain = 1 − v · (1 − cos⁴θ) / (1 − cos⁴θ_corner)``."""
from __future__ import annotations

import numpy as np

from oddsuite.odd.effects import VIGNETTING
from oddsuite.render.effects.registry import SensorContext, implement


def falloff(height: int, width: int, K: np.ndarray, strength: float) -> np.ndarray:
    """HxW float32 gain: 1 at the principal point, ``1 − strength`` at the farthest corner."""
    u = (np.arange(width) + 0.5 - K[0, 2]) / K[0, 0]
    v = (np.arange(height) + 0.5 - K[1, 2]) / K[1, 1]
    tan2 = u[None, :] ** 2 + v[:, None] ** 2
    loss = 1 - 1 / (1 + tan2) ** 2  # 1 − cos⁴θ, with cos²θ = 1 / (1 + tan²θ)
    corner = float(loss.max())
    return (1 - strength * loss / corner).astype(np.float32) if corner > 0 else np.ones_like(loss, np.float32)


def sensor(x: np.ndarray, ctx: SensorContext) -> np.ndarray:
    v = float(ctx.value("vignetting"))
    if v <= 0:
        return x
    return x * falloff(x.shape[0], x.shape[1], ctx.intrinsics, v)[..., None]


implement(VIGNETTING, sensor=sensor, stage="optics", order=220)

"""A toy weather effect for the tests: a grey veil (``tint`` dims the image by
that fraction). Everything an effect needs is here; registering it is one line:
``implement(declare(TINT), image=image, order=150)``."""
from __future__ import annotations

import numpy as np

from oddsuite.odd.effects import Bin, Dimension, Effect
from oddsuite.render.effects import ImageContext

TINT = Effect(
    "tint", "A grey veil over the scene: dims every pixel by the fraction `tint`.",
    dims=(Dimension("tint", "environment", 0.0, "fraction", 0, 1, bins=(
        Bin("clear (< 0.1)", -np.inf, 0.1), Bin("tinted (0.1–0.5)", 0.1, 0.5), Bin("dark (≥ 0.5)", 0.5, np.inf),
    ), bins_source="toy: veil darkness classes"),))


def image(rgb: np.ndarray, ctx: ImageContext) -> np.ndarray:
    t = float(ctx.env.get("tint", 0.0))
    if t <= 0:
        return rgb
    return np.clip(np.round(rgb.astype(np.float64) * (1 - t)), 0, 255).astype(np.uint8)

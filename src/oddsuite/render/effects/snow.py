"""Snow (mm/h): flakes (bright discs of a few sizes) and a whiter, lower-contrast image
(linearly to 5 mm/h, then more slowly); above 2 mm/h the terrain is snow-covered."""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from oddsuite.odd.effects import SNOW
from oddsuite.render.effects.rain import intensity
from oddsuite.render.effects.registry import ImageContext, SceneState, implement
from oddsuite.render.effects.road_surface import SNOW_COVER

#: snowfall above this rate (mm/h) covers the terrain
COVERS_TERRAIN_MM_H = 2.0


def snow(rgb: np.ndarray, rate_mm_h: float, rng: np.random.Generator, light: float) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) in snowfall of ``rate_mm_h``; flakes drawn from ``rng``."""
    H, W, _ = rgb.shape
    k = intensity(rate_mm_h, 5.0)
    img = rgb.astype(np.float64)
    img = img * (1 - 0.25 * k) + 255.0 * light * 0.25 * k  # whiter, lower contrast
    overlay = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(overlay)
    n = int(W * H / 400 * (0.2 + 2.0 * k))
    xs, ys = rng.uniform(0, W, n), rng.uniform(0, H, n)
    rs = rng.choice([0.6, 1.0, 1.6, 2.4], size=n, p=[0.45, 0.3, 0.17, 0.08]) * max(W, H) / 640
    for x, y, r in zip(xs, ys, rs):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=230)
    flakes = np.asarray(overlay.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float64)[..., None] / 255.0
    img = img * (1 - flakes) + 255.0 * (0.6 + 0.4 * light) * flakes
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def scene(state: SceneState, env: dict[str, Any]) -> None:
    if env["snow_mm_h"] > COVERS_TERRAIN_MM_H:
        state.terrain_cover = SNOW_COVER


def image(rgb: np.ndarray, ctx: ImageContext) -> np.ndarray:
    if ctx.env.get("snow_mm_h", 0) > 0:
        return snow(rgb, float(ctx.env["snow_mm_h"]), ctx.rng, ctx.light)
    return rgb


implement(SNOW, scene=scene, image=image, order=120)

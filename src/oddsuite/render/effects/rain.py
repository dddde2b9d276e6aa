"""Rain (mm/h): a wet, duller, darker image plus motion-blurred streaks whose count grows
with the rate (linearly to 25 mm/h, then more slowly: ``intensity``)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from oddsuite.odd.effects import RAIN
from oddsuite.render.effects.registry import ImageContext, implement


def intensity(rate: float, knee: float) -> float:
    """Effect strength of a precipitation rate: ``rate / knee`` up to the knee, then on up
    towards 2 (``2 - knee / rate``), so that every rate renders differently (no rate is
    clamped to another) and the image stays bounded."""
    return rate / knee if rate <= knee else 2.0 - knee / rate


def rain(rgb: np.ndarray, rate_mm_h: float, rng: np.random.Generator, light: float) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) in rain of ``rate_mm_h``; streaks drawn from ``rng``."""
    H, W, _ = rgb.shape
    k = intensity(rate_mm_h, 25.0)
    img = rgb.astype(np.float64)
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = (img - mean) * (1 - 0.35 * k) + mean * (1 - 0.25 * k)  # wet, dull, darker
    overlay = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(overlay)
    n = int(W * H / 900 * (0.2 + 2.5 * k))
    slant = rng.uniform(-0.25, 0.25)
    xs, ys = rng.uniform(0, W, n), rng.uniform(-0.1 * H, H, n)
    lens = rng.uniform(0.03, 0.09, n) * H
    alphas = rng.integers(50, 140, n)
    for x, y, ln, a in zip(xs, ys, lens, alphas):
        draw.line([(x, y), (x + slant * ln, y + ln)], fill=int(a), width=1)
    streak = np.asarray(overlay.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float64)[..., None] / 255.0
    img = img * (1 - streak) + 255.0 * (0.55 + 0.35 * light) * streak
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def image(rgb: np.ndarray, ctx: ImageContext) -> np.ndarray:
    if ctx.env.get("rain_mm_h", 0) > 0:
        return rain(rgb, float(ctx.env["rain_mm_h"]), ctx.rng, ctx.light)
    return rgb


implement(RAIN, image=image, order=110)

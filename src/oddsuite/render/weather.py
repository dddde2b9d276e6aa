"""Image-space weather on top of a render: depth-based fog, rain, snow.

- Fog (Koschmieder): a pixel at range ``d`` metres keeps ``t = exp(-3.912·d/V)`` of its
  radiance for meteorological visibility ``V``; the rest is airlight. The range is the
  Euclidean distance from the camera, recovered from the depth buffer and intrinsics;
  sky pixels (no depth) are pure airlight when fog is on.
- Rain (mm/h): scene darkening and contrast loss, plus motion-blurred streaks whose
  count grows with the rate (linearly to 25 mm/h, then more slowly: ``intensity``).
- Snow (mm/h): flakes (bright discs of a few sizes) and a whiter, lower-contrast image
  (linearly to 5 mm/h, then more slowly).

All randomness comes from the Generator handed in (the scene's, per variant), so the
same suite seed gives the same pixels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: visibility at or above this many metres counts as no fog
NO_FOG_M = 10000.0


def koschmieder_transmission(range_m: np.ndarray, visibility_m: float) -> np.ndarray:
    """t = exp(-3.912 · d / V); 3.912 = -ln(0.02), the 2% contrast threshold."""
    return np.exp(-3.912 * np.asarray(range_m, dtype=np.float64) / float(visibility_m))


def range_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Euclidean distance from the camera centre for every pixel (inf where depth is 0)."""
    H, W = depth.shape
    u = (np.arange(W) + 0.5 - K[0, 2]) / K[0, 0]
    v = (np.arange(H) + 0.5 - K[1, 2]) / K[1, 1]
    ray = np.sqrt(1 + u[None, :] ** 2 + v[:, None] ** 2)
    r = depth.astype(np.float64) * ray
    r[depth <= 0] = np.inf
    return r


def intensity(rate: float, knee: float) -> float:
    """Effect strength of a precipitation rate: ``rate / knee`` up to the knee, then on up
    towards 2 (``2 - knee / rate``), so that every rate renders differently (no rate is
    clamped to another) and the image stays bounded."""
    return rate / knee if rate <= knee else 2.0 - knee / rate


def _light_level(env: dict[str, Any]) -> float:
    day = float(np.clip((env["sun_elevation_deg"] + 6) / 16, 0, 1))
    return 0.08 + 0.72 * day * (1 - 0.3 * float(env["cloud_cover"]))


def fog(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, visibility_m: float, airlight: float) -> np.ndarray:
    t = koschmieder_transmission(range_from_depth(depth, K), visibility_m)[..., None]
    out = rgb.astype(np.float64) * t + 255.0 * airlight * (1 - t)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def rain(rgb: np.ndarray, rate_mm_h: float, rng: np.random.Generator, light: float) -> np.ndarray:
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


def snow(rgb: np.ndarray, rate_mm_h: float, rng: np.random.Generator, light: float) -> np.ndarray:
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


def apply(rgb: np.ndarray, depth: np.ndarray, env: dict[str, Any], camera: Any, rng: np.random.Generator,
          isolate: bool = False) -> np.ndarray:
    """Fog, then rain, then snow, as the environment says."""
    out = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    light = _light_level(env)
    V = float(env.get("fog_visibility_m", NO_FOG_M))
    if V < NO_FOG_M:
        out = fog(out, depth, camera.intrinsics, V, airlight=0.5 if isolate else min(0.95, light + 0.1))
    if env.get("rain_mm_h", 0) > 0:
        out = rain(out, float(env["rain_mm_h"]), rng, light)
    if env.get("snow_mm_h", 0) > 0:
        out = snow(out, float(env["snow_mm_h"]), rng, light)
    return out


__all__ = ["koschmieder_transmission", "range_from_depth", "fog", "rain", "snow", "apply", "intensity", "NO_FOG_M"]

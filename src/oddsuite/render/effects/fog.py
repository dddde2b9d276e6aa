"""Fog (Koschmieder): a pixel at range ``d`` metres keeps ``t = exp(-3.912·d/V)`` of its
radiance for meteorological visibility ``V``; the rest is airlight. The range is the
Euclidean distance from the camera, recovered from the depth buffer and intrinsics; sky
pixels (no depth) are pure airlight when fog is on. ``V`` ≥ 10 km is no fog."""
from __future__ import annotations

import numpy as np

from oddsuite.odd.effects import FOG, NO_FOG_M
from oddsuite.render.effects.registry import ImageContext, implement


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


def fog(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, visibility_m: float, airlight: float) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) seen through fog of ``visibility_m``; ``airlight`` in [0, 1]."""
    t = koschmieder_transmission(range_from_depth(depth, K), visibility_m)[..., None]
    out = rgb.astype(np.float64) * t + 255.0 * airlight * (1 - t)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def image(rgb: np.ndarray, ctx: ImageContext) -> np.ndarray:
    V = float(ctx.env.get("fog_visibility_m", NO_FOG_M))
    if V >= NO_FOG_M:
        return rgb
    return fog(rgb, ctx.depth, ctx.camera.intrinsics, V, airlight=0.5 if ctx.isolate else min(0.95, ctx.light + 0.1))


implement(FOG, image=image, order=100)

"""Defocus: an out-of-focus lens spreads each point into a disc, the circle of confusion
(geometric optics: Hecht, *Optics*, on depth of field). The image is the radiance convolved
(``cv2.filter2D``) with a uniform disc of the given diameter in pixels, its edge
anti-aliased by each kernel pixel's covered area; the depth of field is not modelled:
every pixel gets the same disc."""
from __future__ import annotations

import math

import cv2
import numpy as np

from oddsuite.odd.effects import DEFOCUS
from oddsuite.render.effects.registry import SensorContext, implement

#: kernel pixels are split into SUB x SUB points to measure how much of each the disc covers
SUB = 8


def disc_kernel(diameter_px: float) -> np.ndarray:
    """The (2n+1)x(2n+1) float32 kernel of a uniform disc of ``diameter_px``, summing to 1:
    each entry is the share of that pixel the disc covers."""
    r = diameter_px / 2.0
    n = max(int(math.ceil(r - 0.5)), 0)
    offs = (np.arange(SUB) + 0.5) / SUB - 0.5
    grid = np.arange(-n, n + 1)
    fine = (grid[:, None] + offs[None, :]).ravel()  # sub-pixel centres along one axis
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= r * r
    k = inside.reshape(2 * n + 1, SUB, 2 * n + 1, SUB).mean(axis=(1, 3))
    if k.sum() == 0:  # a disc smaller than the kernel's sub-pixel spacing: a point
        k[n, n] = 1.0
    return (k / k.sum()).astype(np.float32)


def defocus(x: np.ndarray, diameter_px: float) -> np.ndarray:
    """``x`` (HxWx3 float32 linear radiance) through a lens defocused to a blur disc of
    ``diameter_px``; borders reflected."""
    if diameter_px <= 0:
        return x
    return cv2.filter2D(x, -1, disc_kernel(diameter_px), borderType=cv2.BORDER_REFLECT)


def sensor(x: np.ndarray, ctx: SensorContext) -> np.ndarray:
    return defocus(x, float(ctx.value("defocus_blur_px")))


implement(DEFOCUS, sensor=sensor, stage="optics", order=200)

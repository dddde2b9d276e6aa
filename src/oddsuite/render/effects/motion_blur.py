"""Motion blur: while the shutter is open the image moves across the sensor, so each point
becomes a streak; with uniform motion the point-spread function is a line segment of the
streak's length and direction (Gonzalez & Woods, *Digital Image Processing*, the
degradation function of uniform linear motion). The radiance is convolved (``cv2.filter2D``) with that
segment, drawn with sub-pixel (bilinear) weights so every length blurs differently."""
from __future__ import annotations

import math

import cv2
import numpy as np

from oddsuite.odd.effects import MOTION_BLUR
from oddsuite.render.effects.registry import SensorContext, implement

#: points per pixel of streak when the segment is drawn into the kernel
DENSITY = 4


def line_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """The (2n+1)x(2n+1) float32 kernel of a uniform segment of ``length_px`` centred on
    the kernel, at ``angle_deg`` counter-clockwise from the +x axis (image y points down);
    it sums to 1."""
    a = math.radians(angle_deg)
    dx, dy = math.cos(a), -math.sin(a)
    n = int(math.ceil(length_px / 2)) + 1
    t = np.linspace(-length_px / 2, length_px / 2, max(2, int(math.ceil(length_px * DENSITY)) + 1))
    px, py = n + t * dx, n + t * dy
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    k = np.zeros((2 * n + 1, 2 * n + 1), np.float64)
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + oy, x0 + ox), w)
    return (k / k.sum()).astype(np.float32)


def motion_blur(x: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """``x`` (HxWx3 float32 linear radiance) streaked by ``length_px`` at ``angle_deg``; borders reflected."""
    if length_px <= 0:
        return x
    return cv2.filter2D(x, -1, line_kernel(length_px, angle_deg), borderType=cv2.BORDER_REFLECT)


def sensor(x: np.ndarray, ctx: SensorContext) -> np.ndarray:
    return motion_blur(x, float(ctx.value("motion_blur_px")), float(ctx.value("motion_blur_deg")))


implement(MOTION_BLUR, sensor=sensor, stage="optics", order=210)

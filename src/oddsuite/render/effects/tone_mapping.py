"""Tone mapping: the curve from linear radiance (unbounded above) to display values in
[0, 1]; the pipeline then clips and applies the display encoding.

- ``linear``: the identity; everything above white clips (the ideal camera, the default).
- ``reinhard``: Reinhard et al., "Photographic tone reproduction for digital images",
  SIGGRAPH 2002, eq. (4), on luminance ``L`` (Rec. 709 weights) with the colour scaled
  alike: ``L_d = L (1 + L / L_white²) / (1 + L)``, ``L_white = REINHARD_WHITE`` (the
  radiance that maps to display white: two stops above the renderer's white).
- ``aces``: K. Narkowicz's fit of the ACES filmic curve ("ACES Filmic Tone Mapping
  Curve", 2016), per channel: ``x (2.51x + 0.03) / (x (2.43x + 0.59) + 0.14)``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from oddsuite.odd.effects import TONE_MAPPING
from oddsuite.render.effects.registry import SensorContext, implement

#: Reinhard's L_white: linear radiance that maps to display white (4 = two stops over)
REINHARD_WHITE = 4.0
#: Rec. 709 luminance of linear RGB
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def reinhard(x: np.ndarray) -> np.ndarray:
    L = np.maximum(x @ LUMA, 0)[..., None]
    Ld = L * (1 + L / REINHARD_WHITE ** 2) / (1 + L)
    return np.where(L > 0, x * Ld / np.maximum(L, 1e-12), 0).astype(np.float32)


def aces(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0)
    return (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)


#: curve name → function (HxWx3 float32 linear → display-linear)
CURVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"linear": lambda x: x, "reinhard": reinhard, "aces": aces}


def sensor(x: np.ndarray, ctx: SensorContext) -> np.ndarray:
    return CURVES[ctx.value("tone_mapping")](x)


implement(TONE_MAPPING, sensor=sensor, stage="tone", order=500)

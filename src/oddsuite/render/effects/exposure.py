"""Exposure: an offset of ``exposure_ev`` stops (aperture and exposure time together)
multiplies the light reaching the sensor by 2^EV (ISO 2720 defines the exposure value as
a base-2 logarithm: one EV is a factor of two)."""
from __future__ import annotations

import numpy as np

from oddsuite.odd.effects import EXPOSURE
from oddsuite.render.effects.registry import SensorContext, implement


def sensor(x: np.ndarray, ctx: SensorContext) -> np.ndarray:
    ev = float(ctx.value("exposure_ev"))
    return x if ev == 0 else x * np.float32(2.0 ** ev)


implement(EXPOSURE, sensor=sensor, stage="exposure", order=300)

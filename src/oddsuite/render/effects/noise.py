"""Sensor noise at an ISO setting: photon (shot) noise and read noise, the Poisson-Gaussian
model of raw sensor data in the heteroskedastic normal form of Foi et al., "Practical
Poissonian-Gaussian noise modeling and fitting for single-image raw-data", IEEE TIP 17(10),
2008: a pixel of true value ``y`` reads ``y + sqrt(a·y + b)·ξ``, ``ξ ~ N(0, 1)``.

The sensor: white (linear 1.0) is ``FULL_WELL_E · BASE_ISO / iso`` photo-electrons, so a
higher ISO reaches the same brightness with fewer photons and more gain (the camera keeps
the exposure; ``exposure_ev`` changes it). Then ``a = 1 / N_white`` (shot noise: the
variance of a Poisson count equals its mean) and ``b = (READ_E / N_white)²`` (read noise,
Gaussian, in electrons). ``iso = 0`` is a noise-free sensor.

The normal form (one standard normal per pixel and channel) rather than Poisson draws: the
same ``ξ`` field serves every image of a scene (``sensor.noise_generator``), so pixels
that are equal before the sensor are equal after it, in the full scene and in each of its
ROI permutations; it departs from a Poisson count below a few tens of electrons (very dark
pixels at high ISO), where read noise dominates anyway. Channels are independent (no Bayer
mosaic is modelled).
"""
from __future__ import annotations

import math

import numpy as np

from oddsuite.odd.effects import NOISE
from oddsuite.render.effects.registry import SensorContext, implement

#: photo-electrons at white at base ISO: the full-well capacity of a ~4 µm CMOS pixel
FULL_WELL_E = 20000.0
#: the ISO at which white is the full well
BASE_ISO = 100.0
#: read noise, electrons RMS (a modern CMOS sensor)
READ_E = 2.0
#: the linear value of a mid-grey (18 %) surface, where ``snr_db`` is quoted
MID_GREY = 0.18


def white_electrons(iso: float) -> float:
    """Photo-electrons at linear 1.0 (white) at ``iso`` (> 0)."""
    return FULL_WELL_E * BASE_ISO / iso


def snr_db(iso: float, signal: float = MID_GREY) -> float:
    """Signal-to-noise ratio in dB of a pixel at linear ``signal`` at ``iso``:
    ``20·log10(s / sqrt(s + READ_E²))`` with ``s`` its photo-electrons (inf at ISO 0)."""
    if iso <= 0:
        return math.inf
    s = signal * white_electrons(iso)
    return 20 * math.log10(s / math.sqrt(s + READ_E ** 2))


def add_noise(x: np.ndarray, iso: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` (HxWx3 float32 linear) read by a sensor at ``iso``; one standard normal per
    value from ``rng``."""
    n_white = white_electrons(iso)
    xi = rng.standard_normal(x.shape, dtype=np.float32)
    var = np.maximum(x, 0) * np.float32(1 / n_white) + np.float32((READ_E / n_white) ** 2)
    return x + np.sqrt(var) * xi


def sensor(x: np.ndarray, ctx: SensorContext) -> np.ndarray:
    iso = float(ctx.value("iso"))
    return x if iso <= 0 else add_noise(x, iso, ctx.rng)


implement(NOISE, sensor=sensor, stage="noise", order=400)

"""The camera: ``apply_sensor`` runs every sensor effect on one image, as a camera's
pipeline does, in this order (``registry.SENSOR_STAGES``):

1. ``optics``, on linear radiance: defocus blur, motion blur, vignetting. The lens and
   the motion act on light before it reaches the sensor, so they blur and darken
   radiance, not display values (blurring gamma-encoded values darkens edges).
2. ``exposure``: the light that reaches the sensor, times 2^EV.
3. ``noise``: the sensor reads the exposed light with photon and read noise at its ISO.
4. ``tone``: the image processor's tone curve maps linear values to display values, then
   they are clipped to [0, 1], display-encoded and quantized to 8 bits.
5. ``encode``: the JPEG encoder at the end of the chain.

This is the order of the in-camera processing pipeline described by Ramanath et al.,
"Color image processing pipeline", IEEE Signal Processing Magazine 22(1), 2005, and
Karaimer & Brown, "A software platform for manipulating the camera imaging pipeline",
ECCV 2016 (raw sensor values with their noise → … → tone curve → JPEG); demosaicing, white
balance and colour-space conversion are not modelled (the renderer gives RGB).

Display encoding: the raster engine writes ``linear^(1/2.2)`` (pyrender's ``mesh.frag``),
so radiance is recovered with the same 2.2 power (``GAMMA``) and encoded with it again;
an image whose sensor settings are all the ideal camera's (every sensor dimension at its
declared default, which is also what a spec without sensor dimensions gets) is returned
as it is, byte for byte.

Noise seeds (the policy): the noise of every image of a scene comes from a fresh copy of
one Generator, ``noise_generator(params)`` (stream ``"sensor"`` of the scene's seed), for
the full scene, every ROI permutation in every masking mode and every variant alike. So
the sensor is a fixed property of the scene's camera: a pixel whose radiance is the same in
two images of the scene gets the same noise in both, and the same spec and seed give the
same bytes.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from oddsuite.odd import effects as declared
from oddsuite.render.effects.registry import SENSOR_STAGES, SensorContext, active

#: the display encoding of the raster engine: display = linear^(1/GAMMA)
GAMMA = 2.2
#: the name of the scene's random stream the sensor noise is drawn from
NOISE_STREAM = "sensor"
_DECODE = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)


def noise_generator(params: Any) -> np.random.Generator:
    """A fresh copy of the scene's sensor-noise Generator (``params``: ``odd.SceneParams``)."""
    return params.rng(NOISE_STREAM)


def is_ideal(env: dict[str, Any]) -> bool:
    """Whether every sensor dimension in ``env`` is at its declared default (or absent)."""
    return all(env.get(d.name, d.default) == d.default for d in declared.dimensions("sensor"))


def decode(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 display values → float32 linear radiance in [0, 1]."""
    return _DECODE[rgb]


def encode(x: np.ndarray) -> np.ndarray:
    """Float32 display-linear values → HxWx3 uint8 display values (clipped to [0, 1])."""
    y = np.power(np.clip(x, 0.0, 1.0), np.float32(1 / GAMMA))
    return np.round(y * np.float32(255)).astype(np.uint8)


def apply_sensor(rgb: np.ndarray, env: dict[str, Any], intrinsics: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The image ``rgb`` (HxWx3 uint8, display-encoded, as rendered, weathered and masked)
    as the camera of ``env`` records it: HxWx3 uint8 of the same shape.

    ``env``: the conditions in effect (``permute.environment_of``); its sensor dimensions
    (``defocus_blur_px``, ``motion_blur_px``/``_deg``, ``vignetting``, ``exposure_ev``,
    ``iso``, ``tone_mapping``, ``jpeg_quality``) set the camera, absent ones are the ideal
    camera's. ``intrinsics``: the 3x3 camera matrix (pixels; vignetting's field angles).
    ``rng``: a fresh ``noise_generator(params)``; needed when ``iso > 0`` (ValueError
    otherwise). Returns ``rgb`` itself when the camera is ideal (``is_ideal``)."""
    if is_ideal(env):
        return rgb
    impls = [i for i in active() if i.sensor is not None]
    ctx = SensorContext(env, np.asarray(intrinsics, dtype=np.float64), rng)
    x = decode(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))
    for stage in SENSOR_STAGES:
        if stage == "encode":
            x = encode(x)
        for impl in impls:
            if impl.stage == stage:
                x = impl.sensor(x, ctx)  # type: ignore[misc]
    return x

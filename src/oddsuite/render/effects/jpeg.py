"""JPEG: the image as a camera's encoder stores it, compressed at ``jpeg_quality`` with
libjpeg through opencv (``cv2.imencode``, its default 4:2:0 chroma subsampling) and
decoded again. ``jpeg_quality = 100`` leaves the image lossless (no JPEG step)."""
from __future__ import annotations

import cv2
import numpy as np

from oddsuite.odd.effects import JPEG
from oddsuite.render.effects.registry import SensorContext, implement

#: jpeg_quality at which no JPEG step runs
LOSSLESS = 100


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) after a JPEG round trip at ``quality`` (1-99)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"opencv could not JPEG-encode a {rgb.shape} image at quality {quality}")
    return np.ascontiguousarray(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def sensor(rgb: np.ndarray, ctx: SensorContext) -> np.ndarray:
    q = int(ctx.value("jpeg_quality"))
    return rgb if q >= LOSSLESS else jpeg(rgb, q)


implement(JPEG, sensor=sensor, stage="encode", order=600)

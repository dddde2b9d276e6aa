"""Decoding of raw YOLO output: boxes that clip to nothing are no detections."""
from __future__ import annotations

import numpy as np

from oddsuite.models.common import Letterbox, postprocess


def test_a_box_wholly_outside_the_image_is_dropped():
    lb = Letterbox(gain=1.0, pad_x=0.0, pad_y=0.0, width=100, height=80)
    # (B, 4 + nc, N): xywh + 2 class scores; box 0 inside, box 1 entirely right of the image
    raw = np.zeros((1, 6, 2), np.float32)
    raw[0, :4, 0] = [50, 40, 20, 10]
    raw[0, :4, 1] = [130, 40, 20, 10]
    raw[0, 4, :] = [0.9, 0.8]
    (d,) = postprocess(raw, nc=2, lbs=[lb], conf=0.01)
    assert len(d) == 1 and np.allclose(d.boxes[0], [40, 35, 60, 45])
    # the end-to-end layout (B, K, 6) too
    e2e = np.array([[[40, 35, 60, 45, 0.9, 1], [120, 35, 140, 45, 0.8, 0]]], np.float32)
    (d,) = postprocess(e2e, nc=2, lbs=[lb], conf=0.01)
    assert len(d) == 1 and d.class_ids[0] == 1

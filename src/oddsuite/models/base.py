"""The Detector protocol and the Detections value.

Every model variant (ultralytics fp32, ONNX fp32/int8, the simulated accelerator with
faults) is a Detector; the evaluation loop never needs to know which.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

#: Confidence floor used when predicting for mAP (COCO keeps everything >= 0.001).
MAP_CONF_FLOOR = 0.001


@dataclass(frozen=True)
class Detections:
    """Detections of one image.

    boxes: float32 (N, 4) xyxy in pixels of the input image; scores: float32 (N,);
    class_ids: int64 (N,), indices into the detector's ``classes``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        b = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        s = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        c = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if not (len(b) == len(s) == len(c)):
            raise ValueError(f"Detections: boxes {len(b)}, scores {len(s)}, class_ids {len(c)} differ in length")
        object.__setattr__(self, "boxes", b)
        object.__setattr__(self, "scores", s)
        object.__setattr__(self, "class_ids", c)

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> "Detections":
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def above(self, conf: float) -> "Detections":
        keep = self.scores >= conf
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep])


@runtime_checkable
class Detector(Protocol):
    """What the evaluation loop needs of a model."""

    name: str
    #: index -> class name (the detector's own names)
    classes: dict[int, str]

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        """images: HxWx3 uint8 RGB arrays; returns one Detections per image, same order."""
        ...

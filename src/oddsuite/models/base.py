"""The Detector protocol, its optional ModelInfo, and the Detections value.

Every model variant (ultralytics fp32, ONNX fp32/int8, the simulated accelerator with
faults, a user's own object) is a Detector; the evaluation loop never needs to know which.
What the code needs beyond ``name``, ``classes`` and ``predict`` it reads from one optional
``info: ModelInfo`` (:func:`model_info`), never by probing for other attributes. The one
capability some tools need on top, a torch network they may wrap or export, is the
:class:`TorchDetector` protocol.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

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


@dataclass(frozen=True)
class ModelInfo:
    """What is known of a detector's model beyond ``name``, ``classes`` and ``predict``; every
    field is optional (a user's own detector may have no ``info`` at all).

    sha256: the model's pin, the value ``load_detector(sha256=...)`` checks and run.json
        records: the SHA-256 of the file that holds the weights or, for a model stored in
        several files (ONNX with external data), the canonical hash over all of them
        (:func:`oddsuite.models.common.files_pin`).
    files: every file the model was loaded from (weights, architecture yaml, external data),
        path relative to the model's folder -> SHA-256, in name order.
    source: the path the model was loaded from.
    format: how it is stored: ``"safetensors"`` (ultralytics yaml + safetensors),
        ``"onnx"``, ``"pickle"`` (a trusted ultralytics ``.pt``), or another word.
    precision: the arithmetic it runs in: ``"fp32"``, ``"fp16"``, ``"int8"``.
    input_hw: the network input size (height, width) in pixels.
    class_map: explicit ``detector class name -> suite category name`` given at load.
    recipe: a picklable, hashable object whose ``load()`` re-creates the detector in another
        process (pool or Ray worker); None when it cannot be re-created there.
    """

    sha256: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    format: str | None = None
    precision: str | None = None
    input_hw: tuple[int, int] | None = None
    class_map: Mapping[str, str] | None = None
    recipe: Any = None

    def record(self) -> dict[str, Any]:
        """The JSON record of run.json's ``detector.model`` (everything but the recipe)."""
        return {"sha256": self.sha256, "files": dict(sorted(self.files.items())), "source": self.source,
                "format": self.format, "precision": self.precision,
                "input_hw": list(self.input_hw) if self.input_hw else None,
                "class_map": dict(self.class_map) if self.class_map else None}


@runtime_checkable
class Detector(Protocol):
    """What the evaluation loop needs of a model.

    A detector may also carry ``info: ModelInfo`` (read with :func:`model_info`); every
    adapter in oddsuite fills it, and nothing else is looked up on a detector.
    """

    name: str
    #: index -> class name (the detector's own names)
    classes: dict[int, str]

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        """images: HxWx3 uint8 RGB arrays; returns one Detections per image, same order."""
        ...


@runtime_checkable
class TorchDetector(Detector, Protocol):
    """A Detector whose network is a torch module in the settable attribute ``torch_model``,
    looked up by ``predict`` on every call (pre- and post-processing stay the detector's own).
    The simulated accelerator replaces it; ONNX export and FAP+T fine-tuning read it."""

    torch_model: Any


def model_info(detector: Any) -> ModelInfo:
    """The detector's ``info``, or an empty ModelInfo when it has none (a user's plain object)."""
    info = getattr(detector, "info", None)
    return info if isinstance(info, ModelInfo) else ModelInfo()


def is_torch_detector(detector: Any) -> bool:
    """Whether ``detector`` meets :class:`TorchDetector` with an actual torch module."""
    if not isinstance(detector, TorchDetector):
        return False
    import torch

    return isinstance(detector.torch_model, torch.nn.Module)

"""A Detector whose torch model runs on the simulated accelerator."""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np

from ..base import MAP_CONF_FLOOR, Detections
from .faults import FaultMap, TimingErrors
from .systolic import SystolicArray
from .fault_models import TransientFlips
from .wrap import Accelerator, accelerate, accelerator_of


class AcceleratorDetector:
    """Wraps a torch-backed Detector so that its network runs on the simulated array.

    Contract with the wrapped detector (``UltralyticsDetector`` meets it): it exposes its
    network as a settable attribute ``torch_model`` (an ``nn.Module``) and its ``predict``
    looks that attribute up on every call (pre- and post-processing stay the detector's own).
    The wrapped detector is shallow-copied; the original keeps its float model.
    """

    def __init__(self, detector, array: SystolicArray | None = None, *,
                 calibration_images: Sequence[np.ndarray] | None = None, name: str | None = None,
                 fuse: bool = True, calibration_batch: int = 8, requant: str = "saturate"):
        model = getattr(detector, "torch_model", None)
        if model is None:
            raise TypeError(f"AcceleratorDetector needs a detector with .torch_model, got {type(detector).__name__}")
        self.array = array or SystolicArray(256, 256)
        self.inner = copy.copy(detector)
        self.torch_model = accelerate(model, self.array, fuse=fuse, requant=requant)
        try:
            self.inner.torch_model = self.torch_model
        except AttributeError as e:
            raise TypeError(f"{type(detector).__name__}.torch_model cannot be replaced: {e}") from e
        self.classes: dict[int, str] = dict(detector.classes)
        # what the evaluation reads off a loaded detector, when the wrapped one has it
        for attr in ("sha256", "class_map", "imgsz", "source"):
            if hasattr(detector, attr):
                setattr(self, attr, getattr(detector, attr))
        self.base_name = str(detector.name)
        self._name = name
        self.calibration_batch = int(calibration_batch)
        if calibration_images is not None:
            self.calibrate(calibration_images)

    @property
    def accelerator(self) -> Accelerator:
        return accelerator_of(self.torch_model)

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        acc = self.accelerator
        d = acc.describe()
        parts = [f"{self.base_name}@{d['array']}" + ("" if d["format"] == "int8" else f"-{d['format']}")
                 + ("" if d["requant"] == "saturate" else f"-rq{d['requant']}")]
        if d["faulty_pes"]:
            seed = acc.faults.seed
            parts.append(f"{d['faulty_pes']}pe-{d['mitigation']}" + (f"-s{seed}" if seed is not None else ""))
        if d["timing"]:
            parts.append(f"te{d['timing']['rate']:g}-{d['timing']['mode']}-s{d['timing']['seed']}")
        if d["transient"]:
            t = d["transient"]
            parts.append(f"flip{t['weight_rate']:g}w{t['act_rate']:g}a-s{t['seed']}")
        return "+".join(parts)

    def calibrate(self, images: Sequence[np.ndarray]) -> "AcceleratorDetector":
        """Record activation ranges by running the detector's own predict on ``images`` in float."""
        images = list(images)
        if not images:
            raise ValueError("calibration needs at least one image")

        def run():
            for i in range(0, len(images), self.calibration_batch):
                self.inner.predict(images[i:i + self.calibration_batch])

        self.accelerator.calibrate(run)
        return self

    def configure(self, faults: FaultMap | None = None, mitigation: str = "none",
                  timing: TimingErrors | None = None, transient: TransientFlips | None = None, *,
                  models=None, requant: str | None = None) -> "AcceleratorDetector":
        """As :meth:`.wrap.Accelerator.configure`."""
        self.accelerator.configure(faults=faults, mitigation=mitigation, timing=timing, transient=transient,
                                   models=models, requant=requant)
        return self

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        if not self.accelerator.calibrated:
            raise RuntimeError("AcceleratorDetector: calibrate() on a few suite images before predicting")
        return self.inner.predict(images, conf=conf)

    def __repr__(self) -> str:
        return f"AcceleratorDetector({self.name!r}, {self.array!r})"

"""A Detector whose torch model runs on the simulated accelerator, and the recipe that
re-creates it, configured, in a worker process."""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oddsuite.models.base import MAP_CONF_FLOOR, Detections, ModelInfo, is_torch_detector, model_info
from .faults import FaultMap, TimingErrors
from .systolic import SystolicArray
from .wrap import Accelerator, TransientFlips, accelerate, accelerator_of


def read_images(files: Sequence[str | Path]) -> list[np.ndarray]:
    """HxWx3 uint8 RGB arrays of image files (calibration images), read by the suite's one reader."""
    from oddsuite.suite.reader import read_image

    return [read_image(f) for f in files]


@dataclass(frozen=True)
class AcceleratorRecipe:
    """How to re-create a calibrated, configured :class:`AcceleratorDetector` in another process:
    the wrapped detector's recipe, the array size, the calibration image files, and the
    arguments of the last ``configure`` (sorted keyword items)."""

    base: Any
    array: tuple[int, int]
    calibration_files: tuple[str, ...]
    fuse: bool = True
    name: str | None = None
    configuration: tuple = ()

    def load(self) -> "AcceleratorDetector":
        det = AcceleratorDetector(self.base.load(), SystolicArray(*self.array), calibration_files=self.calibration_files,
                                  fuse=self.fuse, name=self.name)
        if self.configuration:
            det.configure(**dict(self.configuration))
        return det


class AcceleratorDetector:
    """Wraps a torch-backed Detector so that its network runs on the simulated array.

    Contract with the wrapped detector (:class:`~oddsuite.models.base.TorchDetector`;
    ``UltralyticsDetector`` meets it): it exposes its network as a settable attribute
    ``torch_model`` (an ``nn.Module``) and its ``predict`` looks that attribute up on every
    call (pre- and post-processing stay the detector's own). The wrapped detector is
    shallow-copied; the original keeps its float model.

    Calibration comes from ``calibration_images`` (arrays) or ``calibration_files`` (image
    paths). With files, and a wrapped detector whose ``info`` has a recipe, ``info.recipe``
    re-creates this detector, configured as it is, in a worker (pool or Ray).
    """

    def __init__(self, detector, array: SystolicArray | None = None, *,
                 calibration_images: Sequence[np.ndarray] | None = None, name: str | None = None,
                 fuse: bool = True, calibration_batch: int = 8,
                 calibration_files: Sequence[str | Path] | None = None):
        if not is_torch_detector(detector):
            raise TypeError(f"AcceleratorDetector needs a detector with .torch_model, got {type(detector).__name__}")
        if calibration_images is not None and calibration_files is not None:
            raise ValueError("AcceleratorDetector: give calibration_images or calibration_files, not both")
        self.array = array or SystolicArray(256, 256)
        self.inner = copy.copy(detector)
        self.torch_model = accelerate(detector.torch_model, self.array, fuse=fuse)
        try:
            self.inner.torch_model = self.torch_model
        except AttributeError as e:
            raise TypeError(f"{type(detector).__name__}.torch_model cannot be replaced: {e}") from e
        self.classes: dict[int, str] = dict(detector.classes)
        self.base_name = str(detector.name)
        self._name = name
        self.fuse = bool(fuse)
        self.calibration_batch = int(calibration_batch)
        self.calibration_files: tuple[str, ...] | None = None
        self._configuration: tuple = ()
        if calibration_files is not None:
            self.calibrate_files(calibration_files)
        elif calibration_images is not None:
            self.calibrate(calibration_images)

    @property
    def info(self) -> ModelInfo:
        """The wrapped detector's ModelInfo (pin, files, source, class map), run in int8 on the
        array; its recipe re-creates this detector when calibrated from files."""
        base = model_info(self.inner)
        recipe = None
        if base.recipe is not None and self.calibration_files is not None:
            recipe = AcceleratorRecipe(base.recipe, (self.array.rows, self.array.cols), self.calibration_files,
                                       self.fuse, self._name, self._configuration)
        return replace(base, precision="int8", recipe=recipe)

    @property
    def accelerator(self) -> Accelerator:
        return accelerator_of(self.torch_model)

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        acc = self.accelerator
        d = acc.describe()
        parts = [f"{self.base_name}@{d['array']}"]
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
        self.calibration_files = None  # calibrated from arrays: no recipe can repeat it
        return self

    def calibrate_files(self, files: Sequence[str | Path]) -> "AcceleratorDetector":
        """Calibrate on image files (see :meth:`calibrate`); the files go into ``info.recipe``."""
        files = tuple(str(Path(f).resolve()) for f in files)
        self.calibrate(read_images(files))
        self.calibration_files = files
        return self

    def configure(self, faults: FaultMap | None = None, mitigation: str = "none",
                  timing: TimingErrors | None = None, transient: TransientFlips | None = None) -> "AcceleratorDetector":
        self.accelerator.configure(faults=faults, mitigation=mitigation, timing=timing, transient=transient)
        self._configuration = (("faults", faults), ("mitigation", mitigation), ("timing", timing),
                               ("transient", transient))
        return self

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        if not self.accelerator.calibrated:
            raise RuntimeError("AcceleratorDetector: calibrate() on a few suite images before predicting")
        return self.inner.predict(images, conf=conf)

    def __repr__(self) -> str:
        return f"AcceleratorDetector({self.name!r}, {self.array!r})"

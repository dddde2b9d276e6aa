"""Model variants for the studies that compare backends: one model, run as it loads, in torch,
exported to ONNX Runtime (fp32), quantized to int8 (ONNX Runtime, QDQ), or on the simulated
systolic-array accelerator with no faults.

A variant is written ``PATH`` or ``PATH@BACKEND`` on the command line (``BACKEND`` one of
:data:`BACKENDS`; ``accelerator:RxC`` picks the array size, default 256x256), e.g.
``models/default@onnx``. Derived models (the ONNX export, the int8 model) are made once
under the study's folder (``variants/``) and reused when their source has not changed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oddsuite.errors import ModelError

log = logging.getLogger(__name__)

#: ``native``: as ``load_detector`` gives it (torch for a model directory, ONNX Runtime for .onnx)
BACKENDS = ("native", "torch", "onnx", "int8", "accelerator")


@dataclass(frozen=True)
class VariantSpec:
    """One model variant: the model path, the backend, and the array size of ``accelerator``."""

    path: Path
    backend: str = "native"
    array: str = "256x256"

    @property
    def label(self) -> str:
        if self.backend == "native":
            return self.path.name
        extra = f":{self.array}" if self.backend == "accelerator" else ""
        return f"{self.path.name}@{self.backend}{extra}"


def parse_variant(text: str) -> VariantSpec:
    """``PATH``, ``PATH@BACKEND`` or ``PATH@accelerator:RxC``; ValueError names the backends."""
    text = str(text)
    if Path(text).expanduser().exists() or "@" not in text:
        return VariantSpec(Path(text).expanduser())
    path, _, backend = text.rpartition("@")
    backend, _, array = backend.partition(":")
    backend = backend.strip().lower()
    if backend not in BACKENDS:
        raise ValueError(f"{text!r}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if array and backend != "accelerator":
        raise ValueError(f"{text!r}: only the accelerator backend takes a size (accelerator:RxC)")
    if array:
        from oddsuite.models.accelerator import SystolicArray

        SystolicArray.parse(array)  # ValueError with the expected form
    return VariantSpec(Path(path).expanduser(), backend, array or "256x256")


def calibration_images(suite_dir: str | Path, n: int) -> list[np.ndarray]:
    """The first ``n`` full-scene images of the suite (all images when it has no full ones), RGB uint8."""
    from PIL import Image

    from oddsuite.evaluate import load_suite

    suite = load_suite(suite_dir)
    images = [im for im in suite.gt["images"] if im.get("is_full")] or list(suite.gt["images"])
    out = []
    for im in images[:n]:
        with Image.open(suite.image_path(im)) as f:
            out.append(np.asarray(f.convert("RGB"), dtype=np.uint8))
    return out


def build_variant(spec: VariantSpec, suite_dir: str | Path, work_dir: str | Path, *, threads: int | None = None,
                  calib_images: int = 16, seed: int = 0, sha256: str | None = None,
                  trust_pickle: bool = False) -> Any:
    """The Detector of ``spec``. ``threads``: ONNX Runtime intra-op threads (torch's are the
    process's). int8 is calibrated on ``calib_images`` images of the suite (``seed``), the
    accelerator on its first ``calib_images`` full-scene images. Raises ModelError when the
    model cannot take the backend (e.g. an ONNX file on the accelerator)."""
    from oddsuite.models import load_detector

    work = Path(work_dir) / "variants"
    opts = {"threads": threads} if threads and spec.path.suffix.lower() == ".onnx" else {}
    base = load_detector(spec.path, sha256=sha256, trust_pickle=trust_pickle, **opts)
    if spec.backend == "native":
        return base
    if spec.backend in ("torch", "accelerator") and getattr(base, "torch_model", None) is None:
        raise ModelError(f"{spec.path}: the {spec.backend} backend needs a torch-backed model (ultralytics yaml + "
                         f"safetensors, or a trusted .pt); {type(base).__name__} has none")
    if spec.backend == "torch":
        return base
    if spec.backend == "onnx":
        return _onnx_variant(base, spec, work, threads)
    if spec.backend == "int8":
        return _int8_variant(spec, suite_dir, work, threads, calib_images, seed, sha256, trust_pickle)
    from oddsuite.models.accelerator import AcceleratorDetector, SystolicArray

    det = AcceleratorDetector(base, SystolicArray.parse(spec.array),
                              calibration_images=calibration_images(suite_dir, calib_images))
    return det


def _derived_path(work: Path, base: Any, suffix: str) -> Path:
    sha = str(getattr(base, "sha256", "") or "nohash")[:12]
    return work / f"{Path(str(getattr(base, 'name', 'model'))).name}-{sha}-{suffix}.onnx"


def _onnx_variant(base: Any, spec: VariantSpec, work: Path, threads: int | None) -> Any:
    from oddsuite.models.onnx_rt import OnnxDetector, export_onnx

    if isinstance(base, OnnxDetector):
        return base
    path = _derived_path(work, base, "fp32")
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        export_onnx(base, path, base.imgsz)
    det = OnnxDetector(path, classes=dict(base.classes), name=f"{base.name}@onnx", threads=threads)
    det.class_map = getattr(base, "class_map", None)
    return det


def _int8_variant(spec: VariantSpec, suite_dir, work: Path, threads: int | None, calib_images: int, seed: int,
                  sha256: str | None, trust_pickle: bool) -> Any:
    from oddsuite.models import load_detector
    from oddsuite.models.quantize import quantize_model, read_record

    base = load_detector(spec.path, sha256=sha256, trust_pickle=trust_pickle)
    path = _derived_path(work, base, f"int8-c{calib_images}-s{seed}")
    fresh = False
    if path.is_file():
        try:
            fresh = read_record(path)["source"]["sha256"] == getattr(base, "sha256", None)
        except ModelError:
            fresh = False
    if not fresh:
        work.mkdir(parents=True, exist_ok=True)
        quantize_model(spec.path, suite_dir, path, calib_images=calib_images, seed=seed, sha256=sha256,
                       trust_pickle=trust_pickle)
    return load_detector(path, threads=threads) if threads else load_detector(path)


def build_variants(specs: Sequence[VariantSpec], suite_dir, work_dir, **kw) -> list[Any]:
    """:func:`build_variant` of each spec, in order."""
    return [build_variant(s, suite_dir, work_dir, **kw) for s in specs]


def machine_threads(threads: int | None) -> dict[str, Any]:
    """Set torch's intra-op threads to ``threads`` (when given) for this process; returns what
    the study records: ``{"torch_threads", "ort_threads"}``."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return {"torch_threads": torch.get_num_threads(), "ort_threads": threads}

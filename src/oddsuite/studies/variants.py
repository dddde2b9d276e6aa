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

from oddsuite.errors import ModelError
from oddsuite.models.base import is_torch_detector, model_info

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
        from oddsuite.accelerator import SystolicArray

        SystolicArray.parse(array)  # ValueError with the expected form
    return VariantSpec(Path(path).expanduser(), backend, array or "256x256")


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
    if spec.backend in ("torch", "accelerator") and not is_torch_detector(base):
        raise ModelError(f"{spec.path}: the {spec.backend} backend needs a torch-backed model (ultralytics yaml + "
                         f"safetensors, or a trusted .pt); {type(base).__name__} has none")
    if spec.backend == "torch":
        return base
    if spec.backend == "onnx":
        return _onnx_variant(base, spec, work, threads)
    if spec.backend == "int8":
        return _int8_variant(spec, suite_dir, work, threads, calib_images, seed, sha256, trust_pickle)
    from oddsuite.accelerator import AcceleratorDetector, SystolicArray
    from oddsuite.studies.fault_sweep import calibration_files

    return AcceleratorDetector(base, SystolicArray.parse(spec.array),
                               calibration_files=calibration_files(suite_dir, calib_images))


def _derived_path(work: Path, base: Any, suffix: str) -> Path:
    sha = str(model_info(base).sha256 or "nohash")[:12]
    return work / f"{Path(str(base.name)).name}-{sha}-{suffix}.onnx"


def _onnx_variant(base: Any, spec: VariantSpec, work: Path, threads: int | None) -> Any:
    from dataclasses import replace

    from oddsuite.models.onnx_rt import OnnxDetector, onnx_file_of

    if isinstance(base, OnnxDetector):
        return base
    work.mkdir(parents=True, exist_ok=True)
    path, _ = onnx_file_of(base, _derived_path(work, base, "fp32"))
    det = OnnxDetector(path, classes=dict(base.classes), name=f"{base.name}@onnx", threads=threads)
    det.info = replace(det.info, class_map=model_info(base).class_map)
    return det


def _int8_variant(spec: VariantSpec, suite_dir, work: Path, threads: int | None, calib_images: int, seed: int,
                  sha256: str | None, trust_pickle: bool) -> Any:
    from oddsuite.models import load_detector
    from oddsuite.quant.quantize import quantize_model, read_record

    base = load_detector(spec.path, sha256=sha256, trust_pickle=trust_pickle)
    path = _derived_path(work, base, f"int8-c{calib_images}-s{seed}")
    fresh = False
    if path.is_file():
        try:
            fresh = read_record(path)["source"]["sha256"] == model_info(base).sha256
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

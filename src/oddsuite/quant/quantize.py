"""Post-training static int8 quantization of a detector with ONNX Runtime (``oddsuite quantize``).

The flow a deployment toolchain follows, made reproducible and recorded:

1. the source model (any file :func:`oddsuite.models.load_detector` accepts) becomes an fp32
   ONNX file: used as it is when it already is one, otherwise exported with
   :func:`oddsuite.models.onnx_rt.export_onnx` at the detector's own input size;
2. ``quant_pre_process`` (ONNX shape inference + ONNX Runtime graph optimisation; symbolic
   shape inference too where it completes — it does not on YOLO heads with a dynamic batch,
   and then it is skipped and the record says so);
2b. each nearest-neighbour upsample (``Resize``) is written as a channels-last ``Expand``,
   the same copy, which ONNX Runtime's int8 layout runs 10x faster
   (:func:`oddsuite.quant.rewrite.nearest_upsample_as_expand`; the record's ``pre_process``
   lists them);
3. a seeded sample of the calibration suite's images, each pre-processed exactly as the
   ONNX adapter pre-processes it (:func:`oddsuite.models.common.preprocess`: letterbox to the
   model's input size, RGB, /255), fed in small chunks to the calibrator (min-max, entropy or
   percentile), so memory stays bounded whatever the sample size;
4. ``quantize_static``: QDQ format, per-channel symmetric QInt8 weights (by default 7-bit
   on x86 CPUs without VNNI, 8-bit elsewhere: ``reduce_range``, see :func:`quantize_model`),
   QUInt8 (default) or QInt8 activations, min-max calibration by default (:data:`DEFAULTS`); nodes matching ``keep_float`` stay in float
   (``"decode+stem"``, the default: the head's decoding tail, its convolutions quantized,
   and the stem, the first convolution, which reads the 3-channel image, with its activation;
   ``"head"``: the last Detect module and everything computed from it. Some float tail is
   needed for YOLO: its output concatenates box coordinates in pixels with class scores in
   [0, 1], which one int8 scale cannot hold, and ``"none"`` is warned about in the record);
5. the int8 model is written atomically, keeps the source's metadata (class ``names``,
   ``imgsz``, …, so it loads with ``load_detector``) plus a ``quantization`` entry, and a
   record ``<out>.json`` (e.g. ``x-int8.onnx.json``) tells how it was made: source and output
   SHA-256, every calibration image with its SHA-256, the settings, the excluded nodes and the
   package versions.

Where the time goes (``benchmarks/quantize.py --profile``, ONNX Runtime's profiler, the
default detector at 320 px, one thread). On an AMD EPYC with AVX-512 VNNI, int8
``QLinearConv`` runs the convolutions about 3.1-3.3x faster than the fp32 NCHWc ``Conv`` (6.3
against 19-21 ms). The 3-channel stem convolution is the exception: 1.2 ms in int8, more than
in fp32, hence ``"stem"`` in the default ``keep_float``. SiLU costs more in int8
(``QLinearSigmoid`` + ``QLinearMul``, about 2.3 ms) than the fused fp32 ``QuickGelu`` (about
1.3 ms); ``QLinearConcat`` requantizes inputs of different scales (0.48 ms; see
``share_concat_scales``). The whole model runs about 2.35x faster than fp32 (23 against 10 ms
on a busy afternoon), within 0.005 mAP of it on every calibration sample tried (546 held-out
images); 7-bit weights cost about 0.01. On an AVX2
CPU without VNNI, int8 convolutions were only 1.5x faster, the model 1.3x, and 8-bit weights
cost 0.066 mAP (u8s8 saturation): hence :func:`auto_reduce_range`.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import platform
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from oddsuite.errors import ModelError, SuiteError
from oddsuite.fileio import atomic_path, sha256_file, write_json
from oddsuite.models.base import model_info
from oddsuite.models.common import preprocess
from oddsuite.quant.rewrite import concat_scale_groups, nearest_upsample_as_expand
from oddsuite.suite.layout import MANIFEST
from oddsuite.suite.reader import read_annotations, read_image

log = logging.getLogger(__name__)

RECORD_FORMAT = "oddsuite-quantize/1"
METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("quint8", "qint8")
#: images per calibrator pass (intermediate outputs of a chunk are held in memory at once)
CALIB_CHUNK = 4
#: metadata key the int8 model carries (a JSON summary of the settings)
META_KEY = "quantization"

_MODULE_RE = re.compile(r"(?:^|/)model\.(\d+)(?=/|$)")


# --------------------------------------------------------------------------- calibration data


def calibration_sample(suite_dir: str | Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """A seeded sample of ``n`` images of the suite (all of them when it has fewer), in suite
    order: ``[{"image_id", "file_name"}]``. The draw uses ``Generator(SeedSequence([seed, n_images]))``
    over the suite's image list, so the same suite, count and seed give the same images."""
    if n < 1:
        raise ValueError(f"calibration images: expected a positive count, got {n}")
    root = Path(suite_dir)
    images = read_annotations(root)["images"]
    if not images:
        raise SuiteError(f"{root}: annotations.json: images: expected a non-empty list")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), len(images)]))
    pick = np.arange(len(images)) if n >= len(images) else np.sort(rng.choice(len(images), size=n, replace=False))
    out = []
    for i in pick.tolist():
        im = images[i]
        path = root / im["file_name"]
        if not path.is_file():
            raise SuiteError(f"{path}: image file missing (annotations.json images id {im['id']})")
        out.append({"image_id": int(im["id"]), "file_name": str(im["file_name"])})
    return out


def _calibration_reader_base():
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


class SuiteCalibrationReader(_calibration_reader_base()):  # type: ignore[misc]
    """ONNX Runtime calibration data: the given images, pre-processed as the ONNX adapter does.

    Each item is ``{input_name: float32 (batch, 3, H, W)}``; ``batch`` is 1, or the model's
    fixed batch size (the last batch then repeats images from the start of the sample rather
    than padding with black). Images are read lazily; supports ``len`` and ``set_range`` so
    the calibrator can be fed in chunks.
    """

    def __init__(self, paths: Sequence[Path], input_name: str, input_hw: tuple[int, int], batch: int = 1):
        self.paths = [Path(p) for p in paths]
        self.input_name = input_name
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.batch = max(1, int(batch))
        n = len(self.paths)
        self.groups = [[(i + j) % n for j in range(self.batch)] for i in range(0, n, self.batch)]
        self.start, self.end = 0, len(self.groups)
        self.pos = 0

    def __len__(self) -> int:
        return len(self.groups)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = int(start_index), min(int(end_index), len(self.groups))
        self.pos = self.start

    def batch_array(self, k: int) -> np.ndarray:
        x, _ = preprocess([read_image(self.paths[i]) for i in self.groups[k]], self.input_hw)
        return x

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= self.end:
            return None
        x = self.batch_array(self.pos)
        self.pos += 1
        return {self.input_name: x}


# --------------------------------------------------------------------------- which nodes stay float


def _module_index(name: str) -> int | None:
    found = _MODULE_RE.findall(name)
    return int(found[-1]) if found else None


def downstream_nodes(model, seeds: Iterable[str]) -> list[str]:
    """Names of the nodes ``seeds`` and of every node computed (transitively) from their outputs."""
    seeds = set(seeds)
    keep: list[str] = []
    tainted: set[str] = set()
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.name in seeds or any(i in tainted for i in node.input if i):
            keep.append(node.name)
            tainted.update(o for o in node.output if o)
    return keep


def _module_indices(model, what: str) -> list[int]:
    """The ``model.N`` module numbers in the node names; ModelError naming ``what`` when none."""
    indices = [i for i in (_module_index(n.name) for n in model.graph.node) if i is not None]
    if not indices:
        raise ModelError(f"cannot tell {what} from the node names (no '/model.N/' module paths); "
                         "pass --keep-float with a node-name regex, or 'none'")
    return indices


def head_nodes(model) -> list[str]:
    """The nodes of the detection head: those of the last ``model.N`` module (ultralytics
    module paths in node names, as both ultralytics' and oddsuite's exporters write them),
    plus every node computed from them (decoding, concatenation of the output)."""
    last = max(_module_indices(model, "the detection head"))
    return downstream_nodes(model, [n.name for n in model.graph.node if _module_index(n.name) == last])


def decode_nodes(model) -> list[str]:
    """The decoding tail of a YOLO head: the nodes of the last ``model.N`` module that are not
    inside one of its convolution branches (``cv2.*``, ``cv3.*``, ...), i.e. the per-level
    concatenation, the DFL, the box arithmetic and the class sigmoid, and everything after
    them. The head's convolutions are quantized."""
    head = set(head_nodes(model))
    last = max(i for i in (_module_index(n) for n in head) if i is not None)
    branch = re.compile(rf"(?:^|/)model\.{last}/cv\d+[./]")
    seeds = [n.name for n in model.graph.node if n.name in head and not branch.search(n.name)]
    if not seeds or len(seeds) == len(head):
        raise ModelError("cannot tell the head's decoding from its convolution branches (no 'cvN.' submodules "
                         "in the last module); use --keep-float head or a node-name regex")
    return downstream_nodes(model, seeds)


def stem_nodes(model) -> list[str]:
    """The stem: the nodes of the first module (``model.0``: the convolution that reads the
    three-channel image, and its activation), alone, not what is computed from them. With 3
    input channels an int8 convolution cannot fill its dot-product instructions (VNNI sums
    4 bytes per lane), so ONNX Runtime's QLinearConv runs it slower than the fp32 NCHWc one;
    kept float, the stem's output is quantized once, before the next convolution."""
    first = min(_module_indices(model, "the stem"))
    return [n.name for n in model.graph.node if _module_index(n.name) == first]


def nodes_to_keep_float(model, keep_float: str | Sequence[str] | None) -> list[str]:
    """``keep_float``: ``"head"``, ``"decode"``, ``"stem"`` (the first module alone),
    ``"none"`` (or None / ""), or a regular expression searched in node names; the matched
    nodes and every node computed from them stay in float. A list of such specs, or one
    string joining them with ``+`` (``"decode+stem"``), keeps the union (in graph order)."""
    if isinstance(keep_float, str) and "+" in keep_float:
        keep_float = [k for k in keep_float.split("+") if k.strip()]
    if isinstance(keep_float, (list, tuple)):
        keep = set()
        for k in keep_float:
            keep.update(nodes_to_keep_float(model, k))
        return [n.name for n in model.graph.node if n.name in keep]
    spec = (keep_float or "none").strip()
    if spec == "none":
        return []
    if spec == "head":
        return head_nodes(model)
    if spec == "decode":
        return decode_nodes(model)
    if spec == "stem":
        return stem_nodes(model)
    try:
        rx = re.compile(spec)
    except re.error as e:
        raise ModelError(f"--keep-float {spec!r}: not a valid regular expression ({e})") from e
    hit = [n.name for n in model.graph.node if n.name and rx.search(n.name)]
    if not hit:
        sample = [n.name for n in model.graph.node if n.name][:5]
        raise ModelError(f"--keep-float {spec!r}: matches no node name (names look like {sample})")
    return downstream_nodes(model, hit)


# --------------------------------------------------------------------------- the source model


@dataclass(frozen=True)
class FloatSource:
    """The fp32 ONNX file to quantize and where it came from."""

    onnx_path: Path
    kind: str  # "onnx" (given as ONNX) or "exported" (exported here from another format)
    source_path: Path
    source_sha256: str  # of the weights file load_detector read
    onnx_sha256: str
    name: str
    classes: dict[int, str]
    input_hw: tuple[int, int]


def float_onnx(model: str | Path, work_dir: str | Path, *, sha256: str | None = None,
               trust_pickle: bool = False) -> FloatSource:
    """The model as an fp32 ONNX file: as it is, or exported into ``work_dir``."""
    from oddsuite.models.loader import load_detector
    from oddsuite.models.onnx_rt import onnx_file_of

    det = load_detector(model, sha256=sha256, trust_pickle=trust_pickle)
    info = model_info(det)
    found = onnx_file_of(det, Path(work_dir) / "fp32.onnx")
    if found is None:
        raise ModelError(f"{model}: {type(det).__name__} can neither be quantized nor exported to ONNX")
    path, kind = found
    if kind == "onnx" and info.precision in ("fp16", "fp64"):
        raise ModelError(f"{path}: input is {info.precision}; quantization needs an fp32 model")
    hw = info.input_hw
    return FloatSource(Path(path), "onnx" if kind == "onnx" else "exported", Path(info.source or model),
                       str(info.sha256), sha256_file(path), str(det.name), dict(det.classes),
                       (int(hw[0]), int(hw[1])))


def pre_process(src: Path, dst: Path) -> dict[str, Any]:
    """``quant_pre_process`` with symbolic shape inference when it completes; returns what was done.

    Runs with the working directory set to ``dst``'s folder: ONNX Runtime's symbolic shape
    inference leaves ``sym_shape_infer_temp.onnx`` and a ``<uuid>.data`` file in the current
    directory when it gives up, which it does on YOLO heads with a dynamic batch.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    cwd = os.getcwd()
    os.chdir(dst.parent)
    try:
        try:
            quant_pre_process(str(src), str(dst))
            return {"symbolic_shape_inference": True, "onnx_shape_inference": True, "ort_optimization": True}
        except Exception as e:  # noqa: BLE001 - symbolic inference gives up on dynamic-batch YOLO heads
            log.info("symbolic shape inference failed (%s); pre-processing without it", e)
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
            return {"symbolic_shape_inference": False, "onnx_shape_inference": True, "ort_optimization": True}
        except Exception as e:
            raise ModelError(f"{src}: ONNX Runtime quantization pre-processing failed: {type(e).__name__}: {e}") from e
    finally:
        os.chdir(cwd)


# --------------------------------------------------------------------------- quantize


def output_warnings(model, max_step: float = 0.01) -> list[str]:
    """Warnings about graph outputs that leave through a QDQ pair with a coarse step: a YOLO
    output concatenates box coordinates (pixels) and class scores ([0, 1]) in one tensor, so
    one int8 scale for both leaves the scores a few levels, or none, at the operating point."""
    from onnx import numpy_helper

    init = {i.name: i for i in model.graph.initializer}
    prod = {o: n for n in model.graph.node for o in n.output}
    out = []
    for o in model.graph.output:
        n = prod.get(o.name)
        if n is None or n.op_type != "DequantizeLinear" or len(n.input) < 2 or n.input[1] not in init:
            continue
        step = float(np.max(numpy_helper.to_array(init[n.input[1]])))
        if step > max_step:
            out.append(f"output {o.name!r} is quantized with a step of {step:.4g}: class scores in [0, 1] keep "
                       f"only {max(0, int(1 / step))} levels; keep the detection head in float (--keep-float head)")
    return out


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    record_path: Path
    record: dict[str, Any]


def record_path_for(out: str | Path) -> Path:
    """``<out>.json``: the record written beside the quantized model."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def _versions(exported: bool) -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("oddsuite", "onnx", "onnxruntime", "numpy") + (("torch", "ultralytics") if exported else ()):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _chunk_size(n: int, most: int = CALIB_CHUNK) -> int:
    """Largest divisor of n that is at most ``most`` (ORT's strided calibration needs one)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _suite_manifest_sha(suite: Path) -> str | None:
    m = suite / MANIFEST
    return sha256_file(m) if m.is_file() else None


#: the deployment recipe (benchmarks/quantize.py measures it against the alternatives): min-max
#: calibration, the head's convolutions quantized (only its decoding tail float), the stem (the
#: 3-channel first convolution) float, the weights' range chosen for the CPU (``auto_reduce_range``).
#: Min-max, not the 99.999th percentile (the default until 2026-12-02): on the default detector
#: (546 held-out images) calibration samples of 32 images lost 0.001-0.012 mAP with min-max
#: (five samples) and 0.006-0.014 with the percentile (four); samples of 64 images moved it by
#: -0.002..+0.003 with min-max (five) and -0.007..-0.009 with the percentile (three)
DEFAULTS = {"method": "minmax", "keep_float": "decode+stem", "reduce_range": None}

#: the x86 instruction sets with an int8 dot product that accumulates in 32 bits
INT8_DOT_ISA = ("avx512_vnni", "avx_vnni", "amx_int8")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_int8_isa() -> tuple[str, ...]:
    """The int8-relevant instruction sets of this CPU (``avx2``, ``avx512f``, ``avx512_vnni``,
    ``avx_vnni``, ``amx_int8``), from ``/proc/cpuinfo``'s flags; empty where it cannot be read."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return tuple(sorted(f for f in flags if f in ("avx2", "avx512f") + INT8_DOT_ISA))


def auto_reduce_range(isa: Sequence[str], machine: str) -> tuple[bool, str]:
    """``(reduce_range, why)`` for a model to run on a CPU with instruction sets ``isa`` and
    architecture ``machine`` (``platform.machine()``). 7-bit weights on x86 without an int8 dot
    product (``INT8_DOT_ISA``): ONNX Runtime's u8s8 kernels there (AVX2 ``VPMADDUBSW``) add
    pairs of products in int16 and saturate with 8-bit weights (-0.066 mAP on the default
    detector). 8-bit weights everywhere else (VNNI and AMX accumulate in 32 bits; ARM's kernels
    do not use the int16 pairs): 7-bit weights halve their resolution (-0.018 mAP against
    -0.006 with 8-bit on AVX-512 VNNI, benchmarks/quantize.py). ONNX Runtime's documentation
    gives the same rule for ``reduce_range``."""
    dot = [f for f in isa if f in INT8_DOT_ISA]
    if machine.lower() not in _X86:
        return False, f"8-bit weights: not an x86 CPU ({machine}), no int16 pair saturation"
    if dot:
        return False, f"8-bit weights: this CPU has {', '.join(dot)} (32-bit accumulation)"
    return True, ("7-bit weights: this x86 CPU has no VNNI or AMX-INT8, and its u8s8 kernels saturate "
                  "with 8-bit weights")


def _settings(method: str, activations: str, per_channel: bool, keep_float: str | Sequence[str] | None, n_kept: int,
              percentile: float, reduce_range: bool, op_types: Sequence[str] | None) -> dict[str, Any]:
    return {
        "method": method, "quant_format": "QDQ", "per_channel": bool(per_channel), "weight_type": "QInt8",
        "weight_symmetric": True, "activation_type": "QUInt8" if activations == "quint8" else "QInt8",
        "reduce_range": bool(reduce_range),
        "keep_float": "+".join(keep_float) if isinstance(keep_float, (list, tuple)) else (keep_float or "none"),
        "n_nodes_kept_float": n_kept,
        **({"percentile": float(percentile)} if method == "percentile" else {}),
        **({"op_types": sorted(op_types)} if op_types else {}),
    }


def _quantize_static(pre: Path, dst: Path, reader: SuiteCalibrationReader, *, method: str, activations: str,
                     per_channel: bool, exclude: list[str], percentile: float, stride: int, source: Path,
                     reduce_range: bool, op_types: Sequence[str] | None,
                     overrides: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Step 4: ONNX Runtime's ``quantize_static`` (QDQ, QInt8 weights, 7-bit with ``reduce_range``;
    the operator types ``op_types``, default all it can; ``overrides``: its
    ``TensorQuantOverrides``) fed by ``reader`` in strided chunks; its progress prints are
    logged, its failures are ModelErrors."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra: dict[str, Any] = {"CalibStridedMinMax": stride, "WeightSymmetric": True}
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    cal = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}[method]
    act_type = QuantType.QUInt8 if activations == "quint8" else QuantType.QInt8
    chatter = io.StringIO()  # ORT's calibrators print progress; library code only logs
    try:
        with contextlib.redirect_stdout(chatter):
            quantize_static(str(pre), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=bool(reduce_range), activation_type=act_type,
                            weight_type=QuantType.QInt8, calibrate_method=cal, nodes_to_exclude=exclude,
                            extra_options=extra, op_types_to_quantize=list(op_types) if op_types else None)
    except (SuiteError, ModelError):
        raise
    except Exception as e:
        raise ModelError(f"{source}: ONNX Runtime quantization failed: {type(e).__name__}: {e}") from e
    finally:
        if chatter.getvalue().strip():
            log.debug("onnxruntime: %s", chatter.getvalue().strip())


def _publish(qm, out: Path, src: FloatSource, settings: dict[str, Any], n_images: int, seed: int,
             input_hw: tuple[int, int]) -> None:
    """Step 5: the int8 model keeps the source's metadata plus a ``quantization`` entry, must
    pass the ONNX checker and load in the adapter, and only then replaces ``out``."""
    import onnx

    from oddsuite.models.onnx_rt import OnnxDetector, set_metadata

    meta = {p.key: p.value for p in qm.metadata_props}
    meta.pop("onnx.infer", None)
    meta.update({
        "description": f"oddsuite int8 (QDQ) of {src.name}",
        "source_sha256": src.onnx_sha256,
        META_KEY: json.dumps({**settings, "calibration_images": n_images, "seed": int(seed)}, sort_keys=True),
    })
    if "names" not in meta:
        meta["names"] = str(src.classes)
    if "imgsz" not in meta:
        meta["imgsz"] = str(list(input_hw))
    set_metadata(qm, meta)
    onnx.checker.check_model(qm)
    with atomic_path(out) as final_tmp:
        onnx.save(qm, str(final_tmp))
        OnnxDetector(final_tmp, name=out.stem)  # it must load in the adapter before it is published


def _record(out: Path, ops: dict[str, int], src: FloatSource, input_hw: tuple[int, int], suite: Path,
            sample: list[dict[str, Any]], *, calib_images: int, seed: int, batch: int, chunk: int,
            settings: dict[str, Any], pre_info: dict[str, Any], exclude: list[str], warnings: list[str]) -> dict:
    """The ``<out>.json`` record: output and source hashes, every calibration image with its
    SHA-256, the settings, the nodes kept float, warnings and package versions."""
    return {
        "format": RECORD_FORMAT,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output": {"path": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size,
                   "n_nodes": sum(ops.values()), "op_counts": ops},
        "source": {"path": str(src.source_path), "sha256": src.source_sha256, "kind": src.kind,
                   "onnx_sha256": src.onnx_sha256, "name": src.name,
                   "classes": {str(k): v for k, v in sorted(src.classes.items())},
                   "input_hw": list(input_hw)},
        "calibration": {
            "suite": str(suite.resolve()), "suite_manifest_sha256": _suite_manifest_sha(suite),
            "n_requested": int(calib_images), "n_images": len(sample), "seed": int(seed),
            "sampling": "numpy Generator(SeedSequence([seed, n_suite_images])).choice without replacement, "
                        "in suite order",
            "preprocess": f"oddsuite.models.common.preprocess: letterbox to {input_hw[0]}x{input_hw[1]} "
                          "(pad 114), RGB, /255, NCHW float32",
            "batch": batch, "chunk": chunk,
            "images": [{**s, "sha256": sha256_file(suite / s["file_name"])} for s in sample],
        },
        "settings": settings,
        "pre_process": pre_info,
        "nodes_kept_float": exclude,
        "warnings": warnings,
        "versions": _versions(src.kind == "exported"),
    }


def quantize_model(model: str | Path, calib_suite: str | Path, out: str | Path, *, calib_images: int = 64,
                   seed: int = 0, method: str = DEFAULTS["method"],
                   keep_float: str | Sequence[str] | None = DEFAULTS["keep_float"],
                   activations: str = "quint8", per_channel: bool = True, sha256: str | None = None,
                   trust_pickle: bool = False, percentile: float = 99.999,
                   reduce_range: bool | None = DEFAULTS["reduce_range"],
                   op_types: Sequence[str] | None = None,
                   share_concat_scales: float | None = None) -> QuantizeResult:
    """Quantize ``model`` to int8 (QDQ) calibrated on ``calib_images`` images of ``calib_suite``;
    write it to ``out`` and the record to ``<out>.json``. See the module doc for each step.

    ``reduce_range``: 7-bit weights (True) or 8-bit (False); None (the default) chooses for the
    CPU that quantizes, which is taken to be the CPU the model will run on
    (:func:`auto_reduce_range`: 7-bit only on x86 without VNNI or AMX-INT8); the record's
    ``settings.weights_range`` says which and why. Pass it explicitly for another target.
    ``op_types``: the operator types to quantize (default: all ONNX Runtime can).
    ``share_concat_scales``: None (default) or the widening W >= 1 allowed to give each Concat's
    inputs and output one scale (:func:`oddsuite.quant.rewrite.concat_scale_groups`): the model
    is calibrated and quantized twice, the second time with the groups whose union range is at
    most W times a member's own; ONNX Runtime then copies instead of requantizing. Faster, and
    less accurate where a narrow input takes a wide scale (``benchmarks/quantize.py``, recipe
    ``shared-concat``)."""
    import onnx

    from oddsuite.models.onnx_rt import OnnxDetector

    method, activations = method.lower(), activations.lower()
    if reduce_range is None:
        reduce_range, why = auto_reduce_range(cpu_int8_isa(), platform.machine())
        why = f"auto: {why}"
    else:
        why = f"given: {'7' if reduce_range else '8'}-bit weights"
    if method not in METHODS:
        raise ModelError(f"--method: expected one of {list(METHODS)}, got {method!r}")
    if share_concat_scales is not None and (isinstance(share_concat_scales, bool)
                                            or not isinstance(share_concat_scales, (int, float))
                                            or not (math.isfinite(share_concat_scales) and share_concat_scales >= 1)):
        raise ModelError(f"--share-concat-scales: expected a widening >= 1 (1.5: half a bit), got {share_concat_scales}")
    if activations not in ACTIVATION_TYPES:
        raise ModelError(f"--activations: expected one of {list(ACTIVATION_TYPES)}, got {activations!r}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ModelError(f"{out}: the quantized model is an ONNX file; name it *.onnx")
    suite = Path(calib_suite)
    sample = calibration_sample(suite, calib_images, seed)
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".oddsuite-quant.", dir=out.parent) as tmp:
        tmp = Path(tmp)
        src = float_onnx(model, tmp, sha256=sha256, trust_pickle=trust_pickle)
        probe = OnnxDetector(src.onnx_path, classes=src.classes)
        input_name, input_hw, fixed_batch = probe.input_name, probe.input_hw, probe.fixed_batch
        del probe
        pre = tmp / "pre.onnx"
        pre_info = pre_process(src.onnx_path, pre)
        pm = onnx.load(str(pre))
        pre_info["nearest_upsample_as_expand"] = nearest_upsample_as_expand(pm)
        if pre_info["nearest_upsample_as_expand"]:
            onnx.save(pm, str(pre))
        exclude = nodes_to_keep_float(pm, keep_float)
        def reader():
            return SuiteCalibrationReader([suite / s["file_name"] for s in sample], input_name, input_hw,
                                          batch=fixed_batch or 1)

        stride = _chunk_size(len(reader()))
        log.info("quantizing %s: %d calibration images, %s, %d nodes kept float", src.onnx_path, len(sample),
                 method, len(exclude))
        common = dict(method=method, activations=activations, per_channel=per_channel, exclude=exclude,
                      percentile=percentile, stride=stride, source=src.onnx_path, reduce_range=reduce_range,
                      op_types=op_types)
        _quantize_static(pre, tmp / "int8.onnx", reader(), **common)
        concat_groups = None
        if share_concat_scales is not None:
            overrides, concat_groups = concat_scale_groups(onnx.load(str(tmp / "int8.onnx")),
                                                           float(share_concat_scales))
            log.info("sharing the scales of %d of %d Concat groups", sum(g["shared"] for g in concat_groups),
                     len(concat_groups))
            if overrides:
                _quantize_static(pre, tmp / "int8.onnx", reader(), overrides=overrides, **common)
        qm = onnx.load(str(tmp / "int8.onnx"))
        warnings = output_warnings(qm)
        for w in warnings:
            log.warning("%s: %s", out, w)
        settings = _settings(method, activations, per_channel, keep_float, len(exclude), percentile,
                             reduce_range, op_types)
        settings["weights_range"] = why
        if share_concat_scales is not None:
            settings["share_concat_scales"] = float(share_concat_scales)
        _publish(qm, out, src, settings, len(sample), seed, input_hw)
        ops = _op_counts(qm)

    record = _record(out, ops, src, input_hw, suite, sample, calib_images=calib_images, seed=seed,
                     batch=int(fixed_batch or 1), chunk=int(stride), settings=settings, pre_info=pre_info,
                     exclude=exclude, warnings=warnings)
    if concat_groups is not None:
        record["concat_scale_groups"] = concat_groups
    rec_path = record_path_for(out)
    write_json(rec_path, record, sort_keys=False, nan="null")
    return QuantizeResult(out, rec_path, record)


def read_record(path: str | Path) -> dict[str, Any]:
    """The record of a quantized model (``<model>.json``, or the model path itself)."""
    p = Path(path)
    if p.suffix == ".onnx":
        p = record_path_for(p)
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{p}: cannot read the quantization record: {e}") from e
    if not isinstance(rec, Mapping) or rec.get("format") != RECORD_FORMAT:
        raise ModelError(f"{p}: not an oddsuite quantization record (format {RECORD_FORMAT})")
    return dict(rec)

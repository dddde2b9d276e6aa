"""ONNX Runtime adapter (fp32 or int8 ONNX files, including ultralytics YOLO exports) and
:func:`export_onnx`, which writes such a file from the ultralytics adapter, offline.

Pre-processing (letterbox) and decoding + NMS are ours (oddsuite.models.common), the same as
the torch adapter's, so both agree on the same weights up to floating-point noise.
Class names come from the ONNX metadata (``names``, as ultralytics writes it) or from a
sidecar card (``<stem>.json`` or ``model.json`` beside the file), the card winning.
"""
from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from oddsuite.errors import ModelError
from oddsuite.fileio import atomic_write_bytes
from oddsuite.models.base import MAP_CONF_FLOOR, Detections, ModelInfo, is_torch_detector, model_info
from oddsuite.models.common import MAX_DET, NMS_IOU, check_files_pin, normalize_imgsz, parse_names, predict_batched

log = logging.getLogger(__name__)


def _dim(v) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and int(v) > 0 else None


def _open_session(path: Path, providers: Sequence[str] | None, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:
        raise ModelError(f"{path}: ONNX Runtime cannot load the model: {e}") from e


def _input_hw(path: Path, shape: Sequence, imgsz: int | Sequence[int] | None, meta: dict[str, str]) -> tuple[int, int]:
    """The input size: fixed in the graph, else ``imgsz``, else the ``imgsz`` metadata, else 640."""
    h, w = _dim(shape[2]), _dim(shape[3])
    if h and w:
        hw = (h, w)
    elif imgsz is not None:
        hw = normalize_imgsz(imgsz)
    elif meta.get("imgsz"):
        try:
            hw = normalize_imgsz(_literal(meta["imgsz"]))
        except (ValueError, SyntaxError) as e:
            raise ModelError(f"{path}: metadata 'imgsz': {e}") from e
    else:
        hw = (640, 640)
    if imgsz is not None and normalize_imgsz(imgsz) != hw:
        log.warning("%s: input is fixed at %s; ignoring imgsz=%s", path, hw, imgsz)
    return hw


def _class_names(path: Path, classes: dict[int, str] | None, meta: dict[str, str], out_shape: Sequence) -> dict[int, str]:
    """Class names: given (a card), else the ``names`` metadata, else class0..; checked against the output."""
    if classes is None and meta.get("names"):
        try:
            classes = parse_names(meta["names"])
        except ValueError as e:
            raise ModelError(f"{path}: metadata 'names': {e}") from e
    nc_out = _dim(out_shape[1]) - 4 if len(out_shape) == 3 and _dim(out_shape[1]) and _dim(out_shape[1]) > 4 else None
    if classes is None:
        if nc_out is None:
            raise ModelError(f"{path}: no class names (no 'names' metadata and no sidecar card) and the "
                             f"output shape {out_shape} does not tell the number of classes")
        classes = {i: f"class{i}" for i in range(nc_out)}
        log.warning("%s: no class names in metadata or a sidecar card; using class0..class%d", path, nc_out - 1)
    classes = {int(k): str(v) for k, v in classes.items()}
    if sorted(classes) != list(range(len(classes))):
        raise ModelError(f"{path}: class indices must be 0..n-1, got {sorted(classes)[:10]}")
    if nc_out is not None and nc_out != len(classes) and not (len(out_shape) == 3 and _dim(out_shape[2]) == 6):
        raise ModelError(f"{path}: output has {nc_out} classes but {len(classes)} names are given")
    return classes


def model_files(path: str | Path) -> dict[str, Path]:
    """Every file an ONNX model is loaded from: the ``.onnx`` and each external data file its
    tensors name (``onnx.save_model(..., save_as_external_data=True)``), by path relative to
    the model's folder (POSIX separators). Reads the graph without its external data. An
    external location outside the model's folder, absolute, or not a regular file is a
    ModelError: ONNX Runtime would otherwise read any file the model names."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path}: not a readable ONNX file: {e}") from e
    base = path.parent.resolve()
    files = {path.name: path}
    for tensor in _get_all_tensors(proto):
        if not uses_external_data(tensor):
            continue
        loc = ExternalDataInfo(tensor).location
        target = (base / loc).resolve()
        if not loc or Path(loc).is_absolute() or base not in target.parents:
            raise ModelError(f"{path}: tensor {tensor.name!r} names external data {loc!r} outside the model's "
                             f"folder {base}; refused")
        if not target.is_file():
            raise ModelError(f"{path}: tensor {tensor.name!r} names external data {loc!r}, which is not a file "
                             f"in {base}")
        files.setdefault(target.relative_to(base).as_posix(), target)
    return dict(sorted(files.items()))


class OnnxDetector:
    """A Detector running a YOLO-style ONNX model in ONNX Runtime (CPU by default).

    ``sha256`` / ``files``: the model's pin and per-file hashes when the caller has checked
    them already (``load_detector``); otherwise every file of the model (the ``.onnx`` and its
    external data) is hashed here. ``info`` (ModelInfo) records them.
    """

    def __init__(self, path: str | Path, classes: dict[int, str] | None = None, imgsz: int | Sequence[int] | None = None,
                 name: str | None = None, *, sha256: str | None = None, files: dict[str, str] | None = None,
                 batch_size: int = 16, iou: float = NMS_IOU, max_det: int = MAX_DET,
                 providers: Sequence[str] | None = None, threads: int | None = None):
        self.source = Path(path)
        self.session = _open_session(self.source, providers, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.source}: expected one image input, found {[i.name for i in inputs]}")
        inp = inputs[0]
        if len(inp.shape) != 4:
            raise ModelError(f"{self.source}: input {inp.name!r} has shape {inp.shape}; expected (N, 3, H, W)")
        if "float" not in inp.type:
            raise ModelError(f"{self.source}: input {inp.name!r} is {inp.type}; expected a float tensor")
        self.input_name = inp.name
        self.output_name = outputs[0].name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.fixed_batch = _dim(inp.shape[0])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.input_hw: tuple[int, int] = _input_hw(self.source, inp.shape, imgsz, self.metadata)
        self.imgsz = self.input_hw[0] if self.input_hw[0] == self.input_hw[1] else self.input_hw
        self.classes: dict[int, str] = _class_names(self.source, classes, self.metadata, outputs[0].shape)
        self.name = name or self.source.stem
        if files is None or sha256 is None:
            sha256, files = check_files_pin(model_files(self.source), sha256, self.source)
        self.batch_size = int(batch_size)
        self.iou = float(iou)
        self.max_det = int(max_det)
        precision = ("int8" if "quantization" in self.metadata else "fp16" if "float16" in inp.type
                     else "fp64" if "double" in inp.type else "fp32")
        self.info = ModelInfo(sha256=sha256, files=dict(files), source=str(self.source), format="onnx",
                              precision=precision, input_hw=self.input_hw)

    @property
    def nc(self) -> int:
        return len(self.classes)

    def raw(self, batch: np.ndarray) -> np.ndarray:
        """Network output for a pre-processed NCHW float32 batch."""
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        fb = self.fixed_batch
        if fb is None or fb == len(x):
            return np.asarray(self.session.run([self.output_name], {self.input_name: x})[0], dtype=np.float32)
        outs = []
        for i in range(0, len(x), fb):
            part = x[i:i + fb]
            n = len(part)
            if n < fb:
                part = np.concatenate([part, np.zeros((fb - n,) + part.shape[1:], part.dtype)])
            outs.append(np.asarray(self.session.run([self.output_name], {self.input_name: part})[0][:n], np.float32))
        return np.concatenate(outs)

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        return predict_batched(self, images, conf)

    def __repr__(self) -> str:
        return f"OnnxDetector(name={self.name!r}, nc={self.nc}, input_hw={self.input_hw}, source={self.source})"


def _literal(text):
    import ast

    return ast.literal_eval(text) if isinstance(text, str) else text


def _raw_output_module(model):
    """Wrap a DetectionModel so that its forward returns only the decoded tensor (B, 4 + nc, N)."""
    import torch

    class RawOutput(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            y = self.m(x)
            return y[0] if isinstance(y, (tuple, list)) else y

    return RawOutput(model)


def export_onnx(detector, path: str | Path, imgsz: int | Sequence[int] | None = None, *, opset: int = 17,
                dynamic_batch: bool = True) -> Path:
    """Write an fp32 ONNX file from a torch-backed detector (:class:`TorchDetector`, e.g. the
    ultralytics adapter), offline, atomically.

    The input is ``images`` (N, 3, H, W) float32 RGB in [0, 1] (N dynamic unless
    ``dynamic_batch=False``; H, W = ``imgsz``, default the detector's ``info.input_hw``), the
    output ``output0`` (N, 4 + nc, A) like an ultralytics export, and the metadata carries
    ``names``, ``imgsz``, ``stride``, ``task`` the way ultralytics writes them, so this
    adapter and ultralytics tools both read it. Uses torch's TorchScript-based exporter
    directly: no onnxslim/onnxsim, nothing installed or fetched. The head's DFL is written as
    element-wise ops, the same values to float rounding (:func:`_dfl_expectation`), because
    ONNX Runtime's Softmax over its 16 bins cost as much as all of yolov8n's SiLUs; each C2f
    splits with constant sizes (:func:`_split_with_constant_sizes`), as ultralytics' exporter
    does.
    """
    import onnx

    if not is_torch_detector(detector):
        raise ModelError(f"export_onnx needs a torch-backed detector (with .torch_model), got {type(detector).__name__}")
    info = model_info(detector)
    hw = normalize_imgsz(imgsz if imgsz is not None else (info.input_hw or 640))
    stride = _stride(detector.torch_model)
    if hw[0] % stride or hw[1] % stride:
        raise ModelError(f"imgsz {hw} must be a multiple of the model stride {stride}")
    om = _trace(detector.torch_model, hw, opset, dynamic_batch)
    meta = {
        "description": f"oddsuite export of {detector.name}",
        "author": "oddsuite",
        "task": "detect",
        "stride": str(stride),
        "batch": "-1" if dynamic_batch else "1",
        "imgsz": str([hw[0], hw[1]]),
        "names": str({int(k): str(v) for k, v in detector.classes.items()}),
        "channels": "3",
        "end2end": "False",
        "source_sha256": str(info.sha256 or ""),
    }
    set_metadata(om, meta)
    onnx.checker.check_model(om)
    out = Path(path)
    atomic_write_bytes(out, om.SerializeToString())
    return out


def _stride(model) -> int:
    import torch

    return int(max(getattr(model, "stride", torch.tensor([32])).tolist()))


def _trace(model, hw: tuple[int, int], opset: int, dynamic_batch: bool):
    """The ONNX graph of an eval-mode copy of ``model`` whose head outputs the decoded (B, 4 + nc, N)."""
    import onnx
    import torch

    m = copy.deepcopy(model).to("cpu").float().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    _dfl_as_elementwise(m)
    _split_with_constant_sizes(m)
    head = m.model[-1]
    head.export = True
    head.format = "onnx"
    head.dynamic = False
    wrapped = _raw_output_module(m).eval()
    dummy = torch.zeros(1, 3, *hw)
    with torch.inference_mode():
        wrapped(dummy)  # settle anchors for this input size
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, dummy, buf, opset_version=opset, input_names=["images"], output_names=["output0"],
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None,
            do_constant_folding=True, dynamo=False,
        )
    return onnx.load_model_from_string(buf.getvalue())


def _split_with_constant_sizes(model) -> int:
    """Give each module of ``model`` (a copy being exported) that has ultralytics'
    ``forward_split`` (``C2f`` and its subclasses: ``split((c, c), 1)`` with Python ints instead of
    ``chunk(2, 1)``) that forward, as ultralytics' own ONNX exporter does; returns how many were
    changed. The same values. Traced with a dynamic batch, ``chunk`` computes its split points from
    ``Shape``: ONNX Runtime then materialised each C2f's ``cv1`` output in NCHW float (a
    ``Transpose`` and a ``DequantizeLinear`` in the int8 model) only to read its shape, and sliced
    channels out of NHWC data: with constant sizes it is one ``Split`` (int8 yolov8n at 320 px
    about 0.5 ms, 5%, faster; fp32 unchanged)."""
    try:
        from ultralytics.nn.modules.block import C2f
    except ImportError:  # not an ultralytics model
        return 0
    n = 0
    for mod in model.modules():
        if isinstance(mod, C2f) and callable(getattr(mod, "forward_split", None)) and "forward" not in vars(mod):
            mod.forward = mod.forward_split
            n += 1
    return n


def _dfl_expectation(self, x):
    """DFL (Li et al., "Generalized Focal Loss", NeurIPS 2020, eq. 5): the expected distance
    sum_i i * softmax(x)_i over the ``c1`` bins, written as ``sum_i i*e_i / sum_i e_i`` with
    ``e = exp(x - max_i x)``. The same value as ultralytics' ``DFL.forward`` (softmax over the
    bins, then a 1x1 convolution with weights 0..c1-1) to float rounding (~1e-6 bins), in
    element-wise ONNX ops: ONNX Runtime runs a Softmax over a 16-long non-last axis row by row
    (1.6 ms for yolov8n at 320 px on one thread, as much as all its SiLUs), these in 0.1 ms.
    x: (B, 4 * c1, A) logits; returns (B, 4, A)."""
    b, _, a = x.shape
    x = x.view(b, 4, self.c1, a)
    e = (x - x.amax(2, keepdim=True)).exp()
    return (e * self.conv.weight.view(1, 1, self.c1, 1)).sum(2) / e.sum(2)


def _dfl_as_elementwise(model) -> int:
    """Give each ultralytics ``DFL`` module of ``model`` (a copy being exported) the forward of
    :func:`_dfl_expectation`; returns how many were changed. A DFL whose integral convolution
    is not the fixed 0..c1-1 ramp (a trained or edited one) is left as it is."""
    import types

    import torch

    n = 0
    for mod in model.modules():
        if type(mod).__name__ != "DFL" or not hasattr(mod, "c1") or not isinstance(getattr(mod, "conv", None),
                                                                                  torch.nn.Conv2d):
            continue
        w = mod.conv.weight
        if w.shape != (1, mod.c1, 1, 1) or mod.conv.bias is not None or not torch.equal(
                w.detach().flatten().cpu(), torch.arange(mod.c1, dtype=w.dtype)):
            continue
        mod.forward = types.MethodType(_dfl_expectation, mod)
        n += 1
    return n


def set_metadata(model, meta: dict[str, str]) -> None:
    """Replace the metadata of an ONNX ModelProto with ``meta`` (in its order)."""
    del model.metadata_props[:]
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v


def onnx_file_of(detector, export_to: str | Path) -> tuple[Path, str] | None:
    """The detector as an ONNX file: ``(its own .onnx, "onnx")``, or ``(export_to, "exported")``
    after an fp32 export of a torch-backed detector at its own input size (an existing
    ``export_to`` is reused); None when it is neither."""
    info = model_info(detector)
    if info.format == "onnx" and info.source:
        return Path(info.source), "onnx"
    if is_torch_detector(detector):
        out = Path(export_to)
        if not out.is_file():
            export_onnx(detector, out)
        return out, "exported"
    return None

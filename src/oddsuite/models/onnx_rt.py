"""ONNX Runtime adapter (fp32 or int8 ONNX files, including ultralytics YOLO exports) and
:func:`export_onnx`, which writes such a file from the ultralytics adapter, offline.

Pre-processing (letterbox) and decoding + NMS are ours (oddsuite.models.common), the same as
the torch adapter's, so both agree on the same weights up to floating-point noise.
Class names come from the ONNX metadata (``names``, as ultralytics writes it) or from a
sidecar card (``<stem>.json`` or ``model.json`` beside the file), the card winning.
"""
from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from oddsuite.errors import ModelError
from oddsuite.fileio import atomic_path
from oddsuite.models.base import MAP_CONF_FLOOR, Detections
from oddsuite.models.common import MAX_DET, NMS_IOU, normalize_imgsz, parse_names, predict_batched, sha256_file

log = logging.getLogger(__name__)


def _dim(v) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and int(v) > 0 else None


class OnnxDetector:
    """A Detector running a YOLO-style ONNX model in ONNX Runtime (CPU by default)."""

    def __init__(self, path: str | Path, classes: dict[int, str] | None = None, imgsz: int | Sequence[int] | None = None,
                 name: str | None = None, *, sha256: str | None = None, batch_size: int = 16,
                 iou: float = NMS_IOU, max_det: int = MAX_DET, providers: Sequence[str] | None = None,
                 threads: int | None = None):
        import onnxruntime as ort

        self.source = Path(path)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.source), sess_options=so,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:
            raise ModelError(f"{self.source}: ONNX Runtime cannot load the model: {e}") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.source}: expected one image input, found {[i.name for i in inputs]}")
        inp = inputs[0]
        if len(inp.shape) != 4:
            raise ModelError(f"{self.source}: input {inp.name!r} has shape {inp.shape}; expected (N, 3, H, W)")
        self.input_name = inp.name
        self.output_name = outputs[0].name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        if "float" not in inp.type:
            raise ModelError(f"{self.source}: input {inp.name!r} is {inp.type}; expected a float tensor")
        self.fixed_batch = _dim(inp.shape[0])
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.metadata = meta

        h, w = _dim(inp.shape[2]), _dim(inp.shape[3])
        if h and w:
            hw = (h, w)
        elif imgsz is not None:
            hw = normalize_imgsz(imgsz)
        elif meta.get("imgsz"):
            try:
                hw = normalize_imgsz(_literal(meta["imgsz"]))
            except (ValueError, SyntaxError) as e:
                raise ModelError(f"{self.source}: metadata 'imgsz': {e}") from e
        else:
            hw = (640, 640)
        if imgsz is not None and normalize_imgsz(imgsz) != hw:
            log.warning("%s: input is fixed at %s; ignoring imgsz=%s", self.source, hw, imgsz)
        self.input_hw: tuple[int, int] = hw
        self.imgsz = hw[0] if hw[0] == hw[1] else hw

        if classes is None and meta.get("names"):
            try:
                classes = parse_names(meta["names"])
            except ValueError as e:
                raise ModelError(f"{self.source}: metadata 'names': {e}") from e
        out_shape = outputs[0].shape
        nc_out = _dim(out_shape[1]) - 4 if len(out_shape) == 3 and _dim(out_shape[1]) and _dim(out_shape[1]) > 4 else None
        if classes is None:
            if nc_out is None:
                raise ModelError(f"{self.source}: no class names (no 'names' metadata and no sidecar card) and the "
                                 f"output shape {out_shape} does not tell the number of classes")
            classes = {i: f"class{i}" for i in range(nc_out)}
            log.warning("%s: no class names in metadata or a sidecar card; using class0..class%d", self.source, nc_out - 1)
        classes = {int(k): str(v) for k, v in classes.items()}
        if sorted(classes) != list(range(len(classes))):
            raise ModelError(f"{self.source}: class indices must be 0..n-1, got {sorted(classes)[:10]}")
        if nc_out is not None and nc_out != len(classes) and not (len(out_shape) == 3 and _dim(out_shape[2]) == 6):
            raise ModelError(f"{self.source}: output has {nc_out} classes but {len(classes)} names are given")
        self.classes: dict[int, str] = classes
        self.name = name or self.source.stem
        self.sha256 = sha256 or sha256_file(self.source)
        self.batch_size = int(batch_size)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.class_map: dict[str, str] | None = None

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
    """Write an fp32 ONNX file from an ultralytics adapter (anything with ``.torch_model``), offline.

    The input is ``images`` (N, 3, H, W) float32 RGB in [0, 1] (N dynamic unless
    ``dynamic_batch=False``), the output ``output0`` (N, 4 + nc, A) like an ultralytics export,
    and the metadata carries ``names``, ``imgsz``, ``stride``, ``task`` the way ultralytics
    writes them, so this adapter and ultralytics tools both read it. Uses torch's
    TorchScript-based exporter directly: no onnxslim/onnxsim, nothing installed or fetched.
    """
    import onnx
    import torch

    model = getattr(detector, "torch_model", None)
    if model is None:
        raise ModelError(f"export_onnx needs a torch-backed detector (with .torch_model), got {type(detector).__name__}")
    hw = normalize_imgsz(imgsz if imgsz is not None else getattr(detector, "imgsz", 640))
    stride = int(max(getattr(model, "stride", torch.tensor([32])).tolist()))
    if hw[0] % stride or hw[1] % stride:
        raise ModelError(f"imgsz {hw} must be a multiple of the model stride {stride}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)

    m = copy.deepcopy(model).to("cpu").float().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    head = m.model[-1]
    head.export = True
    head.format = "onnx"
    head.dynamic = False
    wrapped = _raw_output_module(m).eval()
    dummy = torch.zeros(1, 3, *hw)
    with torch.inference_mode():
        wrapped(dummy)  # settle anchors for this input size
    with atomic_path(out) as tmp_path:
        tmp = str(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {"dynamo": False}
            torch.onnx.export(
                wrapped, dummy, tmp, opset_version=opset, input_names=["images"], output_names=["output0"],
                dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None,
                do_constant_folding=True, **kwargs,
            )
        om = onnx.load(tmp)
        classes = {int(k): str(v) for k, v in detector.classes.items()}
        meta = {
            "description": f"oddsuite export of {getattr(detector, 'name', 'model')}",
            "author": "oddsuite",
            "task": "detect",
            "stride": str(stride),
            "batch": "-1" if dynamic_batch else "1",
            "imgsz": str([hw[0], hw[1]]),
            "names": str(classes),
            "channels": "3",
            "end2end": "False",
            "source_sha256": str(getattr(detector, "sha256", "") or ""),
        }
        del om.metadata_props[:]
        for k, v in meta.items():
            e = om.metadata_props.add()
            e.key, e.value = k, v
        onnx.checker.check_model(om)
        onnx.save(om, tmp)
    return out

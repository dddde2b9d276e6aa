"""Ultralytics (torch) adapter: a YOLO detection model built from its architecture yaml and a
safetensors state dict — no pickle anywhere on the load path.

A model directory (what :func:`save_model_dir` writes and ``load_detector`` reads)::

    model.yaml           the architecture (ultralytics model yaml, with nc and scale)
    model.safetensors    the state dict (float32); metadata repeats classes and imgsz
    model.json           card: name, classes, imgsz, sha256 of the weights and of the yaml,
                         and, for trained models, how they were trained

The architecture yaml is checked before ultralytics sees it: ultralytics resolves layer
names against its module globals and ``eval``s the ``activation`` key, so an unchecked yaml
could call arbitrary functions. We only let through layers that are ``torch.nn.Module``
classes and activations of the form ``nn.Name(literal, ...)``.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oddsuite.fileio import atomic_write_bytes, sha256_file, write_json
from oddsuite.errors import ModelError
from oddsuite.models._ultra import ultralytics_offline
from oddsuite.models.base import MAP_CONF_FLOOR, Detections, ModelInfo
from oddsuite.models.common import MAX_DET, NMS_IOU, predict_batched

log = logging.getLogger(__name__)

CARD_FORMAT = "oddsuite-detector/1"
WEIGHTS_NAME = "model.safetensors"
ARCH_NAME = "model.yaml"
CARD_NAME = "model.json"
#: the safetensors metadata key holding our JSON (classes, imgsz)
META_KEY = "oddsuite"

#: top-level keys of an ultralytics model yaml that we accept
_ARCH_KEYS = {"nc", "scales", "scale", "backbone", "head", "depth_multiple", "width_multiple", "activation",
              "reg_max", "end2end", "kpt_shape", "channels", "ch", "yaml_file", "legacy", "names",
              "max_det", "text_model", "ne"}
#: detection heads whose eval output is (B, 4+nc, N) or, end-to-end, (B, K, 6)
_DETECT_HEADS = {"Detect", "v10Detect"}


# --------------------------------------------------------------------------- arch yaml


def _is_module_class(obj: Any) -> bool:
    import torch

    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def _check_activation(act: Any, source: Path | str) -> None:
    """Allow only ``nn.Name(...)`` / ``torch.nn.Name(...)`` with literal arguments, Name a torch.nn Module."""
    import torch

    bad = ModelError(f"{source}: field 'activation': {act!r} is not allowed; expected e.g. 'nn.SiLU()' "
                     "(a torch.nn module with literal arguments)")
    if not isinstance(act, str):
        raise bad
    try:
        node = ast.parse(act, mode="eval").body
    except SyntaxError:
        raise bad from None
    if not isinstance(node, ast.Call):
        raise bad
    f = node.func
    chain = []
    while isinstance(f, ast.Attribute):
        chain.append(f.attr)
        f = f.value
    if not isinstance(f, ast.Name):
        raise bad
    chain.append(f.id)
    chain.reverse()
    if chain[:-1] not in (["nn"], ["torch", "nn"]) or not _is_module_class(getattr(torch.nn, chain[-1], None)):
        raise bad
    try:
        for a in list(node.args) + [k.value for k in node.keywords]:
            ast.literal_eval(a)
    except ValueError:
        raise bad from None


def validate_arch(cfg: Any, source: Path | str) -> dict:
    """Check an ultralytics model yaml (already parsed) before it is built; returns it."""
    import torch

    ultralytics_offline()
    from ultralytics.nn import tasks

    if not isinstance(cfg, dict):
        raise ModelError(f"{source}: the model yaml must be a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - _ARCH_KEYS)
    if unknown:
        raise ModelError(f"{source}: unknown keys {unknown} in the model yaml (allowed: {sorted(_ARCH_KEYS)})")
    for part in ("backbone", "head"):
        layers = cfg.get(part)
        if not isinstance(layers, list) or not layers:
            raise ModelError(f"{source}: field '{part}' must be a non-empty list of [from, repeats, module, args]")
        for i, layer in enumerate(layers):
            if not (isinstance(layer, (list, tuple)) and len(layer) == 4 and isinstance(layer[2], str)
                    and isinstance(layer[3], list)):
                raise ModelError(f"{source}: {part}[{i}] must be [from, repeats, module, args], got {layer!r}")
            m = layer[2]
            if m.startswith("nn."):
                obj = getattr(torch.nn, m[3:], None)
            elif m.startswith("torchvision.ops."):
                import torchvision

                obj = getattr(torchvision.ops, m[len("torchvision.ops."):], None)
            else:
                obj = getattr(tasks, m, None)
            if not _is_module_class(obj):
                raise ModelError(f"{source}: {part}[{i}]: module {m!r} is not a known torch.nn.Module layer")
    head = cfg["head"][-1][2]
    if head not in _DETECT_HEADS:
        raise ModelError(f"{source}: last layer is {head!r}; only detection heads {sorted(_DETECT_HEADS)} are supported")
    if "activation" in cfg and cfg["activation"] is not None:
        _check_activation(cfg["activation"], source)
    if not isinstance(cfg.get("nc"), int) or cfg["nc"] < 1:
        raise ModelError(f"{source}: field 'nc' must be a positive integer, got {cfg.get('nc')!r}")
    return cfg


@contextlib.contextmanager
def _restricted_build():
    """Ask ultralytics for its no-eval model construction path too, where this version has one."""
    from ultralytics.nn import tasks

    sl = getattr(tasks, "_SafeLoad", None)
    local = getattr(sl, "_local", None)
    if sl is None or local is None or not getattr(sl, "SUPPORTED", False):
        yield
        return
    prev = getattr(local, "active", False)
    local.active = True
    try:
        yield
    finally:
        local.active = prev


def build_model(cfg: dict, source: Path | str = "<arch>", seed: int | None = None):
    """Build an (untrained, eval-mode) ultralytics DetectionModel from a checked yaml dict."""
    import torch

    ultralytics_offline()
    from ultralytics.nn.tasks import DetectionModel

    cfg = validate_arch(copy.deepcopy(cfg), source)
    ch = int(cfg.get("channels", cfg.get("ch", 3)) or 3)
    with contextlib.ExitStack() as st:
        if seed is not None:
            st.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(seed)
        st.enter_context(_restricted_build())
        try:
            model = DetectionModel(cfg, ch=ch, nc=None, verbose=False)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{source}: cannot build the model from its yaml: {type(e).__name__}: {e}") from e
    return model.float().eval()


def load_arch(path: Path) -> dict:
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ModelError(f"{path}: cannot read the model yaml: {e}") from e
    return validate_arch(cfg, path)


def arch_of(model) -> dict:
    """The architecture dict of a built ultralytics model, ready to dump as model.yaml."""
    cfg = copy.deepcopy(getattr(model, "yaml", None))
    if not isinstance(cfg, dict):
        raise ModelError("model has no ultralytics architecture (.yaml dict)")
    head = model.model[-1]
    cfg["nc"] = int(head.nc)
    cfg.pop("yaml_file", None)
    if not cfg.get("scale") and cfg.get("scales"):
        from ultralytics.nn.tasks import guess_model_scale

        cfg["scale"] = guess_model_scale(getattr(model, "yaml", {}).get("yaml_file", "")) or next(iter(cfg["scales"]))
    return cfg


# --------------------------------------------------------------------------- the adapter


class UltralyticsDetector:
    """A Detector running an ultralytics YOLO detection model in torch (CPU by default).

    Pre-processing (letterbox to ``imgsz``) and decoding + NMS are ours (oddsuite.models.common),
    shared with the ONNX adapter.
    """

    def __init__(self, model, classes: dict[int, str], imgsz: int = 640, name: str = "yolo", *,
                 sha256: str | None = None, source: str | Path | None = None, batch_size: int = 16,
                 iou: float = NMS_IOU, max_det: int = MAX_DET, device: str = "cpu"):
        """``sha256`` / ``source``: the pin and path of the weights file it was loaded from
        (``load_detector`` passes them; it also fills the rest of ``info``)."""
        import torch

        head = model.model[-1]
        if type(head).__name__ not in _DETECT_HEADS:
            raise ModelError(f"{source or name}: not a detection model (head {type(head).__name__})")
        nc = int(head.nc)
        classes = {int(k): str(v) for k, v in classes.items()}
        if sorted(classes) != list(range(nc)):
            raise ModelError(f"{source or name}: the model has {nc} classes but names are given for "
                             f"{sorted(classes)[:10]}{'...' if len(classes) > 10 else ''}")
        stride = int(max(getattr(model, "stride", torch.tensor([32])).tolist()))
        if int(imgsz) < stride or int(imgsz) % stride:
            raise ModelError(f"{source or name}: imgsz {imgsz} must be a positive multiple of the model stride {stride}")
        self.device = torch.device(device)
        self.torch_model = model.to(self.device).float().eval()
        self.torch_model.names = dict(classes)
        self.classes: dict[int, str] = classes
        self.imgsz = int(imgsz)
        self.name = name
        self.batch_size = int(batch_size)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.info = ModelInfo(sha256=sha256, source=str(source) if source is not None else None,
                              precision="fp32", input_hw=(self.imgsz, self.imgsz))

    @property
    def nc(self) -> int:
        return len(self.classes)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.imgsz, self.imgsz

    def raw(self, batch: np.ndarray) -> np.ndarray:
        """Network output for a pre-processed NCHW float32 batch: (B, 4 + nc, N) in input pixels."""
        import torch

        with torch.inference_mode():
            y = self.torch_model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.float().cpu().numpy()

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        return predict_batched(self, images, conf)

    def __repr__(self) -> str:
        return f"UltralyticsDetector(name={self.name!r}, nc={self.nc}, imgsz={self.imgsz}, source={self.info.source})"


# --------------------------------------------------------------------------- model directories

def save_model_dir(model, out_dir: str | Path, classes: dict[int, str], imgsz: int, *, name: str | None = None,
                   extra: dict | None = None) -> Path:
    """Write model.yaml + model.safetensors + model.json for an ultralytics DetectionModel."""
    import yaml
    from safetensors.torch import save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = arch_of(model)
    classes = {int(k): str(v) for k, v in classes.items()}
    if len(classes) != cfg["nc"]:
        raise ModelError(f"{out}: {len(classes)} class names for a model with nc={cfg['nc']}")
    arch_text = yaml.safe_dump(cfg, sort_keys=False)
    atomic_write_bytes(out / ARCH_NAME, arch_text.encode())

    state = {k: v.detach().to("cpu").float().clone().contiguous() if v.is_floating_point()
             else v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    # one metadata key: safetensors keeps metadata in a hash map whose order varies from run to run,
    # and the file's bytes (its SHA-256 pin) must depend only on the weights, classes and imgsz
    meta = {META_KEY: json.dumps({"format": CARD_FORMAT, "classes": {str(k): v for k, v in classes.items()},
                                  "imgsz": int(imgsz)}, sort_keys=True)}
    atomic_write_bytes(out / WEIGHTS_NAME, save(state, metadata=meta))
    w_sha = sha256_file(out / WEIGHTS_NAME)
    card = {
        "format": CARD_FORMAT,
        "name": name or out.name,
        "weights": WEIGHTS_NAME,
        "arch": ARCH_NAME,
        "classes": {str(k): v for k, v in classes.items()},
        "imgsz": int(imgsz),
        "sha256": w_sha,
        "files": {ARCH_NAME: sha256_file(out / ARCH_NAME), WEIGHTS_NAME: w_sha},
    }
    if extra:
        card.update({k: v for k, v in extra.items() if k not in card})
    write_json(out / CARD_NAME, card, sort_keys=False, indent=2)
    return out


def read_safetensors(path: Path) -> tuple[dict, dict[str, Any]]:
    """State dict and metadata of a safetensors file (no code runs: it is a flat tensor container).

    The metadata is ours (``classes``, ``imgsz`` under the ``oddsuite`` key) or, from other
    writers, plain string keys of the same names.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta: dict[str, Any] = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise ModelError(f"{path}: not a readable safetensors file: {e}") from e
    if META_KEY in meta:
        try:
            ours = json.loads(meta.pop(META_KEY))
        except json.JSONDecodeError as e:
            raise ModelError(f"{path}: metadata '{META_KEY}' is not JSON: {e}") from e
        if isinstance(ours, dict):
            meta.update(ours)
    return state, meta


def load_ultralytics(weights: Path, arch: Path, *, classes: dict[int, str] | None, imgsz: int | None,
                     name: str, sha256: str, **kw) -> UltralyticsDetector:
    """Build from ``arch`` (yaml) and fill with the state dict in ``weights`` (safetensors)."""
    from oddsuite.models.common import parse_names

    cfg = load_arch(arch)
    state, meta = read_safetensors(weights)
    model = build_model(cfg, arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{weights}: weights do not fit the architecture in {arch}: {e}") from e
    if classes is None and meta.get("classes"):
        try:
            classes = parse_names(meta["classes"])
        except ValueError as e:
            raise ModelError(f"{weights}: metadata 'classes': {e}") from e
    if classes is None and cfg.get("names") is not None:
        try:
            classes = parse_names(cfg["names"])
        except ValueError as e:
            raise ModelError(f"{arch}: field 'names': {e}") from e
    if classes is None:
        classes = {i: f"class{i}" for i in range(int(cfg["nc"]))}
        log.warning("%s: no class names in a card, the weights' metadata or the yaml; using class0..class%d",
                    weights, cfg["nc"] - 1)
    if imgsz is None:
        imgsz = int(meta["imgsz"]) if str(meta.get("imgsz", "")).strip().isdigit() else 640
    return UltralyticsDetector(model, classes, imgsz, name=name, sha256=sha256, source=weights, **kw)


def random_model(nc: int = 80, arch: str | dict = "yolov8n.yaml", seed: int = 0):
    """A freshly initialised (random-weight) ultralytics DetectionModel, built offline from its yaml."""
    ultralytics_offline()
    if isinstance(arch, dict):
        cfg = copy.deepcopy(arch)
    else:
        from ultralytics.nn.tasks import yaml_model_load

        cfg = yaml_model_load(arch)
    cfg["nc"] = int(nc)
    cfg.pop("yaml_file", None)
    return build_model(cfg, str(arch) if not isinstance(arch, dict) else "<arch>", seed=seed)

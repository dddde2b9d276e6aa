"""torchvision detection models (Faster R-CNN, Mask R-CNN, RetinaNet, FCOS, SSD, SSDlite)
built by name, filled with a local state dict.

``load_detector("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", weights="w.pt")``
(CLI: ``--model torchvision:NAME --weights FILE``) builds the model with
``weights=None, weights_backbone=None`` (nothing is ever downloaded) and loads the state dict
from ``FILE``: a ``torch.save(model.state_dict())`` file read with
``torch.load(weights_only=True)`` (tensors only: a full pickle of a model is refused) or a
``.safetensors`` file. The pin (``sha256``) is the weights file's SHA-256, checked before
the file is read.

Classes: the builder's own category list (torchvision's ``weights.meta["categories"]``; for
the COCO models the 91 COCO labels with ``__background__`` and ``N/A`` gaps, so ``car``,
``truck``, ``person``, ``bicycle``, ``stop sign`` match a suite's COCO names as they are).
A model trained for other classes gives ``num_classes`` and ``classes`` (a list, index =
label, index 0 the background for the R-CNNs and SSDs) in ``model_args``; every other
``model_args`` entry goes to the builder (``min_size``, ``max_size``, ``box_detections_per_img``,
``topk_candidates``...), except the adapter's own ``batch_size`` (images per forward pass),
``threads`` (torch threads while predicting; 1 gives the same floats in every pool or Ray
worker) and ``device``.

``predict`` receives HxWx3 uint8 RGB images; the model normalises and resizes them itself
(its ``GeneralizedRCNNTransform``) and returns boxes in the input image's pixels. The
score threshold inside the model (``roi_heads.score_thresh`` or ``score_thresh``) is set to
``predict``'s ``conf`` for each call (every score >= conf is kept), so mAP sees every box down
to COCO's 0.001 floor; the model's own default (0.05 for Faster R-CNN) does not apply.
"""
from __future__ import annotations

import ast
import contextlib
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from oddsuite.errors import ModelError
from oddsuite.models.base import MAP_CONF_FLOOR, Detections, ModelInfo

log = logging.getLogger(__name__)

SCHEME = "torchvision"
#: model_args that describe the classes rather than go to the builder
CLASS_ARGS = ("classes",)
#: model_args that are options of the adapter (also accepted as load_detector options)
ADAPTER_ARGS = ("batch_size", "threads", "device")


def builders() -> list[str]:
    """The detection builders this torchvision offers (``torchvision.models.list_models``)."""
    from torchvision import models

    return sorted(models.list_models(module=models.detection))


def default_categories(name: str) -> list[str]:
    """The builder's category names, index = label (from its weights enum's metadata; no download)."""
    from torchvision import models

    return list(models.get_model_weights(name).DEFAULT.meta["categories"])


def parse_model_arg(text: str) -> tuple[str, Any]:
    """``"min_size=160"`` -> ``("min_size", 160)``: the value is a Python literal (number, bool,
    list, string) or, when it is not one, the text itself. ValueError without ``=``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f"model argument {text!r}: expected KEY=VALUE with KEY a Python identifier")
    try:
        return key, ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key, value.strip()


def read_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from ``path``: ``.safetensors``, or a torch file of tensors only
    (``torch.load(weights_only=True)``; a file with code objects in it is refused)."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as e:
            raise ModelError(f"{path}: not a readable safetensors file: {e}") from e
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for a whole pickled model, and damaged files
        raise ModelError(
            f"{path}: cannot be read as a state dict with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Save the weights with torch.save(model.state_dict(), "
            "PATH); a whole pickled model is refused (unpickling runs code)") from e
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):  # the usual training checkpoint wrappers
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{path}: expected a state dict (parameter name -> tensor), got {type(obj).__name__}")
    return dict(obj)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchvisionDetector:
    """A Detector running a torchvision detection model (CPU by default).

    batch_size: images per forward pass; threads: torch intra-op threads while predicting
    (None: leave torch's setting; 1 gives floats bit-identical across pool and Ray workers).
    """

    def __init__(self, model, classes: Mapping[int, str], name: str, *, batch_size: int = 8,
                 threads: int | None = None, device: str = "cpu", info: ModelInfo | None = None):
        import torch

        self.network = model.to(torch.device(device)).eval()
        self.device = torch.device(device)
        self.classes: dict[int, str] = {int(k): str(v) for k, v in classes.items()}
        self.name = name
        self.batch_size = int(batch_size)
        self.threads = threads
        fixed = getattr(getattr(model, "transform", None), "fixed_size", None)
        self.info = info or ModelInfo(precision="fp32", input_hw=tuple(int(v) for v in fixed) if fixed else None)

    def _set_conf(self, conf: float) -> None:
        """The model's own score threshold, just under ``conf``: torchvision keeps scores
        strictly above it, ``predict`` keeps scores >= ``conf`` (float32, as the scores are)."""
        below = float(np.nextafter(np.float32(conf), np.float32(0)))
        heads = getattr(self.network, "roi_heads", None)
        for obj in (heads, self.network):
            if obj is not None and hasattr(obj, "score_thresh"):
                obj.score_thresh = below
                return

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        """images: HxWx3 uint8 RGB; one Detections per image (boxes xyxy in its pixels)."""
        import torch

        out: list[Detections] = []
        self._set_conf(conf)
        with _torch_threads(self.threads), torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                part = [np.asarray(im) for im in images[i:i + self.batch_size]]
                for im in part:
                    if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                        raise ValueError(f"expected HxWx3 uint8 RGB images, got {im.shape} {im.dtype}")
                x = [torch.tensor(im).permute(2, 0, 1).to(self.device).float().div_(255.0) for im in part]
                for r in self.network(x):
                    keep = r["scores"] >= conf
                    out.append(Detections(r["boxes"][keep].cpu().numpy(), r["scores"][keep].cpu().numpy(),
                                          r["labels"][keep].cpu().numpy()))
        return out

    def __repr__(self) -> str:
        return f"TorchvisionDetector(name={self.name!r}, classes={len(self.classes)}, source={self.info.source})"


def load_torchvision(name: str, weights: Path, pin: str | None, model_args: Mapping[str, Any],
                     **options) -> tuple[TorchvisionDetector, dict[str, str]]:
    """Build torchvision's detection model ``name`` without any download and load ``weights``
    (checked against ``pin`` first). Returns the detector and its files (name -> SHA-256)."""
    from torchvision import models

    from oddsuite.models.common import check_sha256

    known = builders()
    if name not in known:
        raise ModelError(f"torchvision:{name}: not a torchvision detection model; expected one of {known}")
    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise ModelError(f"{weights}: no such weights file (torchvision:{name} needs a local state dict)")
    sha = check_sha256(weights, pin)
    kwargs = {k: v for k, v in model_args.items() if k not in CLASS_ARGS + ADAPTER_ARGS}
    options = {**{k: v for k, v in model_args.items() if k in ADAPTER_ARGS}, **options}
    names = model_args.get("classes")
    if names is None:
        if "num_classes" in kwargs:
            raise ModelError(f"torchvision:{name}: num_classes={kwargs['num_classes']} needs its class names: "
                             "model argument classes=[...] (index = label)")
        names = default_categories(name)
    names = [str(n) for n in names]
    if "num_classes" in kwargs and int(kwargs["num_classes"]) != len(names):
        raise ModelError(f"torchvision:{name}: num_classes={kwargs['num_classes']} but {len(names)} class names")
    try:
        model = models.get_model(name, weights=None, weights_backbone=None, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelError(f"torchvision:{name}: cannot build with model arguments {kwargs}: {e}") from e
    state = read_state_dict(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()
        raise ModelError(f"{weights}: does not fit torchvision:{name} {kwargs or ''}: "
                         f"{' '.join(first[:3])}{' ...' if len(first) > 3 else ''} (a model trained for other "
                         "classes needs model arguments num_classes=N and classes=[...])") from e
    det = TorchvisionDetector(model, dict(enumerate(names)), name, **options)
    det.info = ModelInfo(sha256=sha, source=str(weights.resolve()), precision="fp32", input_hw=det.info.input_hw)
    return det, {weights.name: sha}

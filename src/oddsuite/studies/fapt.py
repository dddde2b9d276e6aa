"""FAP+T for the project's YOLO detectors: fine-tune with the fault-aware pruning mask held fixed.

The masks are :func:`~.mitigation.fap_masks` of the float model on the chip's fault map (every
Conv2d weight, im2col ``K x N`` layout, ``W[k, j]`` on PE ``(k mod R, j mod C)``; BatchNorm
folding scales whole output channels, so a weight that is zero here is zero in the folded
layer the array runs). Fine-tuning is an ordinary offline ultralytics training
(:func:`oddsuite.training.train.run_training`) that starts from the given weights instead of a
random init, with the masked weights zeroed before the first step, their gradients zeroed
before every optimizer step, and the mask re-applied to the model after every step and to the
EMA model after every EMA update (so whatever the optimizer — momentum, weight decay, MuSGD's
orthogonalised updates — they stay exactly 0), and once more to the final weights.

Running the result with FAP on the same fault map is FAP+T. :func:`fapt_model_dir` caches one
fine-tuned model per fault map as a model directory (yaml + safetensors + card).
"""
from __future__ import annotations

import copy
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models.base import is_torch_detector, model_info

from oddsuite.accelerator.faults import FaultMap
from oddsuite.accelerator.mitigation import apply_masks, fap_masks
from oddsuite.accelerator.systolic import SystolicArray

log = logging.getLogger(__name__)

#: fine-tuning defaults: a small constant-ish learning rate and no warm-up (ultralytics' warm-up
#: starts biases at lr 0.1, which would wreck trained weights)
FT_DEFAULTS = dict(optimizer="AdamW", warmup_epochs=0.0)


def _torch_model(obj: Any) -> tuple[nn.Module, dict[int, str] | None]:
    """The float ultralytics model (and class names where known) of a detector, model or model dir."""
    if isinstance(obj, (str, Path)):
        from oddsuite.models import load_detector

        obj = load_detector(obj)
    if isinstance(obj, nn.Module):
        return obj, None
    if not is_torch_detector(obj):
        raise TypeError(f"expected a model directory, a detector with .torch_model or a torch model, "
                        f"got {type(obj).__name__}")
    return obj.torch_model, dict(obj.classes) or None


def _check_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    out = {}
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"mask for {name!r}, which the model has no parameter of")
        if tuple(mask.shape) != tuple(params[name].shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the weight {tuple(params[name].shape)}")
        out[name] = mask.to(torch.bool).cpu()
    return out


def zero_masked_grads(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        g = params[name].grad
        if g is not None:
            g.masked_fill_(mask.to(g.device), 0.0)


def masked_trainer_class(start_model: nn.Module, masks: dict[str, torch.Tensor]):
    """A ``DetectionTrainer`` subclass that trains a copy of ``start_model`` with ``masks`` held at 0."""
    from oddsuite.models._ultra import ultralytics_offline

    ultralytics_offline()
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import unwrap_model

    class MaskedDetectionTrainer(DetectionTrainer):
        def get_model(self, cfg=None, weights=None, verbose=True):
            model = copy.deepcopy(start_model).float()
            nc = int(model.model[-1].nc)
            if nc != int(self.data["nc"]):
                raise ModelError(f"the model has {nc} classes, the data set {self.data['nc']}")
            for p in model.parameters():
                p.grad = None
            apply_masks(model, masks)
            return model

        def optimizer_step(self):
            model = unwrap_model(self.model)
            zero_masked_grads(model, masks)  # before clipping: pruned weights take no part in the step
            ema, self.ema = self.ema, None  # the EMA is updated below, from the re-masked weights
            try:
                super().optimizer_step()
            finally:
                self.ema = ema
            apply_masks(model, masks)
            if self.ema:
                self.ema.update(self.model)
                apply_masks(self.ema.ema, masks)

    return MaskedDetectionTrainer


def fine_tune_detector_with_masks(detector_or_model_dir: Any, masks: dict[str, torch.Tensor], data_yaml: str | Path,
                                  *, epochs: int = 3, imgsz: int = 640, batch: int = 8, seed: int = 0,
                                  lr0: float = 1e-3, workers: int = 0, device: str = "cpu",
                                  work_dir: str | Path | None = None, **train_args) -> nn.Module:
    """FAP+T fine-tuning of an ultralytics DetectionModel; returns the fine-tuned float model.

    ``detector_or_model_dir``: a model directory, a detector with ``torch_model`` or the
    DetectionModel itself (not modified). ``masks``: ``{parameter name: bool mask}`` as
    :func:`fap_masks` gives for the array and fault map. ``data_yaml``: an ultralytics data
    set whose class names equal the detector's (when it has names). Training is offline, on
    CPU by default, seeded, without plots or AMP (:func:`oddsuite.training.train.run_training`);
    ``train_args`` go to ultralytics (defaults :data:`FT_DEFAULTS`: AdamW, no warm-up). The
    EMA weights of the best epoch are returned, in eval mode, every masked weight exactly 0.
    """
    from oddsuite.training.train import read_names, run_training
    from oddsuite.models.yolo import arch_of

    model, classes = _torch_model(detector_or_model_dir)
    masks = _check_masks(model, masks)
    data_yaml = Path(data_yaml).resolve()
    if not data_yaml.is_file():
        raise ModelError(f"{data_yaml}: no such data set yaml")
    names = read_names(data_yaml)
    if classes is not None and names != classes:
        raise ModelError(f"{data_yaml}: the data set's classes {names} are not the detector's {classes}; "
                         "fine-tuning needs a data set labelled with the detector's classes, in its order")
    nc = int(model.model[-1].nc)
    if len(names) != nc:
        raise ModelError(f"{data_yaml}: {len(names)} classes, the model has {nc}")
    args = dict(FT_DEFAULTS)
    args.update(train_args)
    parent = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="oddsuite-fapt-", dir=parent) as tmp:
        import yaml

        arch_file = Path(tmp) / "model.yaml"  # what ultralytics records as 'model'; get_model builds ours
        arch_file.write_text(yaml.safe_dump(arch_of(model), sort_keys=False))
        run = run_training(data_yaml, Path(tmp), model_arg=str(arch_file), epochs=epochs, imgsz=imgsz, batch=batch,
                           seed=seed, workers=workers, device=device, trainer_cls=masked_trainer_class(model, masks),
                           lr0=float(lr0), **args)
    out = run.model
    apply_masks(out, masks)
    out.eval()
    out.__dict__["fapt_training"] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in run.args.items()
                                              if k not in ("project", "name", "exist_ok", "model")},
                                     "metrics": run.metrics, "imgsz": run.imgsz, "best_epoch": run.best_epoch}
    return out


def _state_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and values)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().to("cpu").contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def _ft_key(detector, array: SystolicArray, faults: FaultMap, data_yaml: Path, epochs: int, imgsz: int, batch: int,
            seed: int, lr0: float, train_args: dict) -> dict:
    return {"base_state_sha256": _state_sha256(detector.torch_model),
            "array": f"{array.rows}x{array.cols}", "faulty_pes": [list(p) for p in faults.faulty_pes],
            "map_seed": faults.seed, "train_data": str(data_yaml), "train_data_sha256": sha256_file(data_yaml),
            "epochs": int(epochs), "imgsz": int(imgsz), "batch": int(batch), "seed": int(seed), "lr0": float(lr0),
            "train_args": {k: train_args[k] for k in sorted(train_args)}}


def fapt_model_dir(detector, array: SystolicArray, faults: FaultMap, data_yaml: str | Path, out_dir: str | Path, *,
                   epochs: int = 3, imgsz: int | None = None, batch: int = 8, seed: int = 0, lr0: float = 1e-3,
                   name: str | None = None, **train_args) -> tuple[Path, bool]:
    """The FAP+T model of ``detector`` for ``faults`` as a model directory ``out_dir``, fine-tuned
    unless ``out_dir`` already holds one made with the same settings (same base weights, PEs,
    data set, epochs, ...). Returns ``(out_dir, trained)``. The model keeps the detector's
    classes and evaluation imgsz (``imgsz`` is the fine-tuning size, default the same)."""
    from oddsuite.models.yolo import CARD_NAME, save_model_dir

    out = Path(out_dir)
    data_yaml = Path(data_yaml).resolve()
    hw = model_info(detector).input_hw
    ev_imgsz = int((hw[0] if hw else 0) or imgsz or 640)
    ft_imgsz = int(imgsz or ev_imgsz)
    key = _ft_key(detector, array, faults, data_yaml, epochs, ft_imgsz, batch, seed, lr0, train_args)
    card_path = out / CARD_NAME
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError):
            card = {}
        if card.get("fapt", {}).get("key") == key:
            log.info("FAP+T model for %s reused from %s", faults, out)
            return out, False
        log.warning("%s holds a FAP+T model made with other settings; fine-tuning again", out)
    masks = fap_masks(detector.torch_model, array, faults)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = fine_tune_detector_with_masks(detector, masks, data_yaml, epochs=epochs, imgsz=ft_imgsz, batch=batch,
                                          seed=seed, lr0=lr0, work_dir=out.parent, **train_args)
    info = model.__dict__.pop("fapt_training")
    n_masked = int(sum(int(m.sum()) for m in masks.values()))
    extra = {"fapt": {"key": key, "masked_weights": n_masked, "base_model": str(detector.name),
                      "base_sha256": model_info(detector).sha256,
                      "training": info, "mitigation": "FAP+T: run with FAP on the same fault map"}}
    save_model_dir(model, out, detector.classes, ev_imgsz, name=name or out.name, extra=extra)
    return out, True

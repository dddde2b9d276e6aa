"""Train a YOLO detector from its yaml on an exported data set, on CPU, offline, seeded, and
save it as a model directory (yaml + safetensors + card) that ``load_detector`` reads.

Nothing is downloaded: the network is built from its architecture yaml (random init,
``pretrained=False``), fonts and dependency checks are kept local (see ``_ultra``), AMP (whose
check fetches a model) is off, and plots are off. The weights kept are the EMA weights of the
best epoch, taken in memory when ultralytics saves its checkpoint, so oddsuite never reads
ultralytics' pickled ``.pt`` files back; the run folder holding them is removed afterwards.
"""
from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from oddsuite.errors import ModelError
from oddsuite.models._ultra import ultralytics_offline
from oddsuite.models.yolo import arch_of, build_model, load_arch, save_model_dir

log = logging.getLogger(__name__)

#: Training suites use suite seeds ``TRAIN_SEED_BASE + seed`` (seed in [0, 2**32)); validation
#: suites use small seeds. numpy's SeedSequence pads entropy with zero words and splits big ints
#: into 32-bit words, so naive offsets can collide ([s + 2**32, i] == [s, 1, i]); with this base
#: a training scene's entropy is [s, 2**30, scene, ...], which equals a validation scene's
#: [seed, scene, ...] only for a validation scene id of 2**30 -- never in practice.
TRAIN_SEED_BASE = 2 ** 62
MAX_TRAIN_SEED = 2 ** 32


def training_suite_seed(seed: int) -> int:
    """The suite seed of the training suite for training seed ``seed`` (in [0, 2**32))."""
    if not 0 <= int(seed) < MAX_TRAIN_SEED:
        raise ValueError(f"training seed must be in [0, 2**32), got {seed}")
    return TRAIN_SEED_BASE + int(seed)


def is_training_seed(suite_seed: int) -> bool:
    """Whether a suite seed belongs to the training range (a validation suite should not use one)."""
    return TRAIN_SEED_BASE <= int(suite_seed) < TRAIN_SEED_BASE + MAX_TRAIN_SEED


def read_names(data_yaml: Path) -> dict[int, str]:
    """The class names of an ultralytics data set yaml (``names``); ModelError when unreadable."""
    import yaml

    from oddsuite.models.common import parse_names

    try:
        data = yaml.safe_load(data_yaml.read_text())
        return parse_names(data["names"])
    except (OSError, yaml.YAMLError, KeyError, ValueError) as e:
        raise ModelError(f"{data_yaml}: cannot read class names ('names'): {e}") from e


@dataclass
class TrainRun:
    """What :func:`run_training` returns: the EMA weights of the best epoch in a fresh model."""

    model: Any                      # an eval-mode DetectionModel built from the captured architecture
    args: dict[str, Any]            # the ultralytics arguments used
    metrics: dict[str, float]       # the final validation metrics
    imgsz: int                      # the image size ultralytics used (rounded to the stride)
    best_epoch: int | None


def _trainer_metrics(trainer) -> dict[str, float]:
    """The numeric validation metrics of an ultralytics trainer (none before its first validation)."""
    return {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items() if isinstance(v, (int, float))}


def _capture_best(captured: dict[str, Any]) -> Callable:
    """ultralytics ``on_model_save`` callback: keep the EMA weights and architecture of the best
    epoch (the first one too) in ``captured``, in memory."""
    def on_model_save(trainer) -> None:
        if trainer.best_fitness == trainer.fitness or "state" not in captured:
            ema = trainer.ema.ema
            captured["state"] = {k: v.detach().to("cpu").float().clone() if v.is_floating_point()
                                 else v.detach().to("cpu").clone() for k, v in ema.state_dict().items()}
            captured["arch"] = arch_of(ema)
            captured["epoch"] = int(trainer.epoch) + 1

    return on_model_save


def _report_epoch(on_epoch: Callable[[int, int, dict[str, float]], None]) -> Callable:
    """ultralytics ``on_fit_epoch_end`` callback calling ``on_epoch(epoch, epochs, metrics)``, 1-based."""
    def on_fit_epoch_end(trainer) -> None:
        if int(trainer.epoch) < int(trainer.epochs):  # the final re-validation repeats the last epoch
            on_epoch(int(trainer.epoch) + 1, int(trainer.epochs), _trainer_metrics(trainer))

    return on_fit_epoch_end


def _copy_logs(run_dir: Path, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    for f in ("results.csv", "args.yaml"):
        if (run_dir / f).is_file():
            shutil.copy2(run_dir / f, log_dir / f)


def run_training(data_yaml: Path, run_parent: Path, *, model_arg: str, epochs: int, imgsz: int, batch: int,
                 seed: int, workers: int = 0, device: str = "cpu", trainer_cls: Any = None,
                 keep_run_dir: bool = False, log_dir: Path | None = None,
                 on_epoch: Callable[[int, int, dict[str, float]], None] | None = None, **train_args) -> TrainRun:
    """One offline, seeded ultralytics detection training (the setup every oddsuite training shares).

    ``model_arg`` is what ultralytics gets as ``model`` (an architecture yaml); ``trainer_cls``
    (default ``DetectionTrainer``) may be a subclass, e.g. one whose ``get_model`` starts from
    given weights. The run folder is made under ``run_parent`` and removed afterwards (unless
    ``keep_run_dir``); ``results.csv`` and ``args.yaml`` are copied to ``log_dir`` when given.
    The EMA weights of the best epoch are taken in memory when ultralytics saves its
    checkpoint, so its pickled ``.pt`` files are never read back here.
    """
    ultralytics_offline()
    if trainer_cls is None:
        from ultralytics.models.yolo.detect import DetectionTrainer as trainer_cls

    run_parent.mkdir(parents=True, exist_ok=True)
    run_root = Path(tempfile.mkdtemp(prefix=".train-run-", dir=run_parent))
    args = dict(model=model_arg, data=str(data_yaml), epochs=int(epochs), imgsz=int(imgsz), batch=int(batch),
                seed=int(seed), deterministic=True, workers=int(workers), device=device, plots=False, amp=False,
                pretrained=False, project=str(run_root), name="train", exist_ok=True, verbose=False, val=True,
                cache=False, save=True)
    args.update(train_args)
    captured: dict[str, Any] = {}
    import torch

    threads = torch.get_num_threads()
    determ = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        trainer = trainer_cls(overrides=args)
        trainer.add_callback("on_model_save", _capture_best(captured))
        if on_epoch is not None:
            trainer.add_callback("on_fit_epoch_end", _report_epoch(on_epoch))
        trainer.train()
        if "state" not in captured:
            raise ModelError(f"training on {data_yaml} finished without saving a model")
        metrics = _trainer_metrics(trainer)
        used_imgsz = int(getattr(trainer.args, "imgsz", imgsz))  # ultralytics rounds it to the stride
        model = build_model(captured["arch"], "trained model")
        model.load_state_dict(captured["state"], strict=True)
        if log_dir is not None:
            _copy_logs(Path(trainer.save_dir), log_dir)
    finally:
        torch.set_num_threads(threads)  # ultralytics resets both for training; the caller's settings return
        torch.use_deterministic_algorithms(determ[0], warn_only=determ[1])
        if not keep_run_dir:
            shutil.rmtree(run_root, ignore_errors=True)
    return TrainRun(model=model, args=args, metrics=metrics, imgsz=used_imgsz, best_epoch=captured.get("epoch"))


def _card_training(command: str, run: TrainRun, data_yaml: Path, *, arch: str, seed: int, epochs: int, batch: int,
                   device: str) -> dict[str, Any]:
    """The model card's record of how it was trained: command, seed, epochs, the ultralytics
    arguments, versions, data set and final validation metrics."""
    import torch
    import ultralytics

    return {
        "command": command,
        "seed": int(seed),
        "epochs": int(epochs),
        "training": {
            "arch": arch,
            "data": str(data_yaml),
            "batch": int(batch),
            "best_epoch": run.best_epoch,
            "device": device,
            "deterministic": True,
            "ultralytics_args": {k: (str(v) if isinstance(v, Path) else v) for k, v in run.args.items()
                                 if k not in ("project", "name", "exist_ok")},
            "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__,
                         "python": sys.version.split()[0]},
            "metrics": run.metrics,
        },
    }


def train_detector(data_yaml: str | Path, out_dir: str | Path, *, arch: str | Path = "yolov8n.yaml",
                   epochs: int = 1, imgsz: int = 160, batch: int = 8, seed: int = 0, workers: int = 0,
                   device: str = "cpu", name: str | None = None, command: str | None = None,
                   extra: dict[str, Any] | None = None, keep_run_dir: bool = False,
                   on_epoch: Callable[[int, int, dict[str, float]], None] | None = None, **train_args) -> Path:
    """Train ``arch`` from scratch on ``data_yaml`` and write OUT/model.{yaml,safetensors,json}.

    The card (model.json) records classes, imgsz, the weights' sha256, the command (``command``
    or this call), seed, epochs, the ultralytics/torch versions, the data set and its final
    validation metrics. ``train_args`` go to ultralytics (e.g. ``mosaic=0``, ``lr0=0.01``).
    ``on_epoch(epoch, epochs, metrics)`` is called after each epoch (1-based) for progress.
    Returns the output directory.
    """
    ultralytics_offline()
    data_yaml = Path(data_yaml).resolve()
    out = Path(out_dir)
    arch_s = str(arch)
    if arch_s.endswith((".pt", ".pth")):
        raise ModelError(f"{arch}: training starts from an architecture yaml, not a pickled checkpoint")
    if not data_yaml.is_file():
        raise ModelError(f"{data_yaml}: no such data set yaml")
    if Path(arch_s).is_file():
        load_arch(Path(arch_s))  # a user's yaml is checked before ultralytics builds it
    names = read_names(data_yaml)
    out.mkdir(parents=True, exist_ok=True)
    run = run_training(data_yaml, out, model_arg=arch_s, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed,
                       workers=workers, device=device, keep_run_dir=keep_run_dir, log_dir=out / "train_log",
                       on_epoch=on_epoch, **train_args)
    model, used_imgsz = run.model, run.imgsz

    if command is None:
        command = "train_detector(" + ", ".join(
            [repr(str(data_yaml)), repr(str(out))]
            + [f"{k}={v!r}" for k, v in dict(arch=arch_s, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed,
                                               workers=workers, device=device, **train_args).items()]) + ")"
    card_extra = _card_training(command, run, data_yaml, arch=arch_s, seed=seed, epochs=epochs, batch=batch,
                                device=device)
    if extra:
        card_extra.update(extra)
    if used_imgsz != int(imgsz):
        log.warning("imgsz %s rounded to %s (a multiple of the model stride)", imgsz, used_imgsz)
    save_model_dir(model, out, names, used_imgsz, name=name or out.name, extra=card_extra)
    log.info("trained model saved to %s", out)
    return out


"""Fault sweeps of a detector on a suite: mAP against faulty PEs or timing error rate.

Each point (fault count or error rate, map seed, mitigation) configures one
:class:`AcceleratorDetector` and scores it with the project's evaluation (``evaluate``, by
default :func:`oddsuite.evaluate.evaluate_suite`), each in its own results folder so that
every point resumes and can be inspected or replayed alone. The fault maps are saved next to
the results (``maps/n{N}-seed{S}.json``); a timing point is replayed by its seed (errors are
drawn per layer call, so also with the same batch size and image order).

FAP+T (stuck-at, with ``SweepSpec.train_data``): for each fault map a copy of the detector is
fine-tuned with that map's FAP mask held fixed (:mod:`oddsuite.studies.fapt`), cached as a model directory
``fapt/n{N}-seed{S}/`` (reused when it was made with the same settings), then run on the
array with FAP on the same map. With an executor the fine-tuning runs here first, one map
after the other; the workers load the cached models.

Writes ``results.json`` (rows, per-point summaries, settings), ``results.csv`` and
``faults.png`` (median and min–max over maps).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from oddsuite.accelerator.detector import AcceleratorDetector, AcceleratorRecipe, read_images
from oddsuite.accelerator.faults import FaultMap, TimingErrors
from oddsuite.accelerator.systolic import SystolicArray
from oddsuite.errors import ModelError, OddsuiteError
from oddsuite.fileio import write_json
from oddsuite.fileio import atomic_write_text as _atomic_text
from oddsuite.models.base import is_torch_detector, model_info
from oddsuite.models.loader import DetectorRecipe
from oddsuite.studies.fapt import fapt_model_dir
from oddsuite.studies.mlp_experiment import _summary, map_seed, save_png
from oddsuite.training.train import read_names

log = logging.getLogger(__name__)

STUCK_MITIGATIONS = ("none", "fap", "fap+t")
TIMING_MITIGATIONS = {"none": "propagate", "te-drop": "te-drop"}


@dataclass
class SweepSpec:
    fault: str = "stuck-at"                      # "stuck-at" | "timing"
    faulty_pes: Sequence[int] = (0, 1, 4, 16)
    error_rates: Sequence[float] = (1e-6, 1e-5)
    mitigations: Sequence[str] = ("none", "fap")
    maps: int = 5
    seed: int = 0
    bits: Sequence[int] | None = None            # stuck-at bits drawn from (default: all 32)
    keep_bits: int = 16
    batch: int = 8
    train_data: str | None = None                # FAP+T: ultralytics data set yaml to fine-tune on
    ft_epochs: int = 3
    ft_imgsz: int | None = None                  # fine-tuning image size (default: the detector's)
    ft_batch: int = 8
    ft_lr0: float = 1e-3

    @classmethod
    def for_fault(cls, fault: str, *, faulty_pes: Sequence[int] | None = None,
                  error_rates: Sequence[float] | None = None, mitigations: Sequence[str] | None = None,
                  train_data: str | Path | None = None, **options: Any) -> "SweepSpec":
        """The spec of a ``fault`` sweep with the defaults of ``oddsuite faults`` for what is None:
        0,1,4,16 faulty PEs; rates 1e-6,1e-5; mitigations none,fap (stuck-at) or none,te-drop
        (timing). ``train_data`` is kept only when a FAP+T point will use it."""
        mitigations = list(mitigations) if mitigations else (["none", "fap"] if fault == "stuck-at"
                                                             else ["none", "te-drop"])
        spec = cls(fault=fault, faulty_pes=list(faulty_pes) if faulty_pes is not None else [0, 1, 4, 16],
                   error_rates=list(error_rates) if error_rates is not None else [1e-6, 1e-5],
                   mitigations=mitigations, **options)
        spec.train_data = str(train_data) if train_data is not None and spec.fine_tunes else None
        return spec

    @property
    def fine_tunes(self) -> bool:
        """Whether a point fine-tunes a model (stuck-at with the fap+t mitigation)."""
        return self.fault == "stuck-at" and "fap+t" in self.mitigations

    def validate(self, array: SystolicArray) -> None:
        """ValueError naming the option (as ``oddsuite faults`` spells it) and what is expected."""
        if self.fault not in ("stuck-at", "timing"):
            raise ValueError(f"--fault must be stuck-at or timing, got {self.fault!r}")
        if self.fine_tunes and self.train_data and not Path(self.train_data).expanduser().is_file():
            raise ValueError(f"--train-data {self.train_data}: no such data set yaml")
        allowed = STUCK_MITIGATIONS if self.fault == "stuck-at" else tuple(TIMING_MITIGATIONS)
        for m in self.mitigations:
            if m == "fap+t" and self.fault == "stuck-at" and not self.train_data:
                raise ValueError("fap+t fine-tunes the detector with the pruning mask fixed and needs training "
                                 "data: pass --train-data DATA.yaml (an ultralytics data set of a training suite, "
                                 "e.g. from 'oddsuite export TRAIN_SUITE --format yolo --out DIR')")
            if m not in allowed:
                raise ValueError(f"--mitigation {m!r} does not apply to {self.fault} faults (use {', '.join(allowed)})")
        n_pe = array.rows * array.cols
        for n in self.faulty_pes:
            if not 0 <= int(n) <= n_pe:
                raise ValueError(f"--faulty-pes {n} is outside 0..{n_pe} for a {array.rows}x{array.cols} array")
        for r in self.error_rates:
            if not 0 <= float(r) <= 1:
                raise ValueError(f"--error-rate {r} is not a probability")
        if self.maps < 1:
            raise ValueError("--maps must be at least 1")
        if self.ft_epochs < 1 or self.ft_batch < 1:
            raise ValueError("--ft-epochs and --ft-batch must be at least 1")


def _metric(metrics: dict, *path, default=None):
    cur = metrics
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur


def calibration_files(suite_dir: str | Path, n: int) -> list[Path]:
    """The first ``n`` full-scene images of the suite (all images if it has no full ones), as
    absolute paths: the int8 calibration images of a sweep."""
    from oddsuite.suite import load_suite

    suite = load_suite(suite_dir)
    images = [im for im in suite.gt["images"] if im.get("is_full")] or list(suite.gt["images"])
    return [suite.image_path(im).resolve() for im in images[:n]]


@dataclass(frozen=True)
class PointTask:
    """One sweep point for a worker (pool or Ray): everything to re-create the faulty detector."""

    recipe: AcceleratorRecipe  # the calibrated, unconfigured accelerated detector
    suite_dir: str
    out_dir: str
    job: tuple  # sorted items of the job dict
    bits: Any
    keep_bits: int
    batch: int


_WORKER_ADET: dict[Any, Any] = {}


def _sweep_point_task(task: PointTask) -> dict:
    """Worker side: build (once per process) the calibrated AcceleratorDetector, run one point."""
    key = task.recipe
    if key not in _WORKER_ADET:
        while len(_WORKER_ADET) >= 2:  # the base detector and the last FAP+T one
            _WORKER_ADET.pop(next(iter(_WORKER_ADET)))
        _WORKER_ADET[key] = task.recipe.load()
    else:
        _WORKER_ADET[key] = _WORKER_ADET.pop(key)  # most recently used last
    adet = _WORKER_ADET[key]
    from oddsuite.evaluate import evaluate_suite

    return _run_point(adet, dict(task.job), SystolicArray(*task.recipe.array), task.bits, task.keep_bits, task.batch,
                      task.suite_dir, Path(task.out_dir), evaluate_suite)


def _configure_point(adet, job: dict, array: SystolicArray, bits, keep_bits: int, out: Path) -> tuple[str, dict]:
    """Configure ``adet`` for one job; returns the point's name and its job-specific row fields."""
    if job["kind"] == "stuck-at":
        n, s, mit = job["faulty_pes"], job["map_seed"], job["mitigation"]
        fm = FaultMap.random(array.rows, array.cols, n, seed=s, bits=bits) if n else None
        map_file = None
        if fm is not None:
            map_file = f"maps/n{n}-seed{s}.json"
            if not (out / map_file).exists():
                fm.save(out / map_file)
        adet.configure(fm, mitigation=("fap" if mit == "fap+t" else mit) if n else "none")
        extra = {"faulty_pes": n, "fault_rate": n / (array.rows * array.cols), "map_file": map_file}
        if mit == "fap+t" and n:
            extra.update(ft_model=job.get("ft_model"), ft_sha256=model_info(adet).sha256)
        return (f"sa-n{n}-seed{s}-{mit}" if n else "clean"), extra
    rate, s, mit = job["rate"], job["map_seed"], job["mitigation"]
    te = TimingErrors(rate, TIMING_MITIGATIONS[mit], keep_bits=keep_bits, seed=s) if rate > 0 else None
    adet.configure(timing=te)
    return (f"te-r{rate:g}-seed{s}-{mit}" if rate > 0 else "clean"), \
        {"rate": rate, "mode": TIMING_MITIGATIONS[mit], "keep_bits": keep_bits}


def _run_point(adet, job: dict, array: SystolicArray, bits, keep_bits: int, batch: int, suite_dir, out: Path,
               evaluate: Callable) -> dict:
    """Configure ``adet`` for one point of the sweep, score it, return its row (FAP+T: ``adet``
    wraps the fine-tuned model, which runs with FAP)."""
    point, extra = _configure_point(adet, job, array, bits, keep_bits, out)
    metrics = evaluate(suite_dir, adet, out / "points" / point, batch=batch, progress=False)
    st = adet.accelerator.stats
    row = {"point": point, "kind": job["kind"], "mitigation": job["mitigation"], "map_seed": job["map_seed"],
           **extra, "detector": adet.name,
           "map": _metric(metrics, "map", "full", "map"), "ap50": _metric(metrics, "map", "full", "ap50"),
           "permutation_map": _metric(metrics, "map", "permutation", "map"),
           "context_accuracy": _metric(metrics, "context_accuracy", "overall", "value"),
           "timing_events": st.timing_events, "timing_effective": st.timing_effective,
           "macs": st.macs}
    adet.configure()
    log.info("%s: mAP %s", point, row["map"])
    return row


def check_torch_detector(detector, source: Any) -> None:
    """ModelError unless ``detector`` is torch-backed (the accelerator replaces its network)."""
    if not is_torch_detector(detector):
        raise ModelError(f"{source}: fault injection needs a torch-backed detector (ultralytics yaml + "
                         f"safetensors, or a trusted .pt); {type(detector).__name__} has no torch model")


class _FaptModels:
    """The FAP+T models of one sweep: fine-tuned on first use (or reused from ``OUT/fapt/``)."""

    def __init__(self, detector, array: SystolicArray, spec: SweepSpec, out: Path):
        model = detector.torch_model if is_torch_detector(detector) else None
        if not (hasattr(model, "model") and hasattr(model.model[-1], "nc")):
            raise ModelError(f"fap+t fine-tunes ultralytics detection models; {detector.name!r} is not one")

        names = read_names(Path(spec.train_data))  # checked before any point runs, not at the first fap+t one
        if names != dict(detector.classes):
            raise ModelError(f"{spec.train_data}: the data set's classes {names} are not the detector's "
                             f"{dict(detector.classes)}; FAP+T fine-tunes on a data set with the detector's classes")
        self.base, self.array, self.spec, self.out = detector, array, spec, out
        self._dirs: dict[tuple[int, int], tuple[Path, str]] = {}
        self.trained = 0  # how many models this sweep fine-tuned (the rest came from the cache)

    @staticmethod
    def rel_dir(n: int, seed: int) -> str:
        return f"fapt/n{n}-seed{seed}"

    def model_dir(self, n: int, seed: int) -> tuple[Path, str]:
        """The model directory and weights SHA-256 of the FAP+T model for map ``(n, seed)``."""
        if (n, seed) not in self._dirs:
            spec = self.spec
            fm = FaultMap.random(self.array.rows, self.array.cols, n, seed=seed, bits=spec.bits)
            log.info("FAP+T model for %d faulty PEs (map seed %d), data %s", n, seed, spec.train_data)
            d, trained = fapt_model_dir(self.base, self.array, fm, spec.train_data, self.out / self.rel_dir(n, seed),
                                        epochs=spec.ft_epochs, imgsz=spec.ft_imgsz, batch=spec.ft_batch,
                                        seed=spec.seed, lr0=spec.ft_lr0,
                                        name=f"{self.base.name}+fapt-n{n}-s{seed}")
            self.trained += int(trained)
            card = json.loads((d / "model.json").read_text())
            self._dirs[(n, seed)] = (d, str(card["sha256"]))
        return self._dirs[(n, seed)]

    def ft_detector(self, n: int, seed: int):
        """A shallow copy of the sweep's detector running the fine-tuned weights (as loaded from the cache,
        so that it equals what an executor's worker loads)."""
        from oddsuite.models import load_detector

        d, sha = self.model_dir(n, seed)
        ft = load_detector(d, sha256=sha)
        base = self.base
        det = copy.copy(base)
        device = next(base.torch_model.parameters()).device
        model = ft.torch_model.to(device).float().eval()
        if hasattr(base.torch_model, "names"):
            model.names = base.torch_model.names
        det.torch_model = model
        try:
            det.name = ft.name
        except AttributeError:
            pass
        det.info = replace(model_info(ft), class_map=model_info(base).class_map)
        return det

    def recipe(self, n: int, seed: int, class_map: Any):
        """The recipe of the FAP+T model for map ``(n, seed)`` (fine-tuned here first if needed)."""
        d, sha = self.model_dir(n, seed)
        return DetectorRecipe(str(d.resolve()), sha, False, class_map)


def sweep_jobs(spec: SweepSpec, seeds: Sequence[int]) -> list[dict]:
    """The points of the sweep in order: the clean point once, then per fault count or rate,
    map seed and mitigation."""
    jobs: list[dict] = []
    if spec.fault == "stuck-at":
        for n in sorted({int(n) for n in spec.faulty_pes}):
            for s in (seeds if n else seeds[:1]):
                for mit in (spec.mitigations if n else ("none",)):
                    job = {"kind": "stuck-at", "faulty_pes": n, "map_seed": s, "mitigation": mit}
                    if mit == "fap+t":
                        job["ft_model"] = _FaptModels.rel_dir(n, s)
                    jobs.append(job)
    else:
        for rate in sorted({float(r) for r in spec.error_rates}):
            for s in (seeds if rate > 0 else seeds[:1]):
                for mit in (spec.mitigations if rate > 0 else ("none",)):
                    jobs.append({"kind": "timing", "rate": rate, "map_seed": s, "mitigation": mit})
    return jobs


def _run_serial(jobs, detector, array, spec, calibration_images, fapt, suite_dir, out, evaluate, bar) -> list[dict]:
    adet = AcceleratorDetector(detector, array, calibration_images=calibration_images)
    rows = []
    for job in jobs:
        point_adet = adet
        if job["mitigation"] == "fap+t":
            point_adet = AcceleratorDetector(fapt.ft_detector(job["faulty_pes"], job["map_seed"]), array,
                                             calibration_images=calibration_images)
        rows.append(_run_point(point_adet, job, array, spec.bits, spec.keep_bits, spec.batch, suite_dir, out, evaluate))
        if bar:
            bar.update(1)
    return rows


def _run_on_executor(jobs, recipe, calib_files, array, spec, fapt, suite_dir, out, executor, bar) -> list[dict]:
    """Points on workers, each re-creating the calibrated detector from its recipe; rows in job order."""
    files = tuple(str(Path(f).resolve()) for f in calib_files)

    def recipe_of(job: dict) -> AcceleratorRecipe:
        base = recipe
        if job["mitigation"] == "fap+t":  # fine-tuned here, one map at a time
            base = fapt.recipe(job["faulty_pes"], job["map_seed"], model_info(fapt.base).class_map)
        return AcceleratorRecipe(base, (array.rows, array.cols), files)

    tasks = [PointTask(recipe_of(job), str(suite_dir), str(out), tuple(sorted(job.items())), spec.bits,
                       spec.keep_bits, spec.batch) for job in jobs]
    by_job: dict[tuple, dict] = {}
    failures = []
    for task, row in executor.map(_sweep_point_task, tasks, key=lambda t: dict(t.job)):
        if isinstance(row, dict):
            by_job[task.job] = row
        else:
            failures.append(row)
        if bar:
            bar.update(1)
    if failures:
        raise OddsuiteError(f"{len(failures)} sweep point(s) failed: " + "; ".join(
            f"{f.key}: {f.error}" for f in failures[:5]) + "; finished points are kept under points/")
    return [by_job[t.job] for t in tasks]


def sweep_summary(rows: Sequence[dict], spec: SweepSpec) -> list[dict]:
    """Per (fault count or rate, mitigation): median, spread and n of the full-scene mAP over
    maps; the clean point belongs to every mitigation's curve."""
    key = "faulty_pes" if spec.fault == "stuck-at" else "rate"
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        for mit in (spec.mitigations if r[key] == 0 else (r["mitigation"],)):
            if r["map"] is not None:
                groups.setdefault((r[key], mit), []).append(float(r["map"]))
    return [{key: x, "mitigation": mit, **_summary(vals)} for (x, mit), vals in sorted(groups.items())]


def _write_results(out: Path, results: dict, rows: list[dict]) -> None:
    write_json(out / "results.json", results, sort_keys=False, nan="null")
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    _atomic_text(out / "results.csv", buf.getvalue())
    plot_sweep(results, out / "faults.png")


def run_detector_sweep(suite_dir, detector, out_dir, array: SystolicArray, spec: SweepSpec,
                       calibration_images: Sequence[np.ndarray], *,
                       evaluate: Callable | None = None, progress: bool = False, executor: Any = None,
                       recipe: Any = None, calib_files: Sequence[str] | None = None) -> dict:
    """Score ``detector`` (a :class:`TorchDetector`) on the suite at every point of ``spec``.

    With an ``executor`` (oddsuite.run: local pool or Ray), the points run in parallel on
    workers, each re-creating the calibrated detector from ``recipe`` (default: the
    detector's ``info.recipe``) and ``calib_files`` (the same images as
    ``calibration_images``); rows are merged here in point order.

    Mitigation ``"fap+t"`` (stuck-at, ``spec.train_data`` set; ``detector`` an ultralytics
    detector) fine-tunes one model per fault map (cached under ``fapt/``, see
    :mod:`oddsuite.studies.fapt`) and runs it with FAP."""
    spec.validate(array)
    if spec.train_data:
        spec = replace(spec, train_data=str(Path(spec.train_data).expanduser().resolve()))
    if evaluate is None:
        from oddsuite.evaluate import evaluate_suite as evaluate
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    fapt = _FaptModels(detector, array, spec, out) if spec.fine_tunes else None
    t0 = time.perf_counter()
    seeds = [map_seed(spec.seed, i) for i in range(spec.maps)]
    jobs = sweep_jobs(spec, seeds)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"{spec.fault} sweep", unit="point")
    try:
        if executor is None:
            rows = _run_serial(jobs, detector, array, spec, calibration_images, fapt, suite_dir, out, evaluate, bar)
        else:
            recipe = recipe if recipe is not None else model_info(detector).recipe
            if recipe is None or not calib_files:
                raise ValueError("run_detector_sweep: an executor needs a recipe (the detector's info.recipe) "
                                 "and the calibration image files")
            rows = _run_on_executor(jobs, recipe, calib_files, array, spec, fapt, suite_dir, out, executor, bar)
    finally:
        if bar:
            bar.close()
    results = {"suite": str(suite_dir), "detector": detector.name, "array": f"{array.rows}x{array.cols}",
               "fault": spec.fault, "spec": {k: (list(v) if isinstance(v, (list, tuple)) else v)
                                             for k, v in spec.__dict__.items()},
               "map_seeds": seeds, "rows": rows, "summary": sweep_summary(rows, spec),
               "seconds": time.perf_counter() - t0}
    if fapt is not None:
        results["fapt"] = {"models": sorted({r["ft_model"] for r in rows if r.get("ft_model")}),
                           "fine_tuned_now": fapt.trained}
    _write_results(out, results, rows)
    return results


def sweep_model(suite_dir: str | Path, model: str | Path, out_dir: str | Path, array: SystolicArray, spec: SweepSpec,
                *, sha256: str | None = None, trust_pickle: bool = False, calib: int = 16, progress: bool = False,
                executor: Any = None) -> dict:
    """``oddsuite faults SUITE --model M``: load ``model`` (pinned by ``sha256``), check that it
    is torch-backed, calibrate on the suite's first ``calib`` full-scene images and run the
    sweep (:func:`run_detector_sweep`), on ``executor`` when given."""
    from oddsuite.models import load_detector

    spec.validate(array)
    detector = load_detector(model, sha256=sha256, trust_pickle=trust_pickle)
    check_torch_detector(detector, model)
    files = calibration_files(suite_dir, calib)
    return run_detector_sweep(Path(suite_dir), detector, out_dir, array, spec, read_images(files),
                              progress=progress, executor=executor, calib_files=[str(f) for f in files])


def plot_sweep(results: dict, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "faulty_pes" if results["fault"] == "stuck-at" else "rate"
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for mit in sorted({r["mitigation"] for r in results["summary"]}):
        rows = sorted((r for r in results["summary"] if r["mitigation"] == mit), key=lambda r: r[key])
        floor = 0.5 if key == "faulty_pes" else min([r[key] for r in rows if r[key] > 0] or [1e-9]) / 10
        x = np.array([r[key] if r[key] > 0 else floor for r in rows])
        ax.plot(x, [r["median"] for r in rows], "o-", label=mit)
        ax.fill_between(x, [r["min"] for r in rows], [r["max"] for r in rows], alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("faulty PEs (0 plotted at 0.5)" if key == "faulty_pes" else "timing error rate per MAC (0 plotted left)")
    ax.set_ylabel("full-scene mAP@[.5:.95]")
    ax.set_title(f"{results['detector']} on {results['array']}: median, min–max over maps")
    ax.legend()
    return save_png(fig, path)

"""Training determinism: several trainings of one detector compared (seed ``000``, Fig. 2).

The seed trains one network twice "on two similar platforms" and finds similar accuracy but
*different false positives*: a different number, at different places relative to the true
positives. Here every run trains the same architecture on the same data set
(:func:`oddsuite.training.train.train_detector`, offline, CPU, seeded) with its own seed and
torch thread count (e.g. the same seed twice, another seed, the same seed on more threads as
a stand-in for another platform; ultralytics' own CPU thread setting is overridden for the
run), then:

- **weights**: per pair of runs, equal byte for byte (SHA-256 of the safetensors) or not, how
  many tensors differ and the largest absolute difference;
- **predictions**: each run evaluated on the suite (full, resumable ``evaluate``), its
  full-scene mAP, and per pair the overlap of the false-positive sets
  (:func:`oddsuite.studies.lockstep.fp_overlap`: shared, only A, only B, Jaccard) — the seed's
  point: two models that agree on average may disagree on which false positives they make;
- **score profiles** (Fig. 2): the score histograms of true and false positives of each run.

Each trained model is kept under ``OUT/runs/`` and reused when its card says it was made with
the same data, seed, epochs and settings (an interrupted study resumes). Writes
``determinism.json`` and ``determinism.png``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, outcome_tables
from oddsuite.studies.lockstep import fp_overlap

log = logging.getLogger(__name__)

FORMAT = "oddsuite-determinism/1"
SCORE_BINS = np.linspace(0.0, 1.0, 21)


def _run_name(i: int, run: Mapping[str, Any]) -> str:
    return f"run{i}-seed{int(run['seed'])}-t{int(run.get('threads') or 0)}"


def _train(data_yaml: Path, out: Path, run: Mapping[str, Any], settings: Mapping[str, Any]) -> Path:
    """Train one run (or reuse it when its card matches), with its own torch thread count."""
    import torch

    from oddsuite.training.train import train_detector

    card = out / "model.json"
    want = {"seed": int(run["seed"]), "epochs": int(settings["epochs"])}
    if card.is_file():
        c = json.loads(card.read_text())
        if {k: c.get(k) for k in want} == want and c.get("training", {}).get("data") == str(data_yaml) \
                and c.get("determinism_run") == {**dict(run), **dict(settings)}:
            log.info("%s: reusing the trained model", out)
            return out
    from oddsuite.models._ultra import ultralytics_offline

    ultralytics_offline()
    import ultralytics.utils.torch_utils as ultra_torch

    # ultralytics sets torch's threads to its own NUM_THREADS when a CPU training starts: the
    # run's thread count has to go there to take effect
    before, ultra_before = torch.get_num_threads(), ultra_torch.NUM_THREADS
    if run.get("threads"):
        torch.set_num_threads(int(run["threads"]))
        ultra_torch.NUM_THREADS = int(run["threads"])
    extra = {"determinism_run": {**dict(run), **dict(settings)}, "torch_threads": torch.get_num_threads()}
    try:
        if settings.get("init"):
            return _fine_tune(data_yaml, out, run, settings, extra)
        return train_detector(data_yaml, out, seed=int(run["seed"]), epochs=int(settings["epochs"]),
                              imgsz=int(settings["imgsz"]), batch=int(settings["batch"]), arch=settings["arch"],
                              extra=extra, **dict(settings.get("train_args") or {}))
    finally:
        torch.set_num_threads(before)
        ultra_torch.NUM_THREADS = ultra_before


def _fine_tune(data_yaml: Path, out: Path, run: Mapping[str, Any], settings: Mapping[str, Any],
               extra: Mapping[str, Any]) -> Path:
    """A run that fine-tunes the ``init`` model (FAP+T's trainer with no mask) instead of training
    from scratch: the same start, differing only in the training's own randomness."""
    from oddsuite.models import load_detector, save_model_dir
    from oddsuite.studies.fapt import fine_tune_detector_with_masks

    base = load_detector(settings["init"])
    out.mkdir(parents=True, exist_ok=True)
    model = fine_tune_detector_with_masks(base, {}, data_yaml, epochs=int(settings["epochs"]),
                                          imgsz=int(settings["imgsz"]), batch=int(settings["batch"]),
                                          seed=int(run["seed"]), work_dir=out.parent,
                                          **dict(settings.get("train_args") or {}))
    card = {"seed": int(run["seed"]), "epochs": int(settings["epochs"]),
            "training": {"data": str(data_yaml), "init": str(settings["init"])}, **dict(extra)}
    return save_model_dir(model, out, dict(base.classes), int(settings["imgsz"]), name=out.name, extra=card)


def compare_weights(dir_a: Path, dir_b: Path) -> dict[str, Any]:
    """Two model directories' weights: byte-equal or not, tensors differing, largest |difference|."""
    from safetensors.numpy import load_file

    fa, fb = dir_a / "model.safetensors", dir_b / "model.safetensors"
    sha = [hashlib.sha256(f.read_bytes()).hexdigest() for f in (fa, fb)]
    ta, tb = load_file(str(fa)), load_file(str(fb))
    differ, max_abs, n_values_differ = [], 0.0, 0
    for name in sorted(set(ta) | set(tb)):
        a, b = ta.get(name), tb.get(name)
        if a is None or b is None or a.shape != b.shape:
            differ.append(name)
            continue
        if not np.array_equal(a, b):
            differ.append(name)
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            max_abs = max(max_abs, float(d.max()))
            n_values_differ += int((d > 0).sum())
    return {"bytes_equal": sha[0] == sha[1], "sha256": sha, "n_tensors": len(set(ta) | set(tb)),
            "tensors_differ": len(differ), "values_differ": n_values_differ, "max_abs_diff": max_abs,
            "first_differing": differ[:5]}


def score_profile(gt: Mapping[str, Any], preds: Sequence[Mapping[str, Any]], *, iou: float, conf: float) -> dict:
    """Histogram (on :data:`SCORE_BINS`) of the scores of true and false positives (score >= ``conf``)."""
    _, dets = outcome_tables(gt, preds, iou=iou, conf=conf)
    out = {}
    for status in ("tp", "fp"):
        s = dets.loc[dets["status"] == status, "score"].to_numpy(dtype=float)
        out[status] = {"n": int(len(s)), "histogram": np.histogram(s, bins=SCORE_BINS)[0].astype(int).tolist()}
    return out


def training_determinism(data_yaml: str | Path, suite_dir: str | Path, out_dir: str | Path, *,
                         runs: Sequence[Mapping[str, Any]] = ({"seed": 0}, {"seed": 0}, {"seed": 1}),
                         epochs: int = 1, imgsz: int = 160, batch: int = 8, arch: str = "yolov8n.yaml",
                         iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF, progress: bool = False,
                         train_args: Mapping[str, Any] | None = None,
                         init: str | Path | None = None) -> dict[str, Any]:
    """Train every run (``{"seed": S, "threads": T}``; T optional), compare every pair (weights,
    false-positive overlap, mAP) and the score profiles; write and return the results.

    ``init``: a model directory every run fine-tunes from (its classes must be the data set's)
    instead of training ``arch`` from scratch."""
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.suite import load_suite
    from oddsuite.models import load_detector

    if len(runs) < 2:
        raise ValueError("training determinism needs at least two runs")
    data_yaml, out = Path(data_yaml).resolve(), Path(out_dir)
    settings = {"epochs": int(epochs), "imgsz": int(imgsz), "batch": int(batch), "arch": str(arch),
                "train_args": dict(train_args or {}), "init": None if init is None else str(Path(init).resolve())}
    suite = load_suite(suite_dir)
    init_sha = json.loads((Path(init) / "model.json").read_text()).get("sha256") if init is not None else None
    dirs, preds, per_run = [], [], []
    for i, run in enumerate(runs):
        name = _run_name(i, run)
        d = _train(data_yaml, out / "runs" / name, run, settings)
        det = load_detector(d)
        metrics = evaluate_suite(suite_dir, det, out / "eval" / name, iou=iou, conf=conf, progress=progress)
        p = json.loads((out / "eval" / name / "predictions.json").read_text())
        dirs.append(d)
        preds.append(p)
        full = ((metrics.get("map") or {}).get("full") or {})
        sha = json.loads((d / "model.json").read_text())["sha256"]
        per_run.append({"name": name, "seed": int(run["seed"]), "threads": run.get("threads"), "sha256": sha,
                        "same_as_init": None if init_sha is None else sha == init_sha,
                        "full_scene_map": full.get("map"), "scores": score_profile(suite.gt, p, iou=iou, conf=conf)})
        if per_run[-1]["same_as_init"]:
            log.warning("%s: the trained weights are the starting weights (no step improved on them)", name)
    pairs = []
    for i, j in itertools.combinations(range(len(runs)), 2):
        same_seed = int(runs[i]["seed"]) == int(runs[j]["seed"])
        same_threads = (runs[i].get("threads") or None) == (runs[j].get("threads") or None)
        pairs.append({"a": per_run[i]["name"], "b": per_run[j]["name"],
                      "relation": ("same seed" if same_seed else "different seeds")
                      + ("" if same_threads else ", different thread counts"),
                      "weights": compare_weights(dirs[i], dirs[j]),
                      "false_positives": fp_overlap(suite.gt, preds[i], preds[j], iou=iou, conf=conf),
                      "map_delta": (None if per_run[i]["full_scene_map"] is None or per_run[j]["full_scene_map"] is None
                                    else per_run[j]["full_scene_map"] - per_run[i]["full_scene_map"])})
    result = {"format": FORMAT, "data": str(data_yaml), "suite": str(Path(suite_dir).resolve()),
              "settings": {**settings, "iou": iou, "conf": conf}, "runs": per_run, "pairs": pairs,
              "score_bins": SCORE_BINS.tolist()}
    _write(out, result)
    return result


def _write(out: Path, result: dict[str, Any]) -> None:
    from oddsuite.fileio import write_json
    from oddsuite.studies.mlp_experiment import save_png

    write_json(out / "determinism.json", result, sort_keys=False, nan="null")
    save_png(plot_profiles(result), out / "determinism.png")


def plot_profiles(result: Mapping[str, Any]):
    """The seed's Fig. 2 for detectors: per run, score histograms of true (blue) and false (red)
    positives on a log count scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    edges = np.asarray(result["score_bins"])
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.0), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], runs):
        for status, colour in (("tp", "#3b6fb6"), ("fp", "#d62728")):
            h = np.asarray(r["scores"][status]["histogram"], dtype=float)
            ax.stairs(np.where(h > 0, h, np.nan), edges, color=colour, fill=True, alpha=0.5,
                      label=f"{status.upper()} ({r['scores'][status]['n']})")
        ax.set_yscale("log")
        ax.set_xlabel("score")
        ax.set_title(f"{r['name']}\nmAP {r['full_scene_map'] if r['full_scene_map'] is None else round(r['full_scene_map'], 4)}",
                     fontsize=8)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("detections (log)")
    fig.tight_layout()
    return fig

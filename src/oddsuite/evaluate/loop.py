"""The evaluation loop: predict every image of a suite with a Detector, resumably, then score.

Layout of the results folder (FORMAT.md): predictions.json, outcomes.parquet,
metrics.json, run.json, plus ``.state/`` (resume bookkeeping, like a suite's):

- ``.state/key.json``: what the partial predictions belong to (detector name and
  classes, class mapping, suite manifest hash). A re-run with another detector or suite
  into the same folder is refused instead of mixing predictions.
- ``.state/predictions/chunk-NNNNNN.jsonl``: one file per finished batch, one line per
  image (its detections in suite categories and its dropped-class counts). Each chunk is
  written atomically (temporary file, then ``os.replace``), so the partial predictions
  only ever grow by whole batches; a re-run predicts only the images no chunk holds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from oddsuite.errors import ModelError, OddsuiteError, SuiteError
from oddsuite.evaluate.classes import ClassMapping, map_classes, parse_class_map
from oddsuite.evaluate.coverage import suite_coverage
from oddsuite.evaluate.io import write_json_atomic, write_parquet_atomic, write_text_atomic
from oddsuite.evaluate.suite import Suite, load_suite
from oddsuite.metrics.coco import MAP_SCORE_FLOOR, engine_info
from oddsuite.metrics.consistency import consistency
from oddsuite.metrics.stats import json_clean
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, OUTCOME_COLUMNS
from oddsuite.metrics.summary import score_predictions
from oddsuite.metrics.tables import with_parameters
from oddsuite.models.base import Detections, Detector

log = logging.getLogger(__name__)

STATE_DIR = ".state"
CHUNK_DIR = "predictions"
PREDICTIONS = "predictions.json"
OUTCOMES = "outcomes.parquet"
METRICS = "metrics.json"
RUN = "run.json"


@dataclass(frozen=True)
class PredictionRun:
    """predictions: COCO results in suite categories, in image order; dropped: detector
    class name -> [n (score >= 0.001), n with score >= conf]; invalid: detections discarded
    as malformed (non-finite, negative size, unknown class index)."""

    predictions: list[dict[str, Any]]
    dropped: dict[str, list[int]]
    invalid: int
    n_predicted: int
    n_resumed: int
    mapping: ClassMapping


@dataclass(frozen=True)
class DetectorRecipe:
    """How to re-create a detector in another process (Ray or pool workers): a picklable
    ``load_detector`` call. Workers cache the loaded detector per recipe."""

    path: str
    sha256: str | None = None
    trust_pickle: bool = False
    class_map: Any = None  # a mapping is kept as sorted items, so recipes hash

    def __post_init__(self) -> None:
        if isinstance(self.class_map, Mapping):
            object.__setattr__(self, "class_map", tuple(sorted(self.class_map.items())))

    def load(self) -> Detector:
        from oddsuite.models import load_detector

        cm = dict(self.class_map) if isinstance(self.class_map, tuple) else self.class_map
        return load_detector(self.path, sha256=self.sha256, trust_pickle=self.trust_pickle, class_map=cm)


@dataclass(frozen=True)
class _SceneTask:
    recipe: Any  # anything with .load() -> Detector, picklable
    suite_dir: str
    scene_id: int
    images: tuple[tuple[int, str], ...]  # (image id, file name)
    batch: int


_WORKER_DETECTORS: dict[Any, Detector] = {}


def _predict_scene(task: _SceneTask) -> list[tuple[int, Detections]]:
    """Worker side: predict one scene's images (the detector is loaded once per process)."""
    if task.recipe not in _WORKER_DETECTORS:
        _WORKER_DETECTORS.clear()
        _WORKER_DETECTORS[task.recipe] = task.recipe.load()
    det = _WORKER_DETECTORS[task.recipe]
    out: list[tuple[int, Detections]] = []
    for start in range(0, len(task.images), task.batch):
        part = task.images[start:start + task.batch]
        arrays = [np.asarray(Image.open(Path(task.suite_dir) / name).convert("RGB")) for _, name in part]
        res = det.predict(arrays, conf=MAP_SCORE_FLOOR)
        if not isinstance(res, (list, tuple)) or len(res) != len(part):
            raise ModelError(f"detector {det.name!r}: predict() on {len(part)} images returned a wrong count")
        out.extend((iid, d) for (iid, _), d in zip(part, res))
    return out


def _load_image(suite: Suite, image: Mapping[str, Any]) -> np.ndarray:
    path = suite.image_path(dict(image))
    if not path.is_file():
        raise SuiteError(f"{path}: image file missing (annotations.json images id {image['id']})")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as e:
        raise SuiteError(f"{path}: not a readable image ({e})") from e
    if arr.shape[0] != image["height"] or arr.shape[1] != image["width"]:
        raise SuiteError(f"{path}: is {arr.shape[1]}x{arr.shape[0]} but annotations.json images id {image['id']} "
                         f"says width {image['width']}, height {image['height']}")
    return arr


def _convert(image_id: int, det: Detections, mapping: ClassMapping, detector_classes: Mapping[int, str],
             conf: float) -> tuple[list[dict[str, Any]], dict[str, list[int]], int]:
    """One image's Detections -> COCO results in suite categories, dropped counts, invalid count."""
    out: list[dict[str, Any]] = []
    dropped: dict[str, list[int]] = {}
    invalid = 0
    for (x1, y1, x2, y2), s, c in zip(det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist()):
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2, s)) or x2 < x1 or y2 < y1 or c not in detector_classes:
            invalid += 1
            continue
        if s < MAP_SCORE_FLOOR:
            continue
        cat = mapping.to_suite.get(int(c))
        if cat is None:
            d = dropped.setdefault(str(detector_classes[c]), [0, 0])
            d[0] += 1
            d[1] += int(s >= conf)
            continue
        out.append({"image_id": image_id, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    return out, dropped, invalid


def _state_key(suite: Suite, detector: Detector, mapping: ClassMapping) -> dict[str, Any]:
    return {
        "detector": str(detector.name),
        "model_sha256": getattr(detector, "sha256", None),  # two files of one name must not mix
        "detector_classes": {str(k): str(v) for k, v in sorted(detector.classes.items())},
        "class_mapping": dict(sorted(mapping.names.items())),
        "suite_manifest_sha256": suite.manifest_sha256,
        "suite_images": len(suite.gt["images"]),
    }


def _read_chunks(chunk_dir: Path, known: set[int]) -> dict[int, dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    for path in sorted(chunk_dir.glob("chunk-*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
                image_id = int(rec["image_id"])
                rec["detections"], rec["dropped"], rec["invalid"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise SuiteError(f"{path}: line {n}: not a prediction record ({e}); delete this file to "
                                 f"re-predict its images") from e
            if image_id not in known:
                raise SuiteError(f"{path}: line {n}: image_id {image_id} is not in the suite")
            done.setdefault(image_id, rec)
    return done


def predict_suite(suite: Suite, detector: Detector, out_dir: str | Path, *, batch: int = 8,
                  class_map: Mapping[str, str] | str | None = None, conf: float = DEFAULT_CONF,
                  progress: bool = True, executor: Any = None, recipe: Any = None) -> PredictionRun:
    """Predict every image of ``suite`` not yet predicted in ``out_dir`` (see module doc).

    With an ``executor`` (oddsuite.run: local pool or Ray) and a ``recipe`` (a picklable
    object whose ``load()`` re-creates ``detector`` in a worker), the images are sharded
    by scene; each finished scene is written as one chunk, so a crash of the driver loses
    no finished scene. A scene whose task keeps failing is reported by its scene id after
    the others are done."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    out = Path(out_dir)
    if class_map is None:
        class_map = getattr(detector, "class_map", None) or None  # set by models.load_detector(class_map=...)
    mapping = map_classes(detector.classes, suite.categories, class_map)
    if mapping.dropped:
        log.info("detector classes the suite lacks, dropped: %s", sorted(mapping.dropped.values()))
    state = out / STATE_DIR
    chunk_dir = state / CHUNK_DIR
    key = _state_key(suite, detector, mapping)
    key_path = state / "key.json"
    if key_path.is_file():
        try:
            old = json.loads(key_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise SuiteError(f"{key_path}: not valid JSON ({e}); delete {state} to start over") from e
        old_conf = old.pop("conf", None)
        if old != key:
            diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise OddsuiteError(f"{out}: holds partial predictions of another run (differs in {diff}); "
                                f"use another --out folder or delete {state}")
        if old_conf != conf:
            log.warning("%s: earlier batches counted dropped detections at conf %s, now %s", out, old_conf, conf)
    write_json_atomic(key_path, {**key, "conf": conf})
    chunk_dir.mkdir(parents=True, exist_ok=True)
    for leftover in chunk_dir.glob(".chunk-*.tmp"):  # a batch cut off while being written
        leftover.unlink()

    images = suite.gt["images"]
    known = {int(im["id"]) for im in images}
    done = _read_chunks(chunk_dir, known)
    todo = [im for im in images if int(im["id"]) not in done]
    n_resumed = len(done)
    if n_resumed:
        log.info("resuming: %d of %d images already predicted", n_resumed, len(images))
    seq = max((int(p.stem.split("-")[1]) for p in chunk_dir.glob("chunk-*.jsonl")), default=0)
    bar = tqdm(total=len(images), initial=n_resumed, unit="img", desc=f"evaluate {detector.name}",
               disable=not progress, leave=False)
    if executor is not None:
        if recipe is None:
            raise ValueError("predict_suite: an executor needs a recipe to re-create the detector in workers")
        by_scene: dict[int, list[Mapping[str, Any]]] = {}
        for im in todo:
            by_scene.setdefault(int(im.get("scene_id", -1)), []).append(im)
        tasks = [_SceneTask(recipe, str(suite.root), sid, tuple((int(im["id"]), str(im["file_name"])) for im in ims),
                            batch) for sid, ims in sorted(by_scene.items())]
        failures = []
        try:
            for task, res in executor.map(_predict_scene, tasks, key=lambda t: t.scene_id):
                if not isinstance(res, list):  # a TaskFailure
                    failures.append(res)
                    continue
                lines = []
                for iid, det in res:
                    dets, dropped, invalid = _convert(iid, det, mapping, detector.classes, conf)
                    rec = {"image_id": iid, "detections": dets, "dropped": dropped, "invalid": invalid}
                    done[iid] = rec
                    lines.append(json.dumps(rec, allow_nan=False))
                seq += 1
                write_text_atomic(chunk_dir / f"chunk-{seq:06d}.jsonl", "\n".join(lines) + "\n")
                bar.update(len(res))
        finally:
            bar.close()
        if failures:
            raise OddsuiteError(f"{len(failures)} scene(s) failed: " + "; ".join(
                f"scene {f.key}: {f.error}" for f in failures[:5]) + f". Finished scenes are kept in {out}; "
                "run the same command again to predict only the rest.")
        todo = []
    # batches never span scenes: the same batches as scene-sharded runs, so a scene's
    # predictions do not depend on where it runs (CPU kernels are not bit-stable across
    # batch compositions)
    batches: list[list[Mapping[str, Any]]] = []
    for im in todo:
        if batches and len(batches[-1]) < batch and batches[-1][0].get("scene_id") == im.get("scene_id"):
            batches[-1].append(im)
        else:
            batches.append([im])
    try:
        for part in batches:
            arrays = [_load_image(suite, im) for im in part]
            result = detector.predict(arrays, conf=MAP_SCORE_FLOOR)
            if not isinstance(result, (list, tuple)) or len(result) != len(part):
                raise ModelError(f"detector {detector.name!r}: predict() on {len(part)} images returned "
                                 f"{len(result) if isinstance(result, (list, tuple)) else type(result).__name__}")
            lines = []
            for im, det in zip(part, result):
                if not isinstance(det, Detections):
                    raise ModelError(f"detector {detector.name!r}: predict() returned {type(det).__name__}, "
                                     f"not Detections")
                dets, dropped, invalid = _convert(int(im["id"]), det, mapping, detector.classes, conf)
                rec = {"image_id": int(im["id"]), "detections": dets, "dropped": dropped, "invalid": invalid}
                done[int(im["id"])] = rec
                lines.append(json.dumps(rec, allow_nan=False))
            seq += 1
            write_text_atomic(chunk_dir / f"chunk-{seq:06d}.jsonl", "\n".join(lines) + "\n")
            bar.update(len(part))
    finally:
        bar.close()

    predictions: list[dict[str, Any]] = []
    dropped_total: dict[str, list[int]] = {}
    invalid = 0
    for im in images:
        rec = done[int(im["id"])]
        predictions.extend(rec["detections"])
        invalid += int(rec["invalid"])
        for name, (n, n_conf) in rec["dropped"].items():
            d = dropped_total.setdefault(name, [0, 0])
            d[0] += int(n)
            d[1] += int(n_conf)
    if invalid:
        log.warning("detector %r returned %d malformed detections (non-finite, negative size or unknown class); "
                    "they were discarded", detector.name, invalid)
    return PredictionRun(predictions, dict(sorted(dropped_total.items())), invalid, len(todo), n_resumed, mapping)


def load_predictions(predictions: str | Path | Sequence[Mapping[str, Any]], suite: Suite) -> list[dict[str, Any]]:
    """Predictions (a COCO results list or the path of a predictions.json), checked against the
    suite and in its ids: ``evaluate.score.load_external_predictions`` without a class map."""
    from oddsuite.evaluate.score import load_external_predictions  # score.py imports this module

    return load_external_predictions(predictions, suite).predictions


def _dropped_section(dropped: Mapping[str, Sequence[int]] | None, invalid: int | None) -> dict[str, Any] | None:
    if dropped is None:
        return None
    return {
        "n": int(sum(v[0] for v in dropped.values())),
        "n_above_conf": int(sum(v[1] for v in dropped.values())),
        "by_class": {k: {"n": int(v[0]), "n_above_conf": int(v[1])} for k, v in sorted(dropped.items())},
        "invalid": invalid,
    }


def _score_suite(suite: Suite, preds: list[dict[str, Any]], out_dir: Path | None, *, iou: float, conf: float,
                 dropped: Mapping[str, Sequence[int]] | None, invalid: int | None,
                 slices: Mapping[str, Iterable[int]] | None) -> dict[str, Any]:
    scores = score_predictions(suite.gt, preds, iou=iou, conf=conf, rois=suite.rois, scenes=suite.scenes,
                               slices=slices)
    metrics = dict(scores.metrics)
    metrics["dropped_classes"] = _dropped_section(dropped, invalid)
    metrics["coverage"] = suite_coverage(suite.root, suite.scenes, scores.outcomes)  # ODD coverage (§8)
    metrics = json_clean(metrics)  # plain Python values; NaN -> None
    if out_dir is not None:
        outcomes = with_parameters(scores.outcomes, suite.scenes, suite.rois)
        front = OUTCOME_COLUMNS + ["not_visible"]
        outcomes = outcomes[[c for c in dict.fromkeys(front) if c in outcomes.columns]
                            + [c for c in outcomes.columns if c not in front]]
        write_parquet_atomic(Path(out_dir) / OUTCOMES, outcomes)
        write_json_atomic(Path(out_dir) / METRICS, metrics)
    return metrics


def compare_predictions(suite_dir: str | Path, preds_a: str | Path | Sequence[Mapping[str, Any]],
                        preds_b: str | Path | Sequence[Mapping[str, Any]], *, iou: float = DEFAULT_IOU,
                        conf: float = DEFAULT_CONF, by: Sequence[str] = ("variant", "mode", "subset_size"),
                        top: int = 10) -> dict[str, Any]:
    """Pre/post consistency (metrics.md §6) of two saved prediction sets on one suite; ``by``
    may name any column of scenes.parquet, of the outcome table, or ``roi.<rois.parquet column>``."""
    suite = load_suite(suite_dir)
    a = load_predictions(preds_a, suite)
    b = load_predictions(preds_b, suite)
    return consistency(suite.gt, a, b, iou=iou, conf=conf, scenes=suite.scenes, rois=suite.rois, by=by, top=top)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("oddsuite", "hotcoco", "numpy", "pandas", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def evaluate_suite(suite_dir: str | Path, detector: Detector, out_dir: str | Path, *, iou: float = DEFAULT_IOU,
                   conf: float = DEFAULT_CONF, batch: int = 8, class_map: Mapping[str, str] | str | None = None,
                   model_sha256: str | None = None, progress: bool = True,
                   slices: Mapping[str, Iterable[int]] | None = None, executor: Any = None,
                   recipe: Any = None) -> dict[str, Any]:
    """Run ``detector`` on every image of the suite (resuming a partial run in ``out_dir``),
    write predictions.json, outcomes.parquet, metrics.json and run.json, return the metrics."""
    if not isinstance(detector, Detector):
        raise ModelError(f"{detector!r} is not a Detector (needs name, classes, predict)")
    suite = load_suite(suite_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if class_map is None:
        class_map = getattr(detector, "class_map", None) or None
    if model_sha256 is None:
        model_sha256 = getattr(detector, "sha256", None)  # models.load_detector sets it
    run = predict_suite(suite, detector, out, batch=batch, class_map=class_map, conf=conf, progress=progress,
                        executor=executor, recipe=recipe)
    write_json_atomic(out / PREDICTIONS, run.predictions, indent=None)
    metrics = _score_suite(suite, run.predictions, out, iou=iou, conf=conf, dropped=run.dropped,
                           invalid=run.invalid, slices=slices)
    write_json_atomic(out / RUN, {
        "detector": {"name": str(detector.name),
                     "classes": {str(k): str(v) for k, v in sorted(detector.classes.items())},
                     "model_sha256": model_sha256},
        "suite": {"path": str(Path(suite_dir).resolve()), "manifest_sha256": suite.manifest_sha256,
                  "n_images": len(suite.gt["images"])},
        "settings": {"iou": iou, "conf": conf, "batch": batch, "map_score_floor": MAP_SCORE_FLOOR,
                     "class_map": parse_class_map(class_map), "class_mapping": run.mapping.names,
                     "dropped_classes": sorted(run.mapping.dropped.values())},
        "images_predicted": run.n_predicted,
        "images_resumed": run.n_resumed,
        "predictions_sha256": hashlib.sha256((out / PREDICTIONS).read_bytes()).hexdigest(),
        "engine": engine_info(),
        "versions": _versions(),
    })
    return metrics

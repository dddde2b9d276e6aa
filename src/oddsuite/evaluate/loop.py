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

import json
import logging
import math
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from oddsuite.errors import ModelError, OddsuiteError, SuiteError
from oddsuite.evaluate.classes import ClassMapping, map_classes, parse_class_map
from oddsuite.fileio import atomic_write_text, sha256_file, write_json, write_parquet
from oddsuite.metrics.coco import MAP_SCORE_FLOOR, engine_info
from oddsuite.metrics.consistency import consistency
from oddsuite.metrics.stats import json_clean
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, OUTCOME_COLUMNS
from oddsuite.metrics.summary import score_predictions
from oddsuite.metrics.tables import with_parameters
from oddsuite.models.base import Detections, Detector, model_info
from oddsuite.suite.reader import Suite, load_suite, read_image

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
class _SceneTask:
    recipe: Any  # the detector's info.recipe: picklable, hashable, .load() -> Detector
    suite_dir: str
    scene_id: int
    images: tuple[tuple[int, str, int, int], ...]  # (image id, file name, width, height)
    batch: int


_WORKER_DETECTORS: dict[Any, Detector] = {}


# ----------------------------------------------------------------------------- per-batch steps
# (ultralytics' validator pattern: the in-process loop and the executor's workers run the same
# steps; only the scheduling differs)


def scene_batches(images: Sequence[Mapping[str, Any]], batch: int) -> list[list[Mapping[str, Any]]]:
    """Consecutive images in batches of at most ``batch`` that never span scenes: the same
    batches whether a scene runs here or on a worker, so a scene's predictions do not depend on
    where it runs (CPU kernels are not bit-stable across batch compositions)."""
    batches: list[list[Mapping[str, Any]]] = []
    for im in images:
        if batches and len(batches[-1]) < batch and batches[-1][0].get("scene_id") == im.get("scene_id"):
            batches[-1].append(im)
        else:
            batches.append([im])
    return batches


def load_images(root: Path, images: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
    """Step 1: the batch's images as HxWx3 uint8 RGB, each checked against its record (exists,
    readable, width and height as annotations.json says); SuiteError naming the file otherwise."""
    return [read_image(Path(root) / str(image["file_name"]), size=(int(image["width"]), int(image["height"])),
                       what=f"annotations.json images id {image['id']}") for image in images]


def predict_batch(detector: Detector, arrays: Sequence[np.ndarray]) -> list[Detections]:
    """Steps 2 and 3: predict at the mAP score floor and check that one Detections came back
    per image (ModelError naming the detector otherwise)."""
    result = detector.predict(arrays, conf=MAP_SCORE_FLOOR)
    if not isinstance(result, (list, tuple)) or len(result) != len(arrays):
        raise ModelError(f"detector {detector.name!r}: predict() on {len(arrays)} images returned "
                         f"{len(result) if isinstance(result, (list, tuple)) else type(result).__name__}")
    for det in result:
        if not isinstance(det, Detections):
            raise ModelError(f"detector {detector.name!r}: predict() returned {type(det).__name__}, not Detections")
    return list(result)


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


def _worker_detector(recipe: Any) -> Detector:
    """The detector of ``recipe``, loaded once per worker process (the last one kept)."""
    if recipe not in _WORKER_DETECTORS:
        _WORKER_DETECTORS.clear()
        _WORKER_DETECTORS[recipe] = recipe.load()
    return _WORKER_DETECTORS[recipe]


def _predict_scene(task: _SceneTask) -> list[tuple[int, Detections]]:
    """Worker side: steps 1-3 for one scene's images, in the same batches as in-process."""
    det = _worker_detector(task.recipe)
    images = [{"id": i, "file_name": f, "width": w, "height": h, "scene_id": task.scene_id}
              for i, f, w, h in task.images]
    out: list[tuple[int, Detections]] = []
    for part in scene_batches(images, task.batch):
        out.extend(zip((int(im["id"]) for im in part), predict_batch(det, load_images(Path(task.suite_dir), part))))
    return out


# ----------------------------------------------------------------------------- resume state


def _state_key(suite: Suite, detector: Detector, mapping: ClassMapping) -> dict[str, Any]:
    return {
        "detector": str(detector.name),
        "model_sha256": model_info(detector).sha256,  # two files of one name must not mix
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


def _open_state(out: Path, key: dict[str, Any], conf: float) -> Path:
    """Check ``.state/key.json`` against this run (refusing another run's partial predictions),
    write it, clear half-written chunks; returns the chunk folder."""
    state = out / STATE_DIR
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
    write_json(key_path, {**key, "conf": conf}, sort_keys=False, nan="null")
    chunk_dir = state / CHUNK_DIR
    chunk_dir.mkdir(parents=True, exist_ok=True)
    for leftover in chunk_dir.glob(".chunk-*.tmp"):  # a batch cut off while being written
        leftover.unlink()
    return chunk_dir


# ----------------------------------------------------------------------------- the loop


class PredictionLoop:
    """Predict every image of a suite not yet predicted in ``out`` (see the module doc).

    ``__call__`` runs the per-batch steps -- :func:`load_images`, :func:`predict_batch`
    (predict, check the count), :meth:`records` (COCO results in suite categories) and
    :meth:`write_chunk` -- either here, batch by batch, or on an executor's workers scene by
    scene (steps 1-3 there, 4-5 here), then :meth:`collect` merges the chunks in image order.
    """

    def __init__(self, suite: Suite, detector: Detector, out_dir: str | Path, *, batch: int = 8,
                 class_map: Mapping[str, str] | str | None = None, conf: float = DEFAULT_CONF,
                 progress: bool = True):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.suite, self.detector, self.out = suite, detector, Path(out_dir)
        self.batch, self.conf, self.progress = batch, conf, progress
        if class_map is None:
            class_map = model_info(detector).class_map or None  # given to models.load_detector(class_map=...)
        self.mapping = map_classes(detector.classes, suite.categories, class_map)
        if self.mapping.dropped:
            log.info("detector classes the suite lacks, dropped: %s", sorted(self.mapping.dropped.values()))
        self.chunk_dir = _open_state(self.out, _state_key(suite, detector, self.mapping), conf)
        self.images = suite.gt["images"]
        self.done = _read_chunks(self.chunk_dir, {int(im["id"]) for im in self.images})
        self.seq = max((int(p.stem.split("-")[1]) for p in self.chunk_dir.glob("chunk-*.jsonl")), default=0)

    # steps 4 and 5 (steps 1-3 are the module functions, shared with the workers)
    def records(self, pairs: Iterable[tuple[int, Detections]]) -> list[dict[str, Any]]:
        """Step 4: each image's Detections as its prediction record (COCO results in suite
        categories, dropped-class counts, malformed detections)."""
        out = []
        for image_id, det in pairs:
            dets, dropped, invalid = _convert(image_id, det, self.mapping, self.detector.classes, self.conf)
            out.append({"image_id": image_id, "detections": dets, "dropped": dropped, "invalid": invalid})
        return out

    def write_chunk(self, records: Sequence[dict[str, Any]]) -> None:
        """Step 5: one chunk file, written atomically, so the partial predictions grow by whole batches."""
        lines = []
        for rec in records:
            self.done[rec["image_id"]] = rec
            lines.append(json.dumps(rec, allow_nan=False))
        self.seq += 1
        atomic_write_text(self.chunk_dir / f"chunk-{self.seq:06d}.jsonl", "\n".join(lines) + "\n")

    def run_here(self, todo: Sequence[Mapping[str, Any]], bar) -> None:
        for part in scene_batches(todo, self.batch):
            arrays = load_images(self.suite.root, part)
            result = predict_batch(self.detector, arrays)
            self.write_chunk(self.records(zip((int(im["id"]) for im in part), result)))
            bar.update(len(part))

    def run_on(self, executor: Any, recipe: Any, todo: Sequence[Mapping[str, Any]], bar) -> None:
        """Shard ``todo`` by scene over ``executor``; each finished scene is one chunk, so a crash
        of the driver loses no finished scene. Failing scenes are reported after the others."""
        if recipe is None:
            raise ValueError(f"predict_suite: detector {self.detector.name!r} has no recipe (info.recipe) to "
                             "re-create it in the executor's workers; load it with load_detector or run it "
                             "without an executor")
        by_scene: dict[int, list[Mapping[str, Any]]] = {}
        for im in todo:
            by_scene.setdefault(int(im.get("scene_id", -1)), []).append(im)
        tasks = [_SceneTask(recipe, str(self.suite.root), sid,
                            tuple((int(im["id"]), str(im["file_name"]), int(im["width"]), int(im["height"]))
                                  for im in ims), self.batch) for sid, ims in sorted(by_scene.items())]
        failures = []
        for _task, res in executor.map(_predict_scene, tasks, key=lambda t: t.scene_id):
            if not isinstance(res, list):  # a TaskFailure
                failures.append(res)
                continue
            self.write_chunk(self.records(res))
            bar.update(len(res))
        if failures:
            raise OddsuiteError(f"{len(failures)} scene(s) failed: " + "; ".join(
                f"scene {f.key}: {f.error}" for f in failures[:5]) + f". Finished scenes are kept in {self.out}; "
                "run the same command again to predict only the rest.")

    def collect(self, n_predicted: int, n_resumed: int) -> PredictionRun:
        """Every image's record, in suite image order, merged into one PredictionRun."""
        predictions: list[dict[str, Any]] = []
        dropped_total: dict[str, list[int]] = {}
        invalid = 0
        for im in self.images:
            rec = self.done[int(im["id"])]
            predictions.extend(rec["detections"])
            invalid += int(rec["invalid"])
            for name, (n, n_conf) in rec["dropped"].items():
                d = dropped_total.setdefault(name, [0, 0])
                d[0] += int(n)
                d[1] += int(n_conf)
        if invalid:
            log.warning("detector %r returned %d malformed detections (non-finite, negative size or unknown class); "
                        "they were discarded", self.detector.name, invalid)
        return PredictionRun(predictions, dict(sorted(dropped_total.items())), invalid, n_predicted, n_resumed,
                             self.mapping)

    def __call__(self, executor: Any = None, recipe: Any = None) -> PredictionRun:
        todo = [im for im in self.images if int(im["id"]) not in self.done]
        n_resumed = len(self.done)
        if n_resumed:
            log.info("resuming: %d of %d images already predicted", n_resumed, len(self.images))
        bar = tqdm(total=len(self.images), initial=n_resumed, unit="img", desc=f"evaluate {self.detector.name}",
                   disable=not self.progress, leave=False)
        try:
            if executor is not None:
                self.run_on(executor, recipe if recipe is not None else model_info(self.detector).recipe, todo, bar)
                return self.collect(len(todo), n_resumed)
            self.run_here(todo, bar)
        finally:
            bar.close()
        return self.collect(len(todo), n_resumed)


def predict_suite(suite: Suite, detector: Detector, out_dir: str | Path, *, batch: int = 8,
                  class_map: Mapping[str, str] | str | None = None, conf: float = DEFAULT_CONF,
                  progress: bool = True, executor: Any = None, recipe: Any = None) -> PredictionRun:
    """Predict every image of ``suite`` not yet predicted in ``out_dir`` (see module doc and
    :class:`PredictionLoop`).

    With an ``executor`` (oddsuite.run: local pool or Ray) the images are sharded by scene and
    each worker re-creates the detector from ``recipe`` (default: ``detector.info.recipe``, as
    every loader in oddsuite sets it); each finished scene is written as one chunk, so a crash
    of the driver loses no finished scene. A scene whose task keeps failing is reported by its
    scene id after the others are done."""
    loop = PredictionLoop(suite, detector, out_dir, batch=batch, class_map=class_map, conf=conf, progress=progress)
    return loop(executor=executor, recipe=recipe)


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
                 slices: Mapping[str, Iterable[int]] | None, model_sha256: str | None = None,
                 view: Any = None) -> dict[str, Any]:
    if view is not None:  # an inference condition: its own ground truth and outcome columns
        suite = replace(suite, gt=view.ground_truth(suite.gt))
    scores = score_predictions(suite.gt, preds, iou=iou, conf=conf, rois=suite.rois, scenes=suite.scenes,
                               slices=slices)
    metrics = dict(scores.metrics)
    metrics["dropped_classes"] = _dropped_section(dropped, invalid)
    metrics["evidence"] = {"suite_identity": suite.identity, "model_sha256": model_sha256}  # what was scored
    metrics = json_clean(metrics)  # plain Python values; NaN -> None
    if out_dir is not None:
        outcomes = with_parameters(scores.outcomes, suite.scenes, suite.rois)
        front = OUTCOME_COLUMNS + ["not_visible"]
        outcomes = outcomes[[c for c in dict.fromkeys(front) if c in outcomes.columns]
                            + [c for c in outcomes.columns if c not in front]]
        if view is not None:
            outcomes = view.outcome_columns(outcomes, suite.gt)
        write_parquet(Path(out_dir) / OUTCOMES, outcomes)
        write_json(Path(out_dir) / METRICS, metrics, sort_keys=False, nan="null")
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


def run_record(suite: Suite, suite_dir: str | Path, detector: Detector, run: PredictionRun, out: Path, *,
               model_sha256: str | None, class_map: Mapping[str, str] | str | None, iou: float, conf: float,
               batch: int) -> dict[str, Any]:
    """run.json: the detector (name, classes, pin, every model file's SHA-256 from its
    ModelInfo), the suite, the settings, the counts, the predictions' SHA-256, the versions."""
    info = model_info(detector)
    return {
        "detector": {"name": str(detector.name),
                     "classes": {str(k): str(v) for k, v in sorted(detector.classes.items())},
                     "model_sha256": model_sha256 if model_sha256 is not None else info.sha256,
                     "model": info.record()},
        "suite": {"path": str(Path(suite_dir).resolve()), "identity": suite.identity,
                  "manifest_sha256": suite.manifest_sha256,
                  "n_images": len(suite.gt["images"])},
        "settings": {"iou": iou, "conf": conf, "batch": batch, "map_score_floor": MAP_SCORE_FLOOR,
                     "class_map": parse_class_map(class_map), "class_mapping": run.mapping.names,
                     "dropped_classes": sorted(run.mapping.dropped.values())},
        "images_predicted": run.n_predicted,
        "images_resumed": run.n_resumed,
        "predictions_sha256": sha256_file(out / PREDICTIONS),
        "engine": engine_info(),
        "versions": _versions(),
    }


def evaluate_suite(suite_dir: str | Path, detector: Detector, out_dir: str | Path, *, iou: float = DEFAULT_IOU,
                   conf: float = DEFAULT_CONF, batch: int = 8, class_map: Mapping[str, str] | str | None = None,
                   model_sha256: str | None = None, progress: bool = True,
                   slices: Mapping[str, Iterable[int]] | None = None, executor: Any = None,
                   recipe: Any = None, view: Any = None) -> dict[str, Any]:
    """Run ``detector`` on every image of the suite (resuming a partial run in ``out_dir``),
    write predictions.json, outcomes.parquet, metrics.json and run.json, return the metrics.

    ``class_map`` and ``model_sha256`` default to the detector's ``info`` (ModelInfo);
    ``executor`` / ``recipe``: see :func:`predict_suite`. ``view``: how an inference condition
    (``oddsuite.studies.reduced_context``) is scored: ``view.ground_truth(gt)`` gives the
    annotations.json dict scored instead of the suite's (a crop clips it) and
    ``view.outcome_columns(outcomes, gt)`` the outcome table written (columns added)."""
    if not isinstance(detector, Detector):
        raise ModelError(f"{detector!r} is not a Detector (needs name, classes, predict)")
    suite = load_suite(suite_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if class_map is None:
        class_map = model_info(detector).class_map or None
    run = predict_suite(suite, detector, out, batch=batch, class_map=class_map, conf=conf, progress=progress,
                        executor=executor, recipe=recipe)
    write_json(out / PREDICTIONS, run.predictions, sort_keys=False, indent=None, nan="null")
    if model_sha256 is None:
        model_sha256 = model_info(detector).sha256
    metrics = _score_suite(suite, run.predictions, out, iou=iou, conf=conf, dropped=run.dropped,
                           invalid=run.invalid, slices=slices, model_sha256=model_sha256, view=view)
    write_json(out / RUN, run_record(suite, suite_dir, detector, run, out, model_sha256=model_sha256,
                                     class_map=class_map, iou=iou, conf=conf, batch=batch), sort_keys=False, nan="null")
    return metrics

"""Scoring predictions made anywhere: a COCO results JSON from any tool, scored against a
suite into the same results folder ``evaluate`` writes (predictions.json, outcomes.parquet,
metrics.json, run.json), so that ``trace`` and ``report`` work on it.

A results entry is ``{"image_id", "category_id", "bbox": [x, y, w, h] (pixels, top-left
corner), "score"}``; other keys are ignored. ``image_id`` may be

- the suite's image id (an integer of annotations.json);
- a file name of the suite image: its path in the suite (``images/000003/base_full_all.png``),
  or the name an ``oddsuite export`` gave it (``000017_base_full_all.png``), with or without
  the extension. ultralytics ``val(save_json=True)`` writes the stem of each image file
  (``000017_base_full_all``), or its integer when the stem is all digits.

A name that would fit two suite images (``base_full_all`` is in every scene folder) is an
error, never a guess, and so is an ``image_id`` that fits no image. An entry without
``image_id`` is placed by its ``file_name`` (which ultralytics also writes). ``category_id`` must be a suite category id, unless a
class map says what the tool's ids mean: ``{"1": "person", "3": "car"}`` (tool id -> suite
category name or id). With a class map, a tool id it does not name is an error, or, with
``drop_unmapped``, dropped and counted in metrics.json ``dropped_classes``.
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from oddsuite.errors import SuiteError
from oddsuite.evaluate.classes import parse_class_map
from oddsuite.evaluate.loop import PREDICTIONS, RUN, _score_suite, _versions
from oddsuite.fileio import sha256_file, write_json
from oddsuite.metrics.coco import MAP_SCORE_FLOOR, engine_info
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU
from oddsuite.suite.reader import Suite, load_suite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExternalPredictions:
    """predictions: COCO results in the suite's image and category ids, in file order;
    image_id_forms: how many entries named their image by suite ``id``, by ``file name``
    in ``image_id``, or (no image_id) by the entry's ``file_name``; dropped: tool category id -> [n (score >= 0.001), n with
    score >= conf] of the entries a class map did not name (with ``drop_unmapped``);
    class_map: tool category id -> suite category id."""

    predictions: list[dict[str, Any]]
    n_entries: int
    image_id_forms: dict[str, int]
    class_map: dict[int, int] = field(default_factory=dict)
    dropped: dict[str, list[int]] = field(default_factory=dict)


def _image_names(suite: Suite) -> dict[str, set[int]]:
    """Every name a tool may give a suite image -> the image ids it fits."""
    names: dict[str, set[int]] = {}
    for im in suite.gt["images"]:
        iid = int(im["id"])
        rel = Path(str(im["file_name"]))
        export = f"{iid:06d}_{rel.stem}"  # models.yolo_dataset.export_yolo's file names
        for n in (rel.as_posix(), rel.name, rel.stem, rel.with_suffix("").as_posix(), export, export + rel.suffix):
            names.setdefault(n, set()).add(iid)
    return names


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


class _Resolver:
    def __init__(self, suite: Suite, where: str) -> None:
        self.where = where
        self.ids = set(suite.image_ids)
        self.names = _image_names(suite)
        self.forms: Counter[str] = Counter()

    def _by_name(self, name: str) -> tuple[int | None, str | None]:
        """(image id, None), or (None, why not)."""
        for cand in dict.fromkeys((name, Path(name).name, Path(name).stem)):
            fits = self.names.get(cand)
            if fits is None:
                continue
            if len(fits) > 1:
                return None, (f"{name!r} fits {len(fits)} suite images (ids {sorted(fits)[:5]}...); name the image "
                              f"by its suite id or its path in the suite")
            return next(iter(fits)), None
        if name.isdigit() and int(name) in self.ids:
            return int(name), None
        return None, f"{name!r} is no suite image id or file name"

    def __call__(self, i: int, d: Mapping[str, Any]) -> int:
        img = d.get("image_id")
        fname = d.get("file_name")
        if img is None and isinstance(fname, str) and fname:
            iid, why = self._by_name(fname)
            if iid is None:
                raise SuiteError(f"{self.where}: [{i}].file_name (no image_id): {why}")
            self.forms["entry file_name"] += 1
            return iid
        if _is_int(img):
            if int(img) in self.ids:
                self.forms["id"] += 1
                return int(img)
            why = f"{int(img)} is no image id of the suite (ids {min(self.ids, default=0)}..{max(self.ids, default=0)})"
        elif isinstance(img, str) and img:
            iid, why = self._by_name(img)
            if iid is not None:
                self.forms["file name"] += 1
                return iid
        else:
            why = f"expected a suite image id or file name, got {img!r}"
        raise SuiteError(f"{self.where}: [{i}].image_id: {why}")


def _suite_category(value: str, suite: Suite) -> int:
    by_name = {n: c for c, n in suite.categories.items()}
    if value in by_name:
        return by_name[value]
    if value.isdigit() and int(value) in suite.categories:
        return int(value)
    raise SuiteError(f"class map: {value!r} is no suite category (suite: "
                     f"{', '.join(f'{c}={n}' for c, n in sorted(suite.categories.items()))})")


def parse_tool_class_map(class_map: Mapping[str, str] | str | None, suite: Suite) -> dict[int, int]:
    """``"1=person,3=car"`` or ``{"1": "person", 3: 1}`` -> {tool category id: suite category id}."""
    try:
        raw = parse_class_map(class_map)
    except ValueError as e:
        raise SuiteError(str(e)) from e
    out: dict[int, int] = {}
    for k, v in raw.items():
        if not k.lstrip("-").isdigit():
            raise SuiteError(f"class map: key {k!r}: expected the tool's integer category_id")
        out[int(k)] = _suite_category(v, suite)
    return out


def _read(predictions: str | Path | Sequence[Mapping[str, Any]]) -> tuple[Any, str]:
    if isinstance(predictions, (str, Path)):
        path = Path(predictions)
        if not path.is_file():
            raise SuiteError(f"{path}: missing")
        try:
            return json.loads(path.read_text(encoding="utf-8")), str(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SuiteError(f"{path}: not valid JSON ({e})") from e
    return predictions, "predictions"


def load_external_predictions(predictions: str | Path | Sequence[Mapping[str, Any]], suite: Suite, *,
                              class_map: Mapping[str, str] | str | None = None, drop_unmapped: bool = False,
                              conf: float = DEFAULT_CONF) -> ExternalPredictions:
    """Read a COCO results JSON (a path, or the list itself) from any tool and express it in
    the suite's image and category ids (see the module doc). Every problem is a
    ``SuiteError`` naming the file, the entry index and the field."""
    data, where = _read(predictions)
    if not isinstance(data, (list, tuple)):
        raise SuiteError(f"{where}: expected a list of detections (COCO results format), got {type(data).__name__}")
    tool_map = parse_tool_class_map(class_map, suite) if class_map else {}
    resolve = _Resolver(suite, where)
    cats = suite.categories
    out: list[dict[str, Any]] = []
    dropped: dict[str, list[int]] = {}
    for i, d in enumerate(data):
        w = f"{where}: [{i}]"
        if not isinstance(d, Mapping):
            raise SuiteError(f"{w}: expected an object, got {type(d).__name__}")
        bb, s, cat = d.get("bbox"), d.get("score"), d.get("category_id")
        if not (isinstance(bb, (list, tuple)) and len(bb) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bb)
                and bb[2] >= 0 and bb[3] >= 0):
            raise SuiteError(f"{w}.bbox: expected [x, y, w, h], finite, w and h >= 0, got {bb!r}")
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise SuiteError(f"{w}.score: expected a finite number, got {s!r}")
        if not _is_int(cat):
            raise SuiteError(f"{w}.category_id: expected an integer, got {cat!r}")
        image_id = resolve(i, d)
        if tool_map:
            suite_cat = tool_map.get(int(cat))
            if suite_cat is None:
                if not drop_unmapped:
                    raise SuiteError(f"{w}.category_id: {int(cat)} is not in the class map "
                                     f"({', '.join(f'{k}={cats[v]}' for k, v in sorted(tool_map.items()))}); "
                                     f"map it, or drop the classes the map leaves out (--drop-unmapped)")
                c = dropped.setdefault(f"category_id {int(cat)}", [0, 0])
                c[0] += int(s >= MAP_SCORE_FLOOR)
                c[1] += int(s >= conf)
                continue
        elif int(cat) in cats:
            suite_cat = int(cat)
        else:
            raise SuiteError(f"{w}.category_id: {int(cat)} is no suite category "
                             f"({', '.join(f'{k}={n}' for k, n in sorted(cats.items()))}); give a class map "
                             f"TOOL_ID=SUITE_CATEGORY,... when the tool numbers its classes otherwise")
        out.append({"image_id": image_id, "category_id": suite_cat, "bbox": [float(v) for v in bb],
                    "score": float(s)})
    return ExternalPredictions(out, len(data), dict(sorted(resolve.forms.items())), tool_map,
                               dict(sorted(dropped.items())))


def score(suite_dir: str | Path, predictions: str | Path | Sequence[Mapping[str, Any]],
          out_dir: str | Path | None = None, *, iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF,
          class_map: Mapping[str, str] | str | None = None, drop_unmapped: bool = False, name: str | None = None,
          dropped: Mapping[str, Sequence[int]] | None = None,
          slices: Mapping[str, Iterable[int]] | None = None) -> dict[str, Any]:
    """Score predictions made anywhere (no detector needed); returns the metrics.json dict.

    predictions: a COCO results JSON file, or the list (see the module doc for image and
    class ids; ``class_map`` and ``drop_unmapped`` as there). With ``out_dir``, writes the
    results folder of ``evaluate``: predictions.json (in suite ids), outcomes.parquet,
    metrics.json and run.json, which records the predictions file's SHA-256. ``name``:
    the detector's name in run.json and the report (default: the file's stem).
    ``dropped``: dropped-class counts known from elsewhere (name -> [n, n_above_conf]);
    ``slices``: extra named image-id sets whose mAP is reported under ``map.slices``.
    Raises ``SuiteError`` on an unknown image or class, naming the file and the entry.
    """
    suite = load_suite(suite_dir)
    ext = load_external_predictions(predictions, suite, class_map=class_map, drop_unmapped=drop_unmapped, conf=conf)
    if ext.dropped:
        dropped = {**dict(dropped or {}), **ext.dropped}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / PREDICTIONS, ext.predictions, sort_keys=False, indent=None, nan="null")
    metrics = _score_suite(suite, ext.predictions, out, iou=iou, conf=conf, dropped=dropped, invalid=None,
                           slices=slices)
    if out is None:
        return metrics
    src = Path(predictions) if isinstance(predictions, (str, Path)) else None
    write_json(out / RUN, {
        "detector": {"name": name or (src.stem if src else "predictions"), "classes": None, "model_sha256": None},
        "predictions_source": {
            "path": str(src.resolve()) if src else None, "sha256": sha256_file(src) if src else None,
            "entries": ext.n_entries, "image_id_forms": ext.image_id_forms,
            "class_map": {str(k): suite.categories[v] for k, v in sorted(ext.class_map.items())},
            "drop_unmapped": drop_unmapped,
            "images_with_predictions": len({d["image_id"] for d in ext.predictions}),
        },
        "suite": {"path": str(Path(suite_dir).resolve()), "identity": suite.identity,
                  "manifest_sha256": suite.manifest_sha256, "n_images": len(suite.gt["images"])},
        "settings": {"iou": iou, "conf": conf, "map_score_floor": MAP_SCORE_FLOOR},
        "predictions_sha256": sha256_file(out / PREDICTIONS),
        "engine": engine_info(),
        "versions": _versions(),
    }, sort_keys=False, nan="null")
    return metrics

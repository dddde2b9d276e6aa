"""Reduced context (metrics.md §7): one detector evaluated under several inference conditions
(``oddsuite.models.conditions``: reference, scale, tiles, crop), each scored like any run,
with the context retention of each against the reference.

Results folder (docs/FORMAT.md)::

    DIR/                      the reference: a plain ``evaluate`` (predictions.json,
                              outcomes.parquet, metrics.json, run.json, .state/), whose
                              metrics.json gains the section ``reduced_context``
    DIR/inference/<c>/        every other condition (``scale-0.5``, ``tiles-2x2-0.2``,
                              ``crop-0.6``): the same files, resumable on their own; its
                              outcomes.parquet has the column ``inference`` (the condition)
                              and, for tiles, ``tile_cut``

A condition is a Detector around the detector (``InferenceCondition.wrap``), so the prediction
loop, resume and the executors run it unchanged. A crop is scored against the ground truth
clipped to it (``metrics.reduced_context.clip_ground_truth``); tiles are merged at the
evaluation's operating threshold ``conf``, so a tiles folder refuses to resume under another
``conf``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.errors import OddsuiteError
from oddsuite.evaluate.loop import METRICS, OUTCOMES, STATE_DIR, evaluate_suite
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU
from oddsuite.fileio import write_json
from oddsuite.metrics.reduced_context import (INFERENCE_COLUMN, clip_ground_truth, condition_summary,
                                              context_retention, tile_cut)
from oddsuite.metrics.stats import json_clean
from oddsuite.models.base import Detector, model_info
from oddsuite.suite.reader import load_suite
from oddsuite.models.conditions import (MERGE_METRIC, MERGE_TEXT, MERGE_THRESHOLD, REFERENCE, ConditionRecipe,
                                        InferenceCondition, parse_conditions)

log = logging.getLogger(__name__)

SECTION = "reduced_context"


@dataclass(frozen=True)
class ConditionView:
    """How ``evaluate_suite`` scores one condition (its ``view``): the ground truth (clipped
    to a crop) and the outcome columns ``inference`` and, for tiles, ``tile_cut``."""

    condition: InferenceCondition

    def ground_truth(self, gt: dict[str, Any]) -> dict[str, Any]:
        if self.condition.kind != "crop":
            return gt
        return clip_ground_truth(gt, self.condition.window)

    def outcome_columns(self, outcomes: pd.DataFrame, gt: Mapping[str, Any]) -> pd.DataFrame:
        out = outcomes.assign(**{INFERENCE_COLUMN: self.condition.name})
        if self.condition.kind != "tiles":
            return out
        sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in gt["images"]}
        boxes = {(int(a["image_id"]), int(a["roi_id"])): a["bbox"] for a in gt["annotations"]}
        tiles: dict[tuple[int, int], Any] = {}
        cut = []
        for image_id, roi_id in zip(out["image_id"].astype(int), out["roi_id"].astype(int)):
            box = boxes.get((image_id, roi_id))
            if box is None:  # no visible pixel: nothing to cut
                cut.append(False)
                continue
            size = sizes[image_id]
            if size not in tiles:
                tiles[size] = [v.box for v in self.condition.views(*size)]
            cut.append(bool(tile_cut(np.asarray([box]), tiles[size])[0]))
        return out.assign(tile_cut=cut)


def _check_merge_conf(folder: Path, condition: InferenceCondition, conf: float) -> None:
    """A tiles folder's partial predictions were merged at the conf its state records."""
    key = folder / STATE_DIR / "key.json"
    if condition.kind != "tiles" or not key.is_file():
        return
    try:
        old = json.loads(key.read_text(encoding="utf-8")).get("conf")
    except json.JSONDecodeError:
        return  # the prediction loop reports a damaged key itself
    if old is not None and float(old) != float(conf):
        raise OddsuiteError(f"{folder}: holds tiles merged at conf {old}, not {conf}; use the same --conf, another "
                            f"--out folder, or delete {folder}")


def _read_outcomes(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / OUTCOMES)


def _frame_tiles(suite_images: Sequence[Mapping[str, Any]], condition: InferenceCondition) -> dict[str, Any]:
    """The windows the detector sees per frame size of the suite (``"WxH" -> [[x0, y0, x1, y1], ...]``)."""
    sizes = sorted({(int(im["width"]), int(im["height"])) for im in suite_images})
    return {f"{w}x{h}": [list(v.box) for v in condition.views(h, w)] for w, h in sizes}


def retention_section(out: Path, conditions: Sequence[InferenceCondition], metrics: Mapping[str, Mapping[str, Any]],
                      detector_names: Mapping[str, str], suite_images: Sequence[Mapping[str, Any]],
                      conf: float) -> dict[str, Any]:
    """metrics.json's ``reduced_context``: per condition its headline figures and its context
    retention against the reference (read from the conditions' results folders)."""
    import sahi

    reference = _read_outcomes(out)
    rows = []
    for c in conditions:
        folder = out / c.folder
        entry: dict[str, Any] = {
            "name": c.name, "kind": c.kind, "description": c.describe(), "folder": c.folder,
            "detector": detector_names[c.name], "views": _frame_tiles(suite_images, c),
            **condition_summary(metrics[c.name]),
        }
        entry["retention"] = None if c.kind == REFERENCE else context_retention(reference, _read_outcomes(folder))
        rows.append(entry)
    return {
        "reference": REFERENCE,
        "definition": "retention = P(ROI hit under the condition | ROI hit under the reference), metrics.md §7",
        "merge": {"method": "sahi GREEDYNMM", "metric": MERGE_METRIC, "threshold": MERGE_THRESHOLD, "conf": conf,
                  "text": MERGE_TEXT, "sahi": getattr(sahi, "__version__", "unknown")},
        "conditions": rows,
    }


def evaluate_conditions(suite_dir: str | Path, detector: Detector, out_dir: str | Path,
                        conditions: str | Iterable[str | InferenceCondition], *, iou: float = DEFAULT_IOU,
                        conf: float = DEFAULT_CONF, batch: int = 8, class_map: Mapping[str, str] | str | None = None,
                        model_sha256: str | None = None, progress: bool = True, executor: Any = None,
                        recipe: Any = None) -> dict[str, Any]:
    """Evaluate ``detector`` under every condition (the reference first, added when not
    named) into ``out_dir`` (module doc) and return the reference's metrics.json dict with
    its ``reduced_context`` section. Options as ``evaluate.evaluate_suite``; ``recipe``
    re-creates the detector in the executor's workers (default ``detector.info.recipe``),
    each condition's wraps it. Re-running resumes every condition where it stopped."""
    conds = parse_conditions(conditions)
    out = Path(out_dir)
    common = dict(iou=iou, conf=conf, batch=batch, class_map=class_map, model_sha256=model_sha256, progress=progress,
                  executor=executor)
    metrics: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    inner_recipe = recipe if recipe is not None else model_info(detector).recipe
    for c in conds:  # before anything is written
        _check_merge_conf(out / c.folder, c, conf)
    for c in conds:
        if c.kind == REFERENCE:
            log.info("reduced context: %s", c.name)
            metrics[c.name] = evaluate_suite(suite_dir, detector, out, recipe=recipe, **common)
            names[c.name] = str(detector.name)
            continue
        folder = out / c.folder
        wrapped = c.wrap(detector, merge_conf=conf)
        log.info("reduced context: %s (%s)", c.name, folder)
        r = ConditionRecipe(inner_recipe, c, conf) if inner_recipe is not None else None
        metrics[c.name] = evaluate_suite(suite_dir, wrapped, folder, recipe=r, view=ConditionView(c), **common)
        names[c.name] = str(wrapped.name)
    images = load_suite(suite_dir).gt["images"]
    result = dict(metrics[REFERENCE])
    result[SECTION] = retention_section(out, conds, metrics, names, images, conf)
    result = json_clean(result)
    write_json(out / METRICS, result, sort_keys=False, nan="null")
    return result

"""Every score of metrics.md for one prediction set, as the metrics.json dict.

Image groups (FORMAT.md records):
- full-scene images (path 1): ``mode == "full"``;
- permutation images (path 2): every other image (``mode`` remove / isolate / cutout),
  each scored against its own ground truth; isolated images are the permutation images
  with ``subset_size == 1``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from oddsuite.metrics.coco import MAP_SCORE_FLOOR, SliceEvaluator
from oddsuite.metrics.context import (context_accuracy, context_false_positives, influence_summary,
                                      roi_influence)
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, image_table, outcome_tables
from oddsuite.metrics.stats import rate, ratio_or_none

FULL_MODE = "full"


@dataclass(frozen=True)
class Scores:
    """metrics: the metrics.json dict; outcomes: one row per (image, ROI of its subset);
    detections: one row per prediction with its match status; images: one row per image
    with its context-induced false positives; influence: one row per (scene, target, other)."""

    metrics: dict[str, Any]
    outcomes: pd.DataFrame
    detections: pd.DataFrame
    images: pd.DataFrame
    influence: pd.DataFrame


def _ids_by(images: pd.DataFrame, column: str) -> dict[str, list[int]]:
    return {str(k): g["image_id"].astype(int).tolist() for k, g in images.groupby(column, sort=True)}


def _outcome_rates(rows: pd.DataFrame) -> dict[str, Any]:
    """hit / mislabel / miss rates over the non-ignore ROI rows (ignore ROIs are neither TP nor FP)."""
    scored = rows.loc[~rows["ignore"]]
    n = len(scored)
    out: dict[str, Any] = {k: rate(int((scored["outcome"] == k).sum()), n) for k in ("hit", "mislabel", "miss")}
    out["n"] = n
    out["n_ignore"] = int(rows["ignore"].sum())
    out["n_not_visible"] = int(rows["not_visible"].sum())
    return out


def score_predictions(gt: Mapping[str, Any], preds: Sequence[Mapping[str, Any]], *, iou: float = DEFAULT_IOU,
                      conf: float = DEFAULT_CONF, rois: pd.DataFrame | None = None,
                      slices: Mapping[str, Iterable[int]] | None = None) -> Scores:
    """Score one prediction set (COCO results, suite category ids) against a suite's ground truth.

    rois: rois.parquet (gives the category of ROIs with no visible pixel); slices: extra
    named image-id sets whose mAP is reported under ``map.slices``.
    """
    images = image_table(gt)
    roi_categories = None
    if rois is not None:
        roi_categories = {(int(s), int(r)): int(c) for s, r, c in
                          rois[["scene_id", "roi_id", "category_id"]].itertuples(index=False)}
    outcomes, detections = outcome_tables(gt, preds, iou=iou, conf=conf, roi_categories=roi_categories)

    full = images.loc[images["mode"] == FULL_MODE]
    perm = images.loc[images["mode"] != FULL_MODE]
    iso = perm.loc[perm["subset_size"] == 1]
    ev = SliceEvaluator(gt, preds, score_floor=MAP_SCORE_FLOOR)
    map_full = ev.stats(full["image_id"], per_class=True)
    map_perm = ev.stats(perm["image_id"], per_class=True)
    map_iso = ev.stats(iso["image_id"])
    maps: dict[str, Any] = {
        "full": map_full,
        "full_by_variant": ev.slices(_ids_by(full, "variant")),
        "permutation": map_perm,
        "isolated": map_iso,
        "permutation_by_subset_size": ev.slices(_ids_by(perm, "subset_size")),
        "permutation_by_variant": ev.slices(_ids_by(perm, "variant")),
        "permutation_by_mode": ev.slices(_ids_by(perm, "mode")),
        "slices": ev.slices(slices) if slices else {},
    }
    rpc = {
        "value": ratio_or_none(map_perm["map"], map_iso["map"]),
        "permutation_map": map_perm["map"],
        "isolated_map": map_iso["map"],
        "n_permutation_images": map_perm["n_images"],
        "n_isolated_images": map_iso["n_images"],
    }

    perm_rows = outcomes.loc[outcomes["mode"] != FULL_MODE]
    outcome_rates = {
        "full": _outcome_rates(outcomes.loc[outcomes["mode"] == FULL_MODE]),
        "permutation": _outcome_rates(perm_rows),
        "isolated": _outcome_rates(perm_rows.loc[perm_rows["subset_size"] == 1]),
    }
    ctx_acc = {
        "overall": context_accuracy(outcomes),
        "by_class": context_accuracy(outcomes, "category"),
        "by_variant": context_accuracy(outcomes, "variant"),
        "by_subset_size": context_accuracy(outcomes, "subset_size"),
        "by_mode": context_accuracy(outcomes, "mode"),
    }
    ctx_fp, fp_table = context_false_positives(detections, images, iou=iou)
    influence = roi_influence(outcomes)
    per_image = images.merge(fp_table[["image_id", "n_fp", "n_context_fp", "scored"]], on="image_id", how="left")

    metrics: dict[str, Any] = {
        "settings": {"iou": iou, "conf": conf, "map_score_floor": MAP_SCORE_FLOOR,
                     "min_visible": gt.get("info", {}).get("min_visible")},
        "counts": {
            "images": len(images), "full_images": len(full), "permutation_images": len(perm),
            "isolated_images": len(iso), "roi_rows": len(outcomes), "predictions": len(preds),
            "predictions_above_conf": int((detections["status"] != "below_conf").sum()) if len(detections) else 0,
        },
        "map": maps,
        "rpc": rpc,
        "outcomes": outcome_rates,
        "context_accuracy": ctx_acc,
        "context_fp": ctx_fp,
        "influence": influence_summary(influence),
    }
    return Scores(metrics, outcomes, detections, per_image, influence)

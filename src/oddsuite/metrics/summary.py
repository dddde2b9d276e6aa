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

from oddsuite.metrics.coco import MAP_SCORE_FLOOR, SliceEvaluator, engine_info
from oddsuite.metrics.context import (context_accuracy, context_false_positives, influence_summary,
                                      roi_influence)
from oddsuite.metrics.false_positives import background_per_image, full_scene_false_positives
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, image_table, outcome_tables
from oddsuite.metrics.stats import rate, ratio_or_none

FULL_MODE = "full"


@dataclass(frozen=True)
class Scores:
    """metrics: the metrics.json dict; outcomes: one row per (image, ROI of its subset);
    detections: one row per prediction with its match status; images: one row per image
    with its background false positives (n_fp) and, for multi-ROI images, its
    context-induced ones; influence: one row per (scene, target, other)."""

    metrics: dict[str, Any]
    outcomes: pd.DataFrame
    detections: pd.DataFrame
    images: pd.DataFrame
    influence: pd.DataFrame


def _ids_by(images: pd.DataFrame, column: str) -> dict[str, list[int]]:
    return {str(k): g["image_id"].astype(int).tolist() for k, g in images.groupby(column, sort=True)}


def _outcome_rates(rows: pd.DataFrame) -> dict[str, Any]:
    """hit / mislabel / miss rates over the scored ROI rows. Left out, and counted apart:
    ``n_ignore`` ignore regions (visible below min_visible) and ``n_not_visible`` ROIs with
    no visible pixel (disjoint, metrics.md Rules)."""
    ignore = rows["ignore"].astype(bool)
    not_visible = rows["not_visible"].astype(bool)
    scored = rows.loc[~ignore & ~not_visible]
    n = len(scored)
    out: dict[str, Any] = {k: rate(int((scored["outcome"] == k).sum()), n) for k in ("hit", "mislabel", "miss")}
    out["n"] = n
    out["n_ignore"] = int(ignore.sum())
    out["n_not_visible"] = int(not_visible.sum())
    return out


def score_predictions(gt: Mapping[str, Any], preds: Sequence[Mapping[str, Any]], *, iou: float = DEFAULT_IOU,
                      conf: float = DEFAULT_CONF, rois: pd.DataFrame | None = None,
                      scenes: pd.DataFrame | None = None,
                      slices: Mapping[str, Iterable[int]] | None = None) -> Scores:
    """Score one prediction set (COCO results, suite category ids) against a suite's ground truth.

    rois: rois.parquet (gives the category of ROIs with no visible pixel); scenes:
    scenes.parquet (the scene conditions of §4b's ``by_condition``); slices: extra named
    image-id sets whose mAP is reported under ``map.slices``.
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
    groups = {
        "full_by_variant": _ids_by(full, "variant"),
        "permutation_by_subset_size": _ids_by(perm, "subset_size"),
        "permutation_by_variant": _ids_by(perm, "variant"),
        "permutation_by_mode": _ids_by(perm, "mode"),
        "slices": dict(slices or {}),
    }
    flat = {"isolated": iso["image_id"]}  # one slice_by pass for every slice without per-class figures
    flat.update({f"{g}\0{k}": ids for g, m in groups.items() for k, ids in m.items()})
    got = ev.slices(flat)
    classed = ev.slices({"full": full["image_id"], "permutation": perm["image_id"]}, per_class=True)
    map_full, map_perm, map_iso = classed["full"], classed["permutation"], got["isolated"]
    maps: dict[str, Any] = {"full": map_full, "permutation": map_perm, "isolated": map_iso}
    for g, m in groups.items():
        maps[g] = {str(k): got[f"{g}\0{k}"] for k in m}
    maps = {k: maps[k] for k in ("full", "full_by_variant", "permutation", "isolated", "permutation_by_subset_size",
                                 "permutation_by_variant", "permutation_by_mode", "slices")}
    rpc = {
        "value": ratio_or_none(map_perm["map"], map_iso["map"]),
        "permutation_map": map_perm["map"],
        "isolated_map": map_iso["map"],
        "n_permutation_images": map_perm["n_images"],
        "n_isolated_images": map_iso["n_images"],
    }
    tide = {"engine": engine_info(), "full": ev.tide(full["image_id"]), "permutation": ev.tide(perm["image_id"])}

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
    categories = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    full_fp = full_scene_false_positives(detections, images, categories, scenes=scenes)
    influence = roi_influence(outcomes)
    per_image = images.assign(n_fp=background_per_image(detections, images).to_numpy())
    per_image = per_image.merge(fp_table[["image_id", "n_context_fp", "scored"]], on="image_id", how="left")

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
        "tide": tide,
        "outcomes": outcome_rates,
        "context_accuracy": ctx_acc,
        "context_fp": ctx_fp,
        "full_scene_fp": full_fp,
        "influence": influence_summary(influence),
    }
    return Scores(metrics, outcomes, detections, per_image, influence)

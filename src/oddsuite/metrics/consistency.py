"""Pre/post consistency of two prediction sets A and B on the same images (metrics.md §6).

Per image, A's and B's detections (score >= ``conf``) are matched class by class with the
Hungarian method on IoU (scipy ``linear_sum_assignment``), pairs with IoU >= ``iou`` only.
Reported overall and per slice (any column of the image or outcome table):

- ``agreement``: matched / max(|A|, |B|), pooled over the slice's images (k = matched
  pairs, n = sum of max(|A|, |B|)), with a Wilson interval; ``agreement_per_image`` is
  the mean of the per-image ratios over images where either set has a detection;
- ``flips``: per ROI row (every ROI of every image's subset), hit in A and not in B
  (``hit_to_not``) and the reverse (``not_to_hit``), each a rate over the ROI rows;
- ``score_drift``: mean of score_B - score_A over matched pairs;
- ``map``: COCO stats of A and of B on the slice's images and ``delta`` = B - A
  (one ``COCOeval.evaluate()`` per set, accumulated per slice).

A slice by a ROI-level column (one that only the outcome table has, e.g. ``category`` or
``roi.distance_m``) carries ``flips`` only.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from oddsuite.metrics.coco import SliceEvaluator
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, image_table, iou_xywh, outcome_tables
from oddsuite.metrics.stats import mean_or_none, rate
from oddsuite.metrics.tables import slice_labels, with_parameters


def match_sets(a_boxes: np.ndarray, a_cats: np.ndarray, b_boxes: np.ndarray, b_cats: np.ndarray, *,
               iou: float = DEFAULT_IOU) -> list[tuple[int, int, float]]:
    """Hungarian matching of two detection sets of one image (xywh boxes), same class,
    maximising the total IoU over pairs with IoU >= ``iou``. Returns (i_a, i_b, IoU) pairs."""
    a_boxes = np.asarray(a_boxes, dtype=np.float64).reshape(-1, 4)
    b_boxes = np.asarray(b_boxes, dtype=np.float64).reshape(-1, 4)
    a_cats = np.asarray(a_cats, dtype=np.int64).reshape(-1)
    b_cats = np.asarray(b_cats, dtype=np.int64).reshape(-1)
    pairs: list[tuple[int, int, float]] = []
    for cat in sorted(set(a_cats.tolist()) & set(b_cats.tolist())):
        ia = np.flatnonzero(a_cats == cat)
        ib = np.flatnonzero(b_cats == cat)
        m = iou_xywh(a_boxes[ia], b_boxes[ib])
        valid = m >= iou
        if not valid.any():
            continue
        rows, cols = linear_sum_assignment(np.where(valid, -m, 0.0))
        for r, c in zip(rows, cols):
            if valid[r, c]:
                pairs.append((int(ia[r]), int(ib[c]), float(m[r, c])))
    pairs.sort()
    return pairs


def consistency_tables(gt: Mapping[str, Any], preds_a: Sequence[Mapping[str, Any]],
                       preds_b: Sequence[Mapping[str, Any]], *, iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF,
                       roi_categories: Mapping[tuple[int, int], int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-image table, per-ROI table) of the comparison.

    images: image_table columns + n_a, n_b, n_matched, drift_sum (sum of score_B - score_A
    over matched pairs), agreement, hit_to_not, not_to_hit, n_flips.
    rois: the outcome table of A (``outcome`` renamed ``outcome_a``) + ``outcome_b``,
    ``hit_to_not``, ``not_to_hit``.
    """
    images = image_table(gt)
    by_img_a: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    by_img_b: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for d in preds_a:
        if float(d["score"]) >= conf:
            by_img_a[int(d["image_id"])].append(d)
    for d in preds_b:
        if float(d["score"]) >= conf:
            by_img_b[int(d["image_id"])].append(d)
    n_a, n_b, n_m, drift = [], [], [], []
    for image_id in images["image_id"]:
        da, db = by_img_a.get(int(image_id), []), by_img_b.get(int(image_id), [])
        pairs = match_sets(np.array([d["bbox"] for d in da], dtype=np.float64),
                           np.array([d["category_id"] for d in da], dtype=np.int64),
                           np.array([d["bbox"] for d in db], dtype=np.float64),
                           np.array([d["category_id"] for d in db], dtype=np.int64), iou=iou)
        n_a.append(len(da))
        n_b.append(len(db))
        n_m.append(len(pairs))
        drift.append(float(sum(float(db[j]["score"]) - float(da[i]["score"]) for i, j, _ in pairs)))
    images = images.assign(n_a=n_a, n_b=n_b, n_matched=n_m, drift_sum=drift)
    denom = np.maximum(images["n_a"], images["n_b"])
    images["agreement"] = np.where(denom > 0, images["n_matched"] / denom.where(denom > 0, 1), np.nan)

    out_a, _ = outcome_tables(gt, preds_a, iou=iou, conf=conf, roi_categories=roi_categories)
    out_b, _ = outcome_tables(gt, preds_b, iou=iou, conf=conf, roi_categories=roi_categories)
    rois = out_a.rename(columns={"outcome": "outcome_a"})
    rois["outcome_b"] = out_b["outcome"].to_numpy()
    rois["hit_to_not"] = (rois["outcome_a"] == "hit") & (rois["outcome_b"] != "hit")
    rois["not_to_hit"] = (rois["outcome_a"] != "hit") & (rois["outcome_b"] == "hit")
    flips = rois.groupby("image_id", sort=False)[["hit_to_not", "not_to_hit"]].sum()
    images = images.join(flips, on="image_id")
    images[["hit_to_not", "not_to_hit"]] = images[["hit_to_not", "not_to_hit"]].fillna(0).astype(int)
    images["n_flips"] = images["hit_to_not"] + images["not_to_hit"]
    return images, rois


def _flips(rois: pd.DataFrame) -> dict[str, Any]:
    n = len(rois)
    return {"hit_to_not": rate(int(rois["hit_to_not"].sum()), n),
            "not_to_hit": rate(int(rois["not_to_hit"].sum()), n), "n": n}


def _image_record(imgs: pd.DataFrame, rois: pd.DataFrame, ev_a: SliceEvaluator,
                  ev_b: SliceEvaluator) -> dict[str, Any]:
    ids = imgs["image_id"].tolist()
    matched = int(imgs["n_matched"].sum())
    denom = int(np.maximum(imgs["n_a"], imgs["n_b"]).sum())
    map_a, map_b = ev_a.stats(ids), ev_b.stats(ids)
    delta = {k: (map_b[k] - map_a[k]) if (map_a[k] is not None and map_b[k] is not None) else None
             for k in ("map", "ap50", "ap75")}
    return {
        "n_images": len(ids),
        "agreement": rate(matched, denom),
        "agreement_per_image": mean_or_none(imgs["agreement"].dropna().to_numpy()),
        "flips": _flips(rois),
        "score_drift": {"value": (float(imgs["drift_sum"].sum()) / matched) if matched else None, "n": matched},
        "map": {"a": map_a, "b": map_b, "delta": delta, "n_images": len(ids)},
    }


def consistency(gt: Mapping[str, Any], preds_a: Sequence[Mapping[str, Any]], preds_b: Sequence[Mapping[str, Any]],
                *, iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF, scenes: pd.DataFrame | None = None,
                rois: pd.DataFrame | None = None, by: Sequence[str] = ("variant", "mode", "subset_size"),
                top: int = 10) -> dict[str, Any]:
    """The §6 report of A vs B on the images of ``gt``.

    scenes: scenes.parquet (parameter columns by image_id) and rois: rois.parquet (ROI
    columns by scene_id, roi_id, also giving the category of ROIs with no visible pixel);
    both optional. ``by``: columns to slice by (image columns, scene parameters, or ROI
    columns such as ``category`` / ``roi.distance_m``); numeric columns with many values
    are cut into quantile bins. ``top``: how many images with the most flips to list.
    """
    roi_categories = None
    if rois is not None and {"scene_id", "roi_id", "category_id"} <= set(rois.columns):
        roi_categories = {(int(s), int(r)): int(c) for s, r, c in
                          rois[["scene_id", "roi_id", "category_id"]].itertuples(index=False)}
    imgs, roi_rows = consistency_tables(gt, preds_a, preds_b, iou=iou, conf=conf, roi_categories=roi_categories)
    imgs = with_parameters(imgs, scenes)
    roi_rows = with_parameters(roi_rows, scenes, rois)
    ev_a, ev_b = SliceEvaluator(gt, preds_a), SliceEvaluator(gt, preds_b)

    slices: dict[str, dict[str, Any]] = {}
    for col in by:
        if col in imgs.columns:
            labels = slice_labels(imgs[col])
            roi_labels = roi_rows["image_id"].map(dict(zip(imgs["image_id"], labels)))
            slices[col] = {str(lab): _image_record(imgs.loc[labels == lab], roi_rows.loc[roi_labels == lab], ev_a, ev_b)
                           for lab in sorted(labels.unique())}
        elif col in roi_rows.columns:
            labels = slice_labels(roi_rows[col])
            slices[col] = {str(lab): {"flips": _flips(roi_rows.loc[labels == lab])} for lab in sorted(labels.unique())}
        else:
            raise KeyError(f"consistency: no column {col!r} in the image or outcome table")

    worst = imgs.loc[imgs["n_flips"] > 0].sort_values(["n_flips", "image_id"], ascending=[False, True],
                                                       kind="mergesort").head(top)
    top_images = [{"image_id": int(r.image_id), "file_name": r.file_name, "n_flips": int(r.n_flips),
                   "hit_to_not": int(r.hit_to_not), "not_to_hit": int(r.not_to_hit),
                   "n_a": int(r.n_a), "n_b": int(r.n_b), "n_matched": int(r.n_matched)}
                  for r in worst.itertuples(index=False)]
    return {
        "settings": {"iou": iou, "conf": conf},
        "overall": _image_record(imgs, roi_rows, ev_a, ev_b),
        "slices": slices,
        "top_images": top_images,
    }

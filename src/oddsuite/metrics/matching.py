"""ROI outcomes: hit / mislabel / miss per (image, ROI of its subset), metrics.md.

Matching per image, detections with score >= ``conf`` only, greedy by score (stable, as
COCO sorts), one detection per ROI:

1. *hit*: each detection, best first, takes the unmatched ROI of its own class with the
   highest IoU >= ``iou``; as in COCO, a non-ignore ROI is preferred to an ignore one and
   among equal IoUs the later ROI wins.
2. *mislabel*: each detection left over, best first, takes the unmatched ROI of another
   class with the highest IoU >= ``iou`` (the ROI's ``pred_category`` is that class).
3. every other ROI is a *miss*; ROIs of the subset with no visible pixel (no annotation)
   are misses flagged ``not_visible``.

Counts have one meaning each (metrics.md, Rules): ``ignore`` marks an ignore region (an
annotated ROI with ``iscrowd``: visible, but less than ``min_visible``); ``not_visible``
marks a ROI of the subset with no visible pixel. The two are disjoint; neither is scored.

Detections get a status: ``tp`` (hit on a non-ignore ROI), ``ignored`` (hit on an ignore
ROI, or a same-class detection covering an ignore ROI, i.e. intersection / detection
area >= ``iou`` as COCO treats crowd regions: neither TP nor FP), ``mislabel``, ``fp``
(matched to no ROI), ``below_conf``. An ``fp`` is also ``background`` when its IoU with
every annotated box of the image (ground truth or ignore region, any class) is below
``iou``: the false positives of metrics.md §4 and §4b. A duplicate on a ROI already
found, or a wrong-class box on it, is ``fp`` but not ``background``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_IOU = 0.5
DEFAULT_CONF = 0.25

OUTCOME_COLUMNS = [
    "image_id", "scene_id", "roi_id", "subset", "subset_size", "variant", "mode", "is_full",
    "category", "category_id", "visible_fraction", "ignore", "not_visible", "outcome",
    "score", "iou", "pred_category",
]
DETECTION_COLUMNS = [
    "det_index", "image_id", "category_id", "score", "x", "y", "w", "h", "status", "roi_id", "background",
]
IMAGE_COLUMNS = ["image_id", "file_name", "scene_id", "subset", "subset_size", "n_rois", "variant", "mode", "is_full"]


@dataclass(frozen=True)
class RoiTruth:
    """One ROI of an image's subset: its visible box (xywh) or None when nothing is visible;
    ``ignore``: an ignore region (iscrowd: visible, below ``min_visible``)."""

    roi_id: int
    category_id: int
    box: tuple[float, float, float, float] | None
    ignore: bool
    visible_fraction: float


@dataclass(frozen=True)
class ImageMatch:
    """Per ROI (same order as given): outcome, score, iou, predicted category id (mislabel),
    matched detection index (-1 none). Per detection (input order): status, matched ROI
    index, background (an ``fp`` overlapping no annotated box at IoU >= ``iou``)."""

    outcome: list[str]
    score: list[float]
    iou: list[float]
    pred_category_id: list[int | None]
    roi_det: list[int]
    det_status: list[str]
    det_roi: list[int]
    det_background: list[bool]


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xywh boxes (no +1 pixel convention, as pycocotools)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    union = (a[:, 2:3] * a[:, 3:4]) + (b[:, 2] * b[:, 3]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def cover_of_first(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """intersection / area(a) for xywh boxes: COCO's overlap of a detection with a crowd region."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, 0:1] + a[:, 2:3], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0:1], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 1:2] + a[:, 3:4], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1:2], b[:, 1]), 0, None)
    area = a[:, 2:3] * a[:, 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, iw * ih / area, 0.0)


def _greedy(order: Sequence[int], det_cats: np.ndarray, rois: Sequence[RoiTruth], ious: np.ndarray,
            roi_det: list[int], thr: float, same_class: bool) -> dict[int, int]:
    """One greedy pass; returns {det: roi} and fills roi_det. Mirrors COCOeval.evaluateImg."""
    # non-ignore ROIs first, ignore last (stable), as COCO sorts its ground truth
    g_order = [g for g in range(len(rois)) if rois[g].box is not None and not rois[g].ignore] + \
              [g for g in range(len(rois)) if rois[g].box is not None and rois[g].ignore]
    taken: dict[int, int] = {}
    for d in order:
        best_iou = min(thr, 1 - 1e-10)
        m = -1
        for g in g_order:
            if roi_det[g] >= 0:
                continue
            if (rois[g].category_id == det_cats[d]) != same_class:
                continue
            if m > -1 and not rois[m].ignore and rois[g].ignore:
                break
            if ious[d, g] < best_iou:
                continue
            best_iou = ious[d, g]
            m = g
        if m >= 0:
            roi_det[m] = d
            taken[d] = m
    return taken


def match_image(rois: Sequence[RoiTruth], boxes: np.ndarray, scores: np.ndarray, cats: np.ndarray, *,
                iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF) -> ImageMatch:
    """Outcomes of the ROIs of one image given its detections (boxes xywh)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    cats = np.asarray(cats, dtype=np.int64).reshape(-1)
    n_det, n_roi = len(scores), len(rois)
    roi_boxes = np.array([r.box if r.box is not None else (0.0, 0.0, 0.0, 0.0) for r in rois],
                         dtype=np.float64).reshape(-1, 4)
    ious = iou_xywh(boxes, roi_boxes) if n_det and n_roi else np.zeros((n_det, n_roi))
    for g, r in enumerate(rois):
        if r.box is None:
            ious[:, g] = 0.0
    kept = np.flatnonzero(scores >= conf)
    order = [int(i) for i in kept[np.argsort(-scores[kept], kind="mergesort")]]

    roi_det = [-1] * n_roi
    det_status = ["below_conf"] * n_det
    det_roi = [-1] * n_det
    for d in order:
        det_status[d] = "fp"
    hits = _greedy(order, cats, rois, ious, roi_det, iou, same_class=True)
    for d, g in hits.items():
        det_status[d] = "ignored" if rois[g].ignore else "tp"
        det_roi[d] = g
    rest = [d for d in order if d not in hits]
    mislabels = _greedy(rest, cats, rois, ious, roi_det, iou, same_class=False)
    for d, g in mislabels.items():
        det_status[d] = "mislabel"
        det_roi[d] = g
    ignore_idx = [g for g, r in enumerate(rois) if r.ignore and r.box is not None]
    if ignore_idx:
        cover = cover_of_first(boxes, roi_boxes[ignore_idx])
        for d in order:
            if det_status[d] != "fp":
                continue
            for j, g in enumerate(ignore_idx):
                if rois[g].category_id == cats[d] and cover[d, j] >= iou:
                    det_status[d] = "ignored"
                    break

    boxed = [g for g, r in enumerate(rois) if r.box is not None]
    overlaps = (ious[:, boxed] >= iou).any(axis=1) if boxed else np.zeros(n_det, dtype=bool)
    background = [det_status[d] == "fp" and not bool(overlaps[d]) for d in range(n_det)]

    outcome, score, best, pred = [], [], [], []
    for g, r in enumerate(rois):
        d = roi_det[g]
        if d >= 0:
            is_hit = d in hits
            outcome.append("hit" if is_hit else "mislabel")
            score.append(float(scores[d]))
            best.append(float(ious[d, g]))
            pred.append(None if is_hit else int(cats[d]))
        else:
            outcome.append("miss")
            score.append(float("nan"))
            best.append(float(ious[kept, g].max()) if (len(kept) and r.box is not None) else float("nan"))
            pred.append(None)
    return ImageMatch(outcome, score, best, pred, roi_det, det_status, det_roi, background)


def subset_str(subset: Sequence[int]) -> str:
    """The subset as scenes.parquet writes it: sorted ROI ids joined by commas."""
    return ",".join(str(int(r)) for r in sorted(subset))


def image_table(gt: Mapping[str, Any]) -> pd.DataFrame:
    """One row per image of a suite's ground truth, with the record fields of FORMAT.md."""
    rows = []
    for im in gt["images"]:
        subset = [int(r) for r in im["subset"]]
        rows.append({
            "image_id": int(im["id"]),
            "file_name": str(im.get("file_name", "")),
            "scene_id": int(im["scene_id"]),
            "subset": subset_str(subset),
            "subset_size": len(subset),
            "n_rois": int(im.get("n_rois", len(subset))),
            "variant": str(im["variant"]),
            "mode": str(im["mode"]),
            "is_full": bool(im["is_full"]),
        })
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


def outcome_tables(gt: Mapping[str, Any], dets: Sequence[Mapping[str, Any]], *, iou: float = DEFAULT_IOU,
                   conf: float = DEFAULT_CONF,
                   roi_categories: Mapping[tuple[int, int], int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(outcomes, detections) of a suite's ground truth and one prediction set.

    outcomes: one row per (image, ROI in the image's subset), columns ``OUTCOME_COLUMNS``.
    detections: one row per prediction (``det_index`` = its position in ``dets``), with its
    status and matched ``roi_id`` (-1 when none), columns ``DETECTION_COLUMNS``.
    ``roi_categories`` maps (scene_id, roi_id) -> category id, for ROIs with no visible
    pixel (they have no annotation); without it their category is unknown (-1).
    """
    cat_names = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    anns_by_image: dict[int, dict[int, Mapping[str, Any]]] = defaultdict(dict)
    for a in gt["annotations"]:
        anns_by_image[int(a["image_id"])][int(a["roi_id"])] = a
    dets_by_image: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(dets):
        dets_by_image[int(d["image_id"])].append(i)

    out_rows: list[dict[str, Any]] = []
    det_rows: list[dict[str, Any]] = []
    for im in gt["images"]:
        image_id = int(im["id"])
        scene_id = int(im["scene_id"])
        subset = sorted(int(r) for r in im["subset"])
        anns = anns_by_image.get(image_id, {})
        rois: list[RoiTruth] = []
        for roi_id in subset:
            a = anns.get(roi_id)
            if a is None:
                cat = -1
                if roi_categories is not None:
                    cat = int(roi_categories.get((scene_id, roi_id), -1))
                rois.append(RoiTruth(roi_id, cat, None, False, 0.0))
            else:
                x, y, w, h = (float(v) for v in a["bbox"])
                rois.append(RoiTruth(roi_id, int(a["category_id"]), (x, y, w, h), bool(a.get("iscrowd", 0)),
                                     float(a.get("visible_fraction", float("nan")))))
        idx = dets_by_image.get(image_id, [])
        boxes = np.array([dets[i]["bbox"] for i in idx], dtype=np.float64).reshape(-1, 4)
        scores = np.array([dets[i]["score"] for i in idx], dtype=np.float64)
        cats = np.array([dets[i]["category_id"] for i in idx], dtype=np.int64)
        m = match_image(rois, boxes, scores, cats, iou=iou, conf=conf)
        sub = subset_str(subset)
        for g, r in enumerate(rois):
            pc = m.pred_category_id[g]
            out_rows.append({
                "image_id": image_id, "scene_id": scene_id, "roi_id": r.roi_id, "subset": sub,
                "subset_size": len(subset), "variant": str(im["variant"]), "mode": str(im["mode"]),
                "is_full": bool(im["is_full"]), "category": cat_names.get(r.category_id),
                "category_id": r.category_id, "visible_fraction": r.visible_fraction,
                "ignore": r.ignore and r.box is not None, "not_visible": r.box is None, "outcome": m.outcome[g],
                "score": m.score[g], "iou": m.iou[g],
                "pred_category": cat_names.get(pc) if pc is not None else None,
            })
        for j, i in enumerate(idx):
            g = m.det_roi[j]
            x, y, w, h = (float(v) for v in boxes[j])
            det_rows.append({
                "det_index": i, "image_id": image_id, "category_id": int(cats[j]), "score": float(scores[j]),
                "x": x, "y": y, "w": w, "h": h, "status": m.det_status[j],
                "roi_id": rois[g].roi_id if g >= 0 else -1, "background": m.det_background[j],
            })
    outcomes = pd.DataFrame(out_rows, columns=OUTCOME_COLUMNS)
    detections = pd.DataFrame(det_rows, columns=DETECTION_COLUMNS)
    if len(detections):
        detections = detections.sort_values("det_index", kind="mergesort").reset_index(drop=True)
    return outcomes, detections

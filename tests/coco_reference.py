"""pycocotools, the reference the COCO engine (hotcoco) is checked against, and generators
of suite-shaped COCO data. Used by tests only: the library does not import pycocotools."""
from __future__ import annotations

import contextlib
import copy
import io
from itertools import combinations

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from oddsuite.metrics.coco import MAP_SCORE_FLOOR, STAT_NAMES


def pycocotools_alone(gt: dict, dets: list[dict], img_ids, floor: float = MAP_SCORE_FLOOR):
    """A complete, separate pycocotools run (evaluate, accumulate, summarize) on these images
    alone. Returns ({stat name: value or None for -1}, eval["precision"], COCOeval)."""
    kept = copy.deepcopy([d for d in dets if d["score"] >= floor])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy({k: gt[k] for k in ("images", "annotations", "categories")})
        coco.createIndex()
        if kept:
            res = coco.loadRes(kept)
        else:  # loadRes cannot take an empty list
            res = COCO()
            res.dataset = {"images": coco.dataset["images"], "categories": coco.dataset["categories"],
                           "annotations": []}
            res.createIndex()
        ev = COCOeval(coco, res, "bbox")
        ev.params.imgIds = sorted(int(i) for i in img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {name: (None if v < 0 else float(v)) for name, v in zip(STAT_NAMES, ev.stats)}
    return stats, ev.eval["precision"], ev


def per_class_reference(ev: COCOeval) -> dict[str, dict]:
    """Per-category AP and AP50 (area all, 100 detections) from a pycocotools evaluator's
    precision array, as metrics.coco computes them from hotcoco's."""
    p, prec = ev.params, ev.eval["precision"]
    t50 = int(np.where(np.isclose(p.iouThrs, 0.5))[0][0])
    out = {}
    for k, cat_id in enumerate(p.catIds):
        s, s50 = prec[:, :, k, 0, 2], prec[t50, :, k, 0, 2]
        out[ev.cocoGt.cats[cat_id]["name"]] = (float(np.mean(s[s > -1])) if np.any(s > -1) else None,
                                               float(np.mean(s50[s50 > -1])) if np.any(s50 > -1) else None)
    return out


VARIANTS = ("base", "fog", "night")
MODES = ("remove", "isolate", "cutout")
CATS = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "bicycle"}]


def suite_shaped(seed: int, *, n_scenes: int = 6, max_rois: int = 4, crowd: float = 0.2, not_visible: float = 0.1,
                 tied_scores: bool = False, crowded_image: bool = True, p_no_dets: float = 0.15) -> tuple[dict, list]:
    """A suite's ground truth and detections: per scene and variant a full image and, per
    masking mode, its ROI subsets; scenes without ROIs (no ground truth), ignore regions
    (iscrowd) and ROIs with no visible pixel, images without detections, one image with
    more than 100 detections, and (``tied_scores``) scores from a few values only."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    score_pool = np.array([0.3, 0.5, 0.5, 0.7, 0.9])
    for s in range(n_scenes):
        n = int(rng.integers(0, max_rois + 1))
        boxes = [(float(rng.uniform(0, 180)), float(rng.uniform(0, 120)), *map(float, rng.uniform(3, 90, 2)))
                 for _ in range(n)]
        cats = rng.integers(1, 4, n)
        plans = [(tuple(range(n)), "full")]
        for mode in MODES:
            plans += [(c, mode) for k in range(1, n) for c in combinations(range(n), k)][:6]
        for variant in VARIANTS:
            for subset, mode in plans:
                iid = len(images) + 1
                images.append({"id": iid, "file_name": f"images/{s:06d}/{variant}_{mode}_{iid}.png", "width": 256,
                               "height": 192, "scene_id": s, "subset": list(subset), "n_rois": n,
                               "variant": variant, "mode": mode, "is_full": len(subset) == n})
                for r in subset:
                    if rng.random() < not_visible:
                        continue  # no visible pixel: no annotation
                    x, y, w, h = boxes[r]
                    vis = float(rng.uniform(0.02, 1.0))
                    anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": int(cats[r]),
                                 "bbox": [round(x, 3), round(y, 3), round(w, 3), round(h, 3)],
                                 "area": float(round(w * h * vis, 1)), "iscrowd": int(rng.random() < crowd),
                                 "roi_id": r, "visible_fraction": vis})
                    if rng.random() < 0.8:
                        j = rng.normal(0, 0.08, 4) * [w, h, w, h]
                        c = int(cats[r]) if rng.random() > 0.15 else int(rng.integers(1, 4))
                        dets.append({"image_id": iid, "category_id": c,
                                     "bbox": [x + j[0], y + j[1], max(0.5, w + j[2]), max(0.5, h + j[3])],
                                     "score": float(rng.choice(score_pool) if tied_scores else rng.random())})
                if rng.random() < p_no_dets:
                    dets = [d for d in dets if d["image_id"] != iid]
                    continue
                for _ in range(int(rng.poisson(1.5))):
                    dets.append({"image_id": iid, "category_id": int(rng.integers(1, 4)),
                                 "bbox": [float(v) for v in rng.uniform(0, 200, 2)] + [float(v) for v in
                                                                                         rng.uniform(2, 60, 2)],
                                 "score": float(rng.choice(score_pool) if tied_scores else rng.beta(1.2, 4))})
    if crowded_image and images:
        iid = int(rng.integers(1, len(images) + 1))
        for _ in range(150):  # more than maxDets = 100 in one image
            dets.append({"image_id": iid, "category_id": int(rng.integers(1, 4)),
                         "bbox": [float(v) for v in rng.uniform(0, 200, 2)] + [float(v) for v in rng.uniform(2, 90, 2)],
                         "score": float(rng.choice(score_pool) if tied_scores else rng.random())})
    return {"images": images, "annotations": anns, "categories": CATS, "info": {"min_visible": 0.1}}, dets


def suite_slices(gt: dict, seed: int = 0) -> dict[str, list[int]]:
    """The slices metrics.json reports (full, permutation, isolated, by variant, mode and
    subset size), plus empty ones, images without ground truth, and random image sets."""
    rng = np.random.default_rng(seed)
    ims = gt["images"]
    with_gt = {a["image_id"] for a in gt["annotations"]}
    out = {"full": [i["id"] for i in ims if i["mode"] == "full"],
           "permutation": [i["id"] for i in ims if i["mode"] != "full"],
           "isolated": [i["id"] for i in ims if i["mode"] != "full" and len(i["subset"]) == 1],
           "empty": [], "no_ground_truth": [i["id"] for i in ims if i["id"] not in with_gt],
           "one": [ims[0]["id"]] if ims else []}
    for key in ("variant", "mode"):
        for v in sorted({i[key] for i in ims}):
            out[f"{key}={v}"] = [i["id"] for i in ims if i[key] == v]
    for k in sorted({len(i["subset"]) for i in ims}):
        out[f"size={k}"] = [i["id"] for i in ims if len(i["subset"]) == k and i["mode"] != "full"]
    for j in range(3):
        if ims:
            pick = rng.choice(len(ims), size=max(1, len(ims) // 4), replace=False)
            out[f"random{j}"] = sorted(int(ims[p]["id"]) for p in pick)
    return out

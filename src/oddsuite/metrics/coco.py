"""COCO mAP (pycocotools) over the whole suite and over slices of its images.

``COCOeval.evaluate()`` (the per-image, per-category matching: the expensive part) runs
ONCE over all images; a slice (any set of image ids) is then scored by running
pycocotools' own ``accumulate()`` and ``summarize()`` on a copy of the evaluator whose
``params.imgIds`` is the slice and whose ``evalImgs`` are the slice's entries, laid out
exactly as ``evaluate()`` on that slice alone would lay them out. The per-image results
do not depend on the other images, so the figures equal a pycocotools run on the slice
alone, bit for bit (tests/test_metrics_coco.py checks this with float equality).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

log = logging.getLogger(__name__)

#: COCO keeps detections with score >= 0.001 for mAP (metrics.md §1)
MAP_SCORE_FLOOR = 0.001

#: names of the 12 numbers ``COCOeval.summarize()`` computes for bbox, in its order
STAT_NAMES = (
    "map", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)


@contextlib.contextmanager
def _quiet() -> Any:
    """pycocotools prints progress; library code must not print, so send it to the log."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    text = buf.getvalue().strip()
    if text:
        log.debug("pycocotools: %s", text.replace("\n", " | "))


def gt_coco(gt: Mapping[str, Any]) -> COCO:
    """A pycocotools ``COCO`` over a ground-truth dict (not copied: do not mutate it after)."""
    coco = COCO()
    coco.dataset = {
        "info": dict(gt.get("info", {})),
        "images": list(gt["images"]),
        "annotations": list(gt["annotations"]),
        "categories": list(gt["categories"]),
    }
    with _quiet():
        coco.createIndex()
    return coco


def dt_coco(gt: COCO, dets: Sequence[Mapping[str, Any]], score_floor: float = MAP_SCORE_FLOOR) -> COCO:
    """Detections (COCO results format) as a ``COCO``, via ``loadRes`` exactly as COCO does.

    Keeps detections with score >= ``score_floor``. ``loadRes`` cannot take an empty list,
    so an empty set is built directly (same fields, no annotations).
    """
    kept = [copy.deepcopy(dict(d)) for d in dets if float(d["score"]) >= score_floor]
    known = set(gt.getImgIds())
    unknown = sorted({int(d["image_id"]) for d in kept} - known)
    if unknown:
        raise ValueError(f"detections name image ids the ground truth lacks: {unknown[:10]}")
    if not kept:
        res = COCO()
        res.dataset = {
            "info": copy.deepcopy(gt.dataset.get("info", {})),
            "images": list(gt.dataset["images"]),
            "categories": copy.deepcopy(gt.dataset["categories"]),
            "annotations": [],
        }
        with _quiet():
            res.createIndex()
        return res
    with _quiet():
        return gt.loadRes(kept)


def _value(x: float) -> float | None:
    """pycocotools uses -1 for 'no ground truth here': that is undefined, not a score."""
    x = float(x)
    return None if x < 0 else x


def _stats_of(ev: COCOeval, per_class: bool) -> dict[str, Any]:
    """The summary of an accumulated evaluator, plus optional per-category AP and AP50."""
    with _quiet():
        ev.summarize()
    out: dict[str, Any] = {name: _value(v) for name, v in zip(STAT_NAMES, ev.stats)}
    if per_class:
        p = ev.params
        prec = ev.eval["precision"]  # [T, R, K, A, M]
        a_all = p.areaRngLbl.index("all")
        m100 = p.maxDets.index(100) if 100 in p.maxDets else len(p.maxDets) - 1
        t50 = int(np.where(np.isclose(p.iouThrs, 0.5))[0][0])
        classes: dict[str, Any] = {}
        for k, cat_id in enumerate(p.catIds):
            s = prec[:, :, k, a_all, m100]
            s50 = prec[t50, :, k, a_all, m100]
            name = str(ev.cocoGt.cats[int(cat_id)]["name"]) if int(cat_id) in ev.cocoGt.cats else str(cat_id)
            classes[name] = {
                "category_id": int(cat_id),
                "ap": float(np.mean(s[s > -1])) if np.any(s > -1) else None,
                "ap50": float(np.mean(s50[s50 > -1])) if np.any(s50 > -1) else None,
            }
        out["per_class"] = classes
    return out


class SliceEvaluator:
    """One ``COCOeval.evaluate()`` over all images; mAP of any slice by accumulating its share.

    gt: COCO ground truth dict (images, annotations with iscrowd, categories);
    dets: COCO results ``[{"image_id", "category_id", "bbox" xywh, "score"}]``.
    """

    def __init__(self, gt: Mapping[str, Any], dets: Sequence[Mapping[str, Any]], *,
                 score_floor: float = MAP_SCORE_FLOOR) -> None:
        self.score_floor = score_floor
        self.coco_gt = gt_coco(gt)
        self.coco_dt = dt_coco(self.coco_gt, dets, score_floor)
        ev = COCOeval(self.coco_gt, self.coco_dt, iouType="bbox")
        with _quiet():
            ev.evaluate()
        self._ev = ev
        self.img_ids: list[int] = [int(i) for i in ev.params.imgIds]
        self._pos = {img_id: j for j, img_id in enumerate(self.img_ids)}
        self._n_gt = {i: 0 for i in self.img_ids}
        self._n_ignore = {i: 0 for i in self.img_ids}
        for a in self.coco_gt.dataset["annotations"]:
            key = int(a["image_id"])
            if key in self._n_gt:
                if a.get("iscrowd", 0):
                    self._n_ignore[key] += 1
                else:
                    self._n_gt[key] += 1
        self._n_dets = {i: 0 for i in self.img_ids}
        for d in self.coco_dt.dataset["annotations"]:
            self._n_dets[int(d["image_id"])] += 1

    def _slice_eval(self, ids: list[int]) -> COCOeval:
        ev = self._ev
        p0 = ev.params
        n_img, n_area = len(p0.imgIds), len(p0.areaRng)
        n_cat = len(p0.catIds) if p0.useCats else 1
        sub = copy.copy(ev)
        params = copy.deepcopy(p0)
        params.imgIds = list(ids)
        sub.params = params
        sub._paramsEval = copy.deepcopy(params)
        pos = [self._pos[i] for i in ids]
        sub.evalImgs = [ev.evalImgs[k * n_area * n_img + a * n_img + j]
                        for k in range(n_cat) for a in range(n_area) for j in pos]
        sub.eval = {}
        sub.stats = []
        with _quiet():
            sub.accumulate()
        return sub

    def stats(self, img_ids: Iterable[int], *, per_class: bool = False) -> dict[str, Any]:
        """mAP@[.5:.95], AP50, … of the images ``img_ids`` (unknown ids are an error).

        Every value is None when the slice has no non-ignore ground truth (pycocotools' -1).
        Counts: ``n_images``, ``n_gt`` (non-ignore boxes), ``n_ignore``, ``n_dets``.
        """
        ids = sorted({int(i) for i in img_ids})
        unknown = [i for i in ids if i not in self._pos]
        if unknown:
            raise ValueError(f"slice names image ids that are not in the ground truth: {unknown[:10]}")
        counts = {
            "n_images": len(ids),
            "n_gt": sum(self._n_gt[i] for i in ids),
            "n_ignore": sum(self._n_ignore[i] for i in ids),
            "n_dets": sum(self._n_dets[i] for i in ids),
        }
        if not ids:
            out: dict[str, Any] = {name: None for name in STAT_NAMES}
            if per_class:
                out["per_class"] = {}
        else:
            out = _stats_of(self._slice_eval(ids), per_class)
        out.update(counts)
        return out

    def slices(self, mapping: Mapping[str, Iterable[int]], *, per_class: bool = False) -> dict[str, dict[str, Any]]:
        """``{name: stats(ids)}`` for every slice of ``mapping``."""
        return {str(name): self.stats(ids, per_class=per_class) for name, ids in mapping.items()}


def evaluate_alone(gt: Mapping[str, Any], dets: Sequence[Mapping[str, Any]], img_ids: Iterable[int], *,
                   score_floor: float = MAP_SCORE_FLOOR, per_class: bool = False) -> dict[str, Any]:
    """Reference: a complete, separate pycocotools run (evaluate, accumulate, summarize)
    restricted to ``img_ids``. Slow for many slices; used by tests and the benchmark."""
    coco = gt_coco(gt)
    ids = sorted({int(i) for i in img_ids})
    ev = COCOeval(coco, dt_coco(coco, dets, score_floor), iouType="bbox")
    ev.params.imgIds = ids
    with _quiet():
        ev.evaluate()
        ev.accumulate()
    return _stats_of(ev, per_class)

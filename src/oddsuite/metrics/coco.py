"""COCO mAP (pycocotools) over the whole suite and over slices of its images.

``COCOeval.evaluate()`` (the per-image, per-category matching: the expensive part) runs
ONCE over all images. A slice (any set of image ids) is then scored by accumulating only
its images' share of those results and running pycocotools' own ``summarize()`` on a copy
of the evaluator whose ``params.imgIds`` is the slice. The per-image results do not
depend on the other images, so the figures equal a pycocotools run on the slice alone,
bit for bit (tests/test_metrics_coco.py checks this with float equality).

Accumulating: by default a vectorised transcription of ``COCOeval.accumulate`` (same
stable sorts, same float operations in the same order; its precision envelope, a reverse
running maximum, is exact) over the detections flattened once per category and area
range: several times faster than the original's Python loops. ``method="pycocotools"``
instead runs the original ``accumulate()`` on the slice's ``evalImgs``, laid out exactly
as ``evaluate()`` on the slice alone lays them out. Both are tested against pycocotools.
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


class _Flat:
    """The per-image results of one evaluate(), flattened per (category, area range) once, so
    that a slice's accumulate selects its detections with index masks instead of re-joining
    thousands of small per-image arrays. Order is kept: images in id order, then each
    image's detections in evaluateImg's order, exactly the order pycocotools concatenates."""

    def __init__(self, eval_imgs: Sequence[Any], n_img: int, p: Any) -> None:
        K = len(p.catIds) if p.useCats else 1
        A, T = len(p.areaRng), len(p.iouThrs)
        self.n_img = n_img
        self.parts: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        for k in range(K):
            for a in range(A):
                base = k * A * n_img + a * n_img
                present = np.zeros(n_img, dtype=bool)
                npig = np.zeros(n_img, dtype=np.int64)
                img, rank, sc, dtm, dtig = [], [], [], [], []
                for j in range(n_img):
                    e = eval_imgs[base + j]
                    if e is None:
                        continue
                    present[j] = True
                    npig[j] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
                    d = len(e["dtScores"])
                    if d:
                        img.append(np.full(d, j, dtype=np.int64))
                        rank.append(np.arange(d, dtype=np.int64))
                        sc.append(np.asarray(e["dtScores"], dtype=np.float64))
                        dtm.append(e["dtMatches"])
                        dtig.append(e["dtIgnore"])
                if img:
                    cat = (np.concatenate(img), np.concatenate(rank), np.concatenate(sc),
                           np.concatenate(dtm, axis=1), np.concatenate(dtig, axis=1))
                else:
                    cat = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                           np.zeros((T, 0)), np.zeros((T, 0), dtype=bool))
                self.parts[(k, a)] = (present, npig) + cat


def _accumulate(flat: _Flat, pos: Sequence[int], p: Any) -> dict[str, Any]:
    """``COCOeval.accumulate`` for the images at positions ``pos``, vectorised; every float is
    computed as the original computes it (see the module doc)."""
    T, R = len(p.iouThrs), len(p.recThrs)
    K = len(p.catIds) if p.useCats else 1
    A, M = len(p.areaRng), len(p.maxDets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    rec_thrs = np.asarray(p.recThrs)
    in_slice = np.zeros(flat.n_img, dtype=bool)
    in_slice[np.asarray(pos, dtype=np.int64)] = True
    for k in range(K):
        for a in range(A):
            present, npig_img, det_img, det_rank, det_score, det_m, det_ig = flat.parts[(k, a)]
            if not present[in_slice].any():
                continue  # pycocotools: no evalImgs entry for this slice
            npig = int(npig_img[in_slice].sum())
            if npig == 0:
                continue
            det_in = in_slice[det_img]
            for m, max_det in enumerate(p.maxDets):
                sel = det_in & (det_rank < max_det)
                dt_scores = det_score[sel]
                inds = np.argsort(-dt_scores, kind="mergesort")
                dt_sorted = dt_scores[inds]
                dtm = det_m[:, sel][:, inds]
                dt_ig = det_ig[:, sel][:, inds]
                tps = np.logical_and(dtm, np.logical_not(dt_ig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
                tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                # pycocotools: for i from nd-1 down to 1, pr[i-1] = max(pr[i-1], pr[i])
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1] if nd else pr
                for t in range(T):
                    ri = np.searchsorted(rc[t], rec_thrs, side="left")
                    ok = ri < nd  # pycocotools stops filling (leaves 0) at the first index past the end
                    q = np.zeros((R,))
                    ss = np.zeros((R,))
                    q[ok] = pr[t, ri[ok]]
                    ss[ok] = dt_sorted[ri[ok]]
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss
    return {"params": p, "counts": [T, R, K, A, M], "date": "", "precision": precision, "recall": recall,
            "scores": scores}


class SliceEvaluator:
    """One ``COCOeval.evaluate()`` over all images; mAP of any slice by accumulating its share.

    gt: COCO ground truth dict (images, annotations with iscrowd, categories);
    dets: COCO results ``[{"image_id", "category_id", "bbox" xywh, "score"}]``.
    """

    def __init__(self, gt: Mapping[str, Any], dets: Sequence[Mapping[str, Any]], *,
                 score_floor: float = MAP_SCORE_FLOOR, method: str = "fast") -> None:
        if method not in ("fast", "pycocotools"):
            raise ValueError(f"method must be 'fast' or 'pycocotools', got {method!r}")
        self.method = method
        self.score_floor = score_floor
        self.coco_gt = gt_coco(gt)
        self.coco_dt = dt_coco(self.coco_gt, dets, score_floor)
        ev = COCOeval(self.coco_gt, self.coco_dt, iouType="bbox")
        with _quiet():
            ev.evaluate()
        self._ev = ev
        self._flat: _Flat | None = None
        self.img_ids: list[int] = [int(i) for i in ev.params.imgIds]
        self._pos = {img_id: j for j, img_id in enumerate(self.img_ids)}
        self._n_gt = {i: 0 for i in self.img_ids}
        self._n_ignore = {i: 0 for i in self.img_ids}
        self._n_gt_cat: dict[int, dict[int, int]] = {}
        for a in self.coco_gt.dataset["annotations"]:
            key = int(a["image_id"])
            if key in self._n_gt:
                if a.get("iscrowd", 0):
                    self._n_ignore[key] += 1
                else:
                    self._n_gt[key] += 1
                    per = self._n_gt_cat.setdefault(int(a["category_id"]), {})
                    per[key] = per.get(key, 0) + 1
        self._n_dets = {i: 0 for i in self.img_ids}
        for d in self.coco_dt.dataset["annotations"]:
            self._n_dets[int(d["image_id"])] += 1

    def _slice_eval(self, ids: list[int]) -> COCOeval:
        ev = self._ev
        p0 = ev.params
        n_img, n_area = len(p0.imgIds), len(p0.areaRng)
        n_cat = len(p0.catIds) if p0.useCats else 1
        sub = copy.copy(ev)
        # shallow copies: accumulate()/summarize() only read the parameter lists (deep-copying
        # the full image-id list per slice would cost more than the slice's accumulate)
        params = copy.copy(p0)
        params.imgIds = list(ids)
        sub.params = params
        sub._paramsEval = copy.copy(params)
        pos = [self._pos[i] for i in ids]
        sub.stats = []
        if self.method == "pycocotools":
            sub.evalImgs = [ev.evalImgs[k * n_area * n_img + a * n_img + j]
                            for k in range(n_cat) for a in range(n_area) for j in pos]
            sub.eval = {}
            with _quiet():
                sub.accumulate()
        else:
            if self._flat is None:
                self._flat = _Flat(ev.evalImgs, n_img, p0)
            sub.evalImgs = []  # not needed: the fast accumulate reads the flattened results
            sub.eval = _accumulate(self._flat, pos, params)
        return sub

    def stats(self, img_ids: Iterable[int], *, per_class: bool = False) -> dict[str, Any]:
        """mAP@[.5:.95], AP50, … of the images ``img_ids`` (unknown ids are an error).

        Every value is None when the slice has no non-ignore ground truth (pycocotools' -1).
        Counts: ``n_images``, ``n_gt`` (non-ignore boxes), ``n_ignore``, ``n_dets``; with
        ``per_class``, ``per_class[name] = {"category_id", "ap", "ap50", "n_gt"}``.
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
            if per_class:
                for fig in out["per_class"].values():
                    per = self._n_gt_cat.get(fig["category_id"], {})
                    fig["n_gt"] = sum(per.get(i, 0) for i in ids)
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

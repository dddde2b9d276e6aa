"""COCO mAP over the whole suite and over slices of its images, with hotcoco as the engine.

hotcoco (MIT, a Rust port of pycocotools with its API) evaluates the images ONCE
(``COCOeval.evaluate()``: the per-image, per-category matching); a slice (any set of
image ids) is then scored by ``COCOeval.slice_by``, which re-accumulates that evaluation
over the slice's images without recomputing any IoU. All slices of one call share one
pass. Measured in ``benchmarks/evaluate.py``: faster than a hotcoco ``COCOeval`` re-run per
slice (and far faster than pycocotools), so it is the path used here.

Per-class AP and the TIDE error breakdown (metrics.md §4c) need the accumulated arrays of
one image set, which ``slice_by`` does not return: for those, one ``COCOeval`` restricted
to the set's images (``params.img_ids``) is evaluated and cached.

Every one of the 12 ``summarize()`` numbers equals pycocotools run on the slice alone,
float for float: tests/test_metrics_coco.py checks it on real suites and on randomized
suite-shaped data (crowd regions, empty slices, images without ground truth or without
detections, more than 100 detections per image, tied scores). pycocotools is the
reference there and in ``benchmarks/evaluate.py`` only.
"""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Any, Iterable, Mapping, Sequence

import hotcoco
import numpy as np

log = logging.getLogger(__name__)

#: COCO keeps detections with score >= 0.001 for mAP (metrics.md §1)
MAP_SCORE_FLOOR = 0.001

#: names of the 12 numbers ``COCOeval.summarize()`` computes for bbox, in its order
STAT_NAMES = (
    "map", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)
#: the same numbers as ``COCOeval.slice_by`` names them
_SLICE_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

#: TIDE error types (Bolya et al., ECCV 2020) as hotcoco names them, and the two oracles
TIDE_ERRORS = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
TIDE_ORACLES = ("FP", "FN")


def engine_info() -> dict[str, str]:
    """The COCO engine and its version, for run.json and metrics.json."""
    return {"name": "hotcoco", "version": str(hotcoco.__version__)}


@contextlib.contextmanager
def _quiet() -> Any:
    """``summarize()`` prints its table; library code must not print, so send it to the log."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    text = buf.getvalue().strip()
    if text:
        log.debug("hotcoco: %s", text.replace("\n", " | "))


def _value(x: float) -> float | None:
    """COCO uses -1 for 'no ground truth here': that is undefined, not a score."""
    x = float(x)
    return None if x < 0 else x


class SliceEvaluator:
    """One evaluation over all images; the COCO figures of any slice from it.

    gt: COCO ground-truth dict (images, annotations with ``iscrowd``, categories);
    dets: COCO results ``[{"image_id", "category_id", "bbox" xywh, "score"}]``; those with
    score < ``score_floor`` are left out (metrics.md §1). A detection naming an image the
    ground truth lacks is a ``ValueError``.
    """

    def __init__(self, gt: Mapping[str, Any], dets: Sequence[Mapping[str, Any]], *,
                 score_floor: float = MAP_SCORE_FLOOR) -> None:
        self.score_floor = score_floor
        self.img_ids: list[int] = [int(im["id"]) for im in gt["images"]]
        known = set(self.img_ids)
        kept = [d for d in dets if float(d["score"]) >= score_floor]
        unknown = sorted({int(d["image_id"]) for d in kept} - known)
        if unknown:
            raise ValueError(f"detections name image ids the ground truth lacks: {unknown[:10]}")
        self._cat_names = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
        self.coco_gt = hotcoco.COCO({
            "images": [{"id": int(im["id"]), "width": int(im.get("width", 0)), "height": int(im.get("height", 0))}
                       for im in gt["images"]],
            "annotations": [{"id": int(a["id"]), "image_id": int(a["image_id"]), "category_id": int(a["category_id"]),
                             "bbox": [float(v) for v in a["bbox"]], "area": float(a["area"]),
                             "iscrowd": int(a.get("iscrowd", 0))} for a in gt["annotations"]],
            "categories": [{"id": int(c["id"]), "name": str(c["name"])} for c in gt["categories"]],
        })
        self.coco_dt = self.coco_gt.load_res([
            {"image_id": int(d["image_id"]), "category_id": int(d["category_id"]),
             "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])} for d in kept])
        self._ev = self._evaluated(None)
        self._restricted: dict[tuple[int, ...], Any] = {}

        self._n_gt = dict.fromkeys(self.img_ids, 0)
        self._n_ignore = dict.fromkeys(self.img_ids, 0)
        self._n_gt_cat: dict[int, dict[int, int]] = {}
        for a in gt["annotations"]:
            key = int(a["image_id"])
            if key in self._n_gt:
                if a.get("iscrowd", 0):
                    self._n_ignore[key] += 1
                else:
                    self._n_gt[key] += 1
                    per = self._n_gt_cat.setdefault(int(a["category_id"]), {})
                    per[key] = per.get(key, 0) + 1
        self._n_dets = dict.fromkeys(self.img_ids, 0)
        for d in kept:
            self._n_dets[int(d["image_id"])] += 1

    def _evaluated(self, ids: Sequence[int] | None) -> Any:
        ev = hotcoco.COCOeval(self.coco_gt, self.coco_dt, "bbox")
        if ids is not None:
            p = ev.params
            p.img_ids = list(ids)
            ev.params = p
        with _quiet():
            ev.evaluate()
        return ev

    def _check(self, img_ids: Iterable[int]) -> list[int]:
        ids = sorted({int(i) for i in img_ids})
        unknown = [i for i in ids if i not in self._n_gt]
        if unknown:
            raise ValueError(f"slice names image ids that are not in the ground truth: {unknown[:10]}")
        return ids

    def restricted(self, img_ids: Iterable[int]) -> Any:
        """A hotcoco ``COCOeval`` evaluated on these images only (cached per image set)."""
        key = tuple(self._check(img_ids))
        if key not in self._restricted:
            self._restricted[key] = self._evaluated(key)
        return self._restricted[key]

    def _counts(self, ids: Sequence[int]) -> dict[str, int]:
        return {
            "n_images": len(ids),
            "n_gt": sum(self._n_gt[i] for i in ids),
            "n_ignore": sum(self._n_ignore[i] for i in ids),
            "n_dets": sum(self._n_dets[i] for i in ids),
        }

    def _per_class(self, ids: Sequence[int]) -> dict[str, Any]:
        """Per category: AP (mean over IoU thresholds and recall points of its precision, as
        ``summarize()`` averages) and AP50, area all, 100 detections."""
        if not ids:
            return {}
        ev = self.restricted(ids)
        with _quiet():
            ev.accumulate()
        p = ev.params
        prec = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
        a_all = list(p.area_rng_lbl).index("all")
        max_dets = list(p.max_dets)
        m100 = max_dets.index(100) if 100 in max_dets else len(max_dets) - 1
        t50 = int(np.where(np.isclose(np.asarray(p.iou_thrs), 0.5))[0][0])
        classes: dict[str, Any] = {}
        for k, cat_id in enumerate(p.cat_ids):
            s = prec[:, :, k, a_all, m100]
            s50 = prec[t50, :, k, a_all, m100]
            per = self._n_gt_cat.get(int(cat_id), {})
            classes[self._cat_names.get(int(cat_id), str(cat_id))] = {
                "category_id": int(cat_id),
                "ap": float(np.mean(s[s > -1])) if np.any(s > -1) else None,
                "ap50": float(np.mean(s50[s50 > -1])) if np.any(s50 > -1) else None,
                "n_gt": sum(per.get(i, 0) for i in ids),
            }
        return classes

    def slices(self, mapping: Mapping[str, Iterable[int]], *, per_class: bool = False) -> dict[str, dict[str, Any]]:
        """``{name: figures}`` for every slice of ``mapping``, all from one ``slice_by`` pass.

        figures: the 12 ``STAT_NAMES`` (each None when the slice has no non-ignore ground
        truth: pycocotools' -1), counts ``n_images``, ``n_gt`` (non-ignore boxes),
        ``n_ignore`` (crowd / ignore regions), ``n_dets`` (detections kept for mAP); with
        ``per_class``, ``per_class[name] = {"category_id", "ap", "ap50", "n_gt"}``.
        Unknown image ids are a ``ValueError``.
        """
        names = [str(n) for n in mapping]
        ids_of = [self._check(ids) for ids in mapping.values()]
        keys = [f"s{j}" for j in range(len(names))]  # no clash with slice_by's own "_overall"
        nonempty = {k: ids for k, ids in zip(keys, ids_of) if ids}
        got = self._ev.slice_by(nonempty) if nonempty else {}
        out: dict[str, dict[str, Any]] = {}
        for name, key, ids in zip(names, keys, ids_of):
            fig: dict[str, Any] = ({s: _value(got[key][k]) for s, k in zip(STAT_NAMES, _SLICE_KEYS)} if ids
                                   else dict.fromkeys(STAT_NAMES))
            if per_class:
                fig["per_class"] = self._per_class(ids)
            fig.update(self._counts(ids))
            out[name] = fig
        return out

    def stats(self, img_ids: Iterable[int], *, per_class: bool = False) -> dict[str, Any]:
        """The figures of one slice (see ``slices``)."""
        return self.slices({"slice": img_ids}, per_class=per_class)["slice"]

    def tide(self, img_ids: Iterable[int], *, pos_thr: float = 0.5, bg_thr: float = 0.1) -> dict[str, Any]:
        """TIDE error breakdown (Bolya et al., ECCV 2020; metrics.md §4c) of these images, from
        hotcoco's ``COCOeval.tide_errors``.

        ``delta_ap[e]``: how much AP at IoU ``pos_thr`` (mean over categories with ground
        truth) would rise if every error of type e were fixed, for the six TIDE types
        (Cls, Loc, Both, Dupe, Bkg, Miss) and the two oracles FP (no false positive at all)
        and FN (no missed ground truth); ``counts[e]``: errors of each type; ``ap_base``:
        the AP the deltas start from (TIDE's own sum; COCO's AP50 of the same images up to
        the last bit of rounding). Every value is None for a set with no non-ignore ground
        truth (TIDE's AP is undefined there).
        """
        ids = self._check(img_ids)
        counts = self._counts(ids)
        out: dict[str, Any] = {"pos_thr": pos_thr, "bg_thr": bg_thr, **counts}
        if not ids or counts["n_gt"] == 0:
            out.update({"ap_base": None, "delta_ap": dict.fromkeys(TIDE_ERRORS + TIDE_ORACLES),
                        "counts": dict.fromkeys(TIDE_ERRORS)})
            return out
        t = self.restricted(ids).tide_errors(pos_thr=pos_thr, bg_thr=bg_thr)
        out.update({"ap_base": float(t["ap_base"]),
                    "delta_ap": {e: float(t["delta_ap"][e]) for e in TIDE_ERRORS + TIDE_ORACLES},
                    "counts": {e: int(t["counts"][e]) for e in TIDE_ERRORS}})
        return out

"""``compare_models``: two detectors on one suite, their pre/post consistency (metrics.md §6)
per scene condition, the images with the most flips drawn side by side, and, where both are
(or can be exported to) ONNX, the layer-level divergence of B from A.

Results folder::

    DIR/a/, DIR/b/        each model's evaluation (evaluate_suite: predictions.json,
                          outcomes.parquet, metrics.json, run.json; resumable)
    DIR/consistency.json  every §6 figure with its n: overall, per slice, per class, top images
    DIR/consistency.csv   the same figures as one table, a row per (column, value)
    DIR/flips/NN_imageIIIIII.png   A | B with ground truth, for the images with the most flips
    DIR/layers.json, DIR/layers.png   per-tensor SQNR of B vs A along the network depth
    DIR/.state/compare_key.json    which models and suite the folder holds (resume guard)
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.errors import ModelError, OddsuiteError
from oddsuite.fileio import atomic_write_text, write_json
from oddsuite.models.base import model_info
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, IMAGE_COLUMNS

log = logging.getLogger(__name__)

FORMAT = "oddsuite-compare/1"
#: image-level columns always sliced by (when the suite has them)
BASE_IMAGE_SLICES = ("variant", "subset_size", "mode", "is_full")
#: ROI-level columns sliced by (flips only): the class, the visibility, the ROI's own ODD values
ROI_SLICES = ("category", "visible_fraction", "roi.distance_m", "roi.lateral_m", "roi.heading_deg", "roi.scale")
RECORD_COLUMNS = set(IMAGE_COLUMNS) | {"image_id"}


# --------------------------------------------------------------------------- models


def _load(model, sha256: str | None, trust_pickle: bool, threads: int | None):
    """(detector, path or None) from a path or an already loaded Detector."""
    if isinstance(model, (str, Path)):
        from oddsuite.models import load_detector

        p = Path(model)
        if threads:
            try:
                return load_detector(p, sha256=sha256, trust_pickle=trust_pickle, threads=threads), p
            except TypeError as e:  # an adapter without a threads option (the torch one)
                if "threads" not in str(e):
                    raise
        return load_detector(p, sha256=sha256, trust_pickle=trust_pickle), p
    return model, None


# --------------------------------------------------------------------------- slices


def slice_columns(scenes: pd.DataFrame | None, roi_rows_columns: Sequence[str] = ()) -> tuple[list[str], dict[str, Any]]:
    """The columns to slice by: the record columns, every ODD column of scenes.parquet with at
    least two distinct values (numeric ones with many values are binned by the slicer), then
    ROI-level columns. Returns (columns, {constant column: its one value})."""
    cols = [c for c in BASE_IMAGE_SLICES if scenes is None or c in scenes.columns]
    constant: dict[str, Any] = {}
    if scenes is not None:
        for c in scenes.columns:
            if c in RECORD_COLUMNS or c in cols:
                continue
            try:
                values = scenes[c].dropna().unique()
            except TypeError:  # unhashable cells (lists): not a condition to slice by
                continue
            if len(values) >= 2:
                cols.append(c)
            else:
                constant[c] = values[0].item() if len(values) and hasattr(values[0], "item") else \
                    (values[0] if len(values) else None)
    cols += [c for c in ROI_SLICES if c in roi_rows_columns]
    return cols, constant


def per_class(gt: Mapping[str, Any], preds_a: Sequence[Mapping[str, Any]], preds_b: Sequence[Mapping[str, Any]], *,
              iou: float, conf: float) -> dict[str, Any]:
    """Per predicted class: detection agreement (pairs of that class / sum over images of
    max(|A_c|, |B_c|)), score drift of its pairs, and the COCO AP / AP50 of A and B."""
    from oddsuite.metrics.coco import SliceEvaluator
    from oddsuite.metrics.consistency import match_sets
    from oddsuite.metrics.stats import rate

    cats = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    by_a: dict[int, list] = defaultdict(list)
    by_b: dict[int, list] = defaultdict(list)
    for d in preds_a:
        if float(d["score"]) >= conf:
            by_a[int(d["image_id"])].append(d)
    for d in preds_b:
        if float(d["score"]) >= conf:
            by_b[int(d["image_id"])].append(d)
    k = defaultdict(int)
    n = defaultdict(int)
    drift = defaultdict(float)
    for im in gt["images"]:
        da, db = by_a.get(int(im["id"]), []), by_b.get(int(im["id"]), [])
        ca = np.array([d["category_id"] for d in da], dtype=np.int64)
        cb = np.array([d["category_id"] for d in db], dtype=np.int64)
        pairs = match_sets(np.array([d["bbox"] for d in da], dtype=np.float64).reshape(-1, 4), ca,
                           np.array([d["bbox"] for d in db], dtype=np.float64).reshape(-1, 4), cb, iou=iou)
        for c in set(ca.tolist()) | set(cb.tolist()):
            n[c] += int(max((ca == c).sum(), (cb == c).sum()))
        for i, j, _ in pairs:
            c = int(ca[i])
            k[c] += 1
            drift[c] += float(db[j]["score"]) - float(da[i]["score"])
    sa = SliceEvaluator(gt, preds_a).stats([int(im["id"]) for im in gt["images"]], per_class=True)["per_class"]
    sb = SliceEvaluator(gt, preds_b).stats([int(im["id"]) for im in gt["images"]], per_class=True)["per_class"]
    out: dict[str, Any] = {}
    for cid, name in cats.items():
        a, b = sa.get(name, {}), sb.get(name, {})

        def delta(key: str) -> float | None:
            return (b[key] - a[key]) if (a.get(key) is not None and b.get(key) is not None) else None

        out[name] = {
            "category_id": cid,
            "agreement": rate(k[cid], n[cid]),
            "score_drift": {"value": (drift[cid] / k[cid]) if k[cid] else None, "n": int(k[cid])},
            "ap": {"a": a.get("ap"), "b": b.get("ap"), "delta": delta("ap"),
                   "ap50_a": a.get("ap50"), "ap50_b": b.get("ap50"), "ap50_delta": delta("ap50")},
        }
    return out


# --------------------------------------------------------------------------- table


def _ci(fig: Mapping[str, Any] | None, i: int) -> float | None:
    ci = (fig or {}).get("ci95")
    return ci[i] if ci else None


def _row(column: str, value: str, level: str, rec: Mapping[str, Any]) -> dict[str, Any]:
    ag = rec.get("agreement")
    fl = rec.get("flips") or {}
    dr = rec.get("score_drift")
    mp = rec.get("map") or {}
    a, b, dl = mp.get("a") or {}, mp.get("b") or {}, mp.get("delta") or {}
    return {
        "column": column, "value": value, "level": level, "n_images": rec.get("n_images"),
        "agreement": (ag or {}).get("value"), "agreement_k": (ag or {}).get("k"), "agreement_n": (ag or {}).get("n"),
        "agreement_lo": _ci(ag, 0), "agreement_hi": _ci(ag, 1),
        "hit_to_not": (fl.get("hit_to_not") or {}).get("value"), "hit_to_not_k": (fl.get("hit_to_not") or {}).get("k"),
        "not_to_hit": (fl.get("not_to_hit") or {}).get("value"), "not_to_hit_k": (fl.get("not_to_hit") or {}).get("k"),
        "n_rois": fl.get("n"),
        "score_drift": (dr or {}).get("value"), "score_drift_n": (dr or {}).get("n"),
        "map_a": a.get("map"), "map_b": b.get("map"), "map_delta": dl.get("map"),
        "ap50_a": a.get("ap50"), "ap50_b": b.get("ap50"), "ap50_delta": dl.get("ap50"),
    }


def consistency_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (column, value): the overall row, every slice, and per class (flips by the
    ROI's true class; agreement, drift and AP by the predicted class)."""
    rows = [_row("overall", "all", "image", report["overall"])]
    for col, groups in report["slices"].items():
        for val, rec in groups.items():
            level = "image" if "n_images" in rec else "roi"
            r = _row(col, val, level, rec)
            if col == "category" and val in report.get("per_class", {}):
                pc = report["per_class"][val]
                r.update({"level": "class", "agreement": pc["agreement"]["value"], "agreement_k": pc["agreement"]["k"],
                          "agreement_n": pc["agreement"]["n"], "agreement_lo": _ci(pc["agreement"], 0),
                          "agreement_hi": _ci(pc["agreement"], 1), "score_drift": pc["score_drift"]["value"],
                          "score_drift_n": pc["score_drift"]["n"], "map_a": pc["ap"]["a"], "map_b": pc["ap"]["b"],
                          "map_delta": pc["ap"]["delta"], "ap50_a": pc["ap"]["ap50_a"], "ap50_b": pc["ap"]["ap50_b"],
                          "ap50_delta": pc["ap"]["ap50_delta"]})
            rows.append(r)
    table = pd.DataFrame(rows)
    for c in ("n_images", "agreement_k", "agreement_n", "hit_to_not_k", "not_to_hit_k", "n_rois", "score_drift_n"):
        table[c] = table[c].astype("Int64")
    return table


# --------------------------------------------------------------------------- flips


def draw_flips(suite, top: Sequence[Mapping[str, Any]], preds_a, preds_b, out_dir: Path, *, iou: float, conf: float,
               name_a: str, name_b: str) -> list[str]:
    """Draw each of ``top`` (consistency top_images) as DIR/flips/NN_imageIIIIII.png; returns the paths (relative)."""
    from oddsuite.studies.compare_draw import draw_pair
    from oddsuite.metrics.consistency import consistency_tables

    if not top:
        return []
    ids = {int(t["image_id"]) for t in top}
    gt = suite.gt
    sub = {**gt, "images": [im for im in gt["images"] if int(im["id"]) in ids],
           "annotations": [a for a in gt["annotations"] if int(a["image_id"]) in ids]}
    pa = [d for d in preds_a if int(d["image_id"]) in ids]
    pb = [d for d in preds_b if int(d["image_id"]) in ids]
    roi_categories = {(int(s), int(r)): int(c) for s, r, c in
                      suite.rois[["scene_id", "roi_id", "category_id"]].itertuples(index=False)}
    _, rois = consistency_tables(sub, pa, pb, iou=iou, conf=conf, roi_categories=roi_categories)
    ann = {(int(a["image_id"]), int(a["roi_id"])): a for a in sub["annotations"]}
    cat_names = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    images = {int(im["id"]): im for im in sub["images"]}
    folder = out_dir / "flips"
    for old in folder.glob("*.png") if folder.is_dir() else []:
        old.unlink()
    paths = []
    for rank, t in enumerate(top, start=1):
        iid = int(t["image_id"])
        rr = []
        for r in rois.loc[rois["image_id"] == iid].itertuples(index=False):
            a = ann.get((iid, int(r.roi_id)))
            rr.append({"roi_id": int(r.roi_id), "bbox": a["bbox"] if a else None, "ignore": bool(r.ignore),
                       "outcome_a": r.outcome_a, "outcome_b": r.outcome_b,
                       "flipped": bool(r.hit_to_not or r.not_to_hit)})
        da = [d for d in pa if int(d["image_id"]) == iid and float(d["score"]) >= conf]
        db = [d for d in pb if int(d["image_id"]) == iid and float(d["score"]) >= conf]
        rel = f"flips/{rank:02d}_image{iid:06d}.png"
        caption = (f"image {iid} {images[iid]['file_name']}: {t['hit_to_not']} hit->not, {t['not_to_hit']} not->hit "
                   f"(iou {iou}, conf {conf})")
        draw_pair(suite.image_path(images[iid]), out_dir / rel, rois=rr, dets_a=da, dets_b=db, cat_names=cat_names,
                  name_a=name_a, name_b=name_b, caption=caption)
        paths.append(rel)
    return paths


# --------------------------------------------------------------------------- layers


def _layer_images(suite, n: int, seed: int) -> list[dict[str, Any]]:
    images = suite.gt["images"]
    pool = [im for im in images if im.get("is_full")] or list(images)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), len(pool)]))
    pick = range(len(pool)) if n >= len(pool) else sorted(rng.choice(len(pool), size=n, replace=False).tolist())
    return [pool[i] for i in pick]


def compare_layers(suite, det_a, det_b, out: Path, *, n_images: int = 4, seed: int = 0,
                   threads: int | None = None) -> dict[str, Any]:
    """layers.json + layers.png in ``out``; returns a summary for consistency.json (or why it was skipped)."""
    from oddsuite.models.onnx_rt import onnx_file_of
    from oddsuite.quant.debug import layer_divergence, plot_layers
    from oddsuite.suite import read_image

    work = out / ".state" / "onnx"
    work.mkdir(parents=True, exist_ok=True)
    try:
        fa = onnx_file_of(det_a, work / "a-fp32.onnx")
        fb = onnx_file_of(det_b, work / "b-fp32.onnx")
    except OddsuiteError as e:
        return {"skipped": f"cannot export to ONNX: {e}"}
    if fa is None or fb is None:
        return {"skipped": "layer comparison needs both models as ONNX files or exportable (torch-backed) detectors"}
    fa, fb = fa[0], fb[0]
    picked = _layer_images(suite, n_images, seed)
    try:
        res = layer_divergence(fa, fb, [read_image(suite.image_path(im)) for im in picked],
                               image_names=[str(im["file_name"]) for im in picked], threads=threads)
    except (ModelError, ValueError) as e:
        return {"skipped": str(e)}
    res["model_a"]["name"], res["model_b"]["name"] = str(det_a.name), str(det_b.name)
    write_json(out / "layers.json", res, sort_keys=False, nan="null")
    plot_layers(res, out / "layers.png", title=f"SQNR of B ({det_b.name}) vs A ({det_a.name}) along the network, "
                                              f"{res['n_images']} images")
    return {"json": "layers.json", "plot": "layers.png", "n_images": res["n_images"], "n_tensors": res["n_tensors"],
            "n_quantized": res["n_quantized"], "n_identical": res["n_identical"],
            "origins": res["origins"][:5], "largest_drops": res["largest_drops"][:5],
            "noisiest_quantized": res["noisiest_quantized"][:5],
            "output_sqnr_db": res["modules"][-1]["out_sqnr_db"] if res["modules"] else None}


# --------------------------------------------------------------------------- the whole comparison


def _guard(out: Path, key: dict[str, Any]) -> None:
    """Refuse a folder that holds another comparison: the evaluation folders resume by
    detector name only, so two different files of the same name would otherwise mix."""
    path = out / ".state" / "compare_key.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != key:
            diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise OddsuiteError(f"{out}: holds a comparison of other models or another suite (differs in {diff}); "
                                f"use another --out folder or delete it")
    write_json(path, key, sort_keys=False, nan="null")


def _evaluate_both(suite_dir, suite, dets: dict[str, Any], out: Path, *, iou: float, conf: float, batch: int,
                   progress: bool) -> tuple[dict[str, Any], list, list]:
    """Each model's evaluation under ``out/a`` and ``out/b`` (resumable); their metrics and predictions."""
    from oddsuite.evaluate import evaluate_suite, load_predictions

    runs = {}
    for tag, det in dets.items():
        log.info("evaluating %s (%s)", tag.upper(), det.name)
        runs[tag] = evaluate_suite(suite_dir, det, out / tag, iou=iou, conf=conf, batch=batch, progress=progress)
    return (runs, load_predictions(out / "a" / "predictions.json", suite),
            load_predictions(out / "b" / "predictions.json", suite))


def _model_entry(tag: str, det, path: Path | None, metrics: Mapping[str, Any]) -> dict[str, Any]:
    full = metrics["map"]["full"] if isinstance(metrics.get("map"), dict) else None
    return {"name": str(det.name), "path": str(path) if path is not None else None, "sha256": model_info(det).sha256,
            "results": tag, "full_scene_map": full}


NOTES = {
    "agreement": "matched / max(|A|, |B|) per image, pooled (k matched pairs, n = sum of max); detections "
                 "with score >= conf, same class, IoU >= iou, Hungarian on IoU",
    "flips": "per ROI row of every image: hit in A and not in B (hit_to_not), and the reverse",
    "score_drift": "mean of score_B - score_A over matched pairs (n pairs)",
    "map": "COCO mAP@[.5:.95] / AP50 / AP75 of A and B on the slice's images; delta = B - A",
    "slices": "image-level columns carry every figure; ROI-level columns (category, visible_fraction, roi.*) "
              "carry flips only; numeric columns with many values are cut into quantile bins",
    "per_class": "by the detection's (predicted) class: agreement, score drift, AP of A and B; flips by "
                 "the ROI's true class are in slices.category",
}


def compare_models(suite_dir: str | Path, model_a, model_b, out_dir: str | Path, *, iou: float = DEFAULT_IOU,
                   conf: float = DEFAULT_CONF, top: int = 12, batch: int = 8, layer_images: int = 4, seed: int = 0,
                   sha256_a: str | None = None, sha256_b: str | None = None, trust_pickle: bool = False,
                   threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Compare detectors A (reference, e.g. fp32) and B (e.g. int8) on a suite; write the
    results folder described in the module doc and return the consistency.json dict.

    model_a / model_b: model paths (anything ``load_detector`` accepts) or Detector objects.
    layer_images: images for the layer-level SQNR (0: skip it).
    """
    from oddsuite.suite import load_suite
    from oddsuite.metrics.consistency import consistency

    out = Path(out_dir)
    suite = load_suite(suite_dir)
    det_a, path_a = _load(model_a, sha256_a, trust_pickle, threads)
    det_b, path_b = _load(model_b, sha256_b, trust_pickle, threads)
    out.mkdir(parents=True, exist_ok=True)
    _guard(out, {"a": {"name": str(det_a.name), "sha256": model_info(det_a).sha256},
                 "b": {"name": str(det_b.name), "sha256": model_info(det_b).sha256},
                 "suite_manifest_sha256": suite.manifest_sha256, "suite_images": len(suite.gt["images"])})
    runs, preds_a, preds_b = _evaluate_both(suite_dir, suite, {"a": det_a, "b": det_b}, out, iou=iou, conf=conf,
                                            batch=batch, progress=progress)

    roi_cols = ["category", "visible_fraction"] + [f"roi.{c}" for c in suite.rois.columns]
    by, constant = slice_columns(suite.scenes, roi_cols)
    report = consistency(suite.gt, preds_a, preds_b, iou=iou, conf=conf, scenes=suite.scenes, rois=suite.rois,
                         by=by, top=top)
    report["per_class"] = per_class(suite.gt, preds_a, preds_b, iou=iou, conf=conf)
    pngs = draw_flips(suite, report["top_images"], preds_a, preds_b, out, iou=iou, conf=conf,
                      name_a=str(det_a.name), name_b=str(det_b.name))
    for t, p in zip(report["top_images"], pngs):
        t["png"] = p
    layers = (compare_layers(suite, det_a, det_b, out, n_images=layer_images, seed=seed, threads=threads)
              if layer_images > 0 else {"skipped": "layer comparison not asked for (layer_images = 0)"})
    result = {
        "format": FORMAT,
        "suite": {"path": str(Path(suite_dir).resolve()), "manifest_sha256": suite.manifest_sha256,
                  "n_images": len(suite.gt["images"])},
        "models": {"a": _model_entry("a", det_a, path_a, runs["a"]), "b": _model_entry("b", det_b, path_b, runs["b"])},
        "settings": {**report["settings"], "top": top, "slices_by": by, "constant_columns": constant,
                     "layer_images": layer_images, "seed": seed},
        "overall": report["overall"],
        "slices": report["slices"],
        "per_class": report["per_class"],
        "top_images": report["top_images"],
        "layers": layers,
        "notes": dict(NOTES),
    }
    write_json(out / "consistency.json", result, sort_keys=False, nan="null")
    atomic_write_text(out / "consistency.csv", consistency_table(result).to_csv(index=False))
    return result

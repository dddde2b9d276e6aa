"""Lockstep: one detector run twice, or on two backends, compared image by image (seed ``000``).

Safety practice compares two executions of the same program (lockstep, section II.B.3.a and
e); for a detector the question is whether two runs or two platforms that "agree on average"
make the same predictions — and the same false positives (Fig. 2: two trainings with similar
accuracy differ in *which* false positives they make). Runs A and B are each a full,
resumable evaluation (``A/`` and ``B/``: predictions.json, metrics.json, ...); then, per image:

- **bit-identical**: the same detections (suite category, box, score) in the same order,
  compared as exact floats (predictions.json keeps the detector's float32 values exactly);
- otherwise the **first divergence**: the first position in the detection lists where
  category, box or score differ, with what differs there, and the **size** of the divergence
  over the whole image: detections matched A↔B (same class, Hungarian on IoU ≥ ``iou``,
  :func:`oddsuite.metrics.consistency.match_sets`) give the largest score and box-coordinate
  deltas; unmatched ones are counted;
- the **false-positive sets**: each run's detections with score ≥ ``conf`` that match no
  ground truth (:func:`oddsuite.metrics.matching.outcome_tables`, status ``fp``); an FP of A
  and an FP of B are the same when they match (same image and class, IoU ≥ ``iou``). Reported:
  both counts, the shared count, the Jaccard overlap, and the overlap of the image sets with
  an FP;
- **changed at the operating point**: whether the detections with score ≥ ``conf`` of the
  image still match one to one (same class, IoU ≥ ``iou``): tiny float differences leave
  them, a real divergence does not;
- **where divergences cluster**: the divergence rate (Wilson 95% interval) per value of each
  image condition of ``scenes.parquet`` (variant, masking mode, subset size, full scene or
  not, weather, illumination, object counts, ...), conditions whose interval lies above the
  overall rate flagged; the same for the images changed at the operating point.

Writes ``lockstep.json`` (all of the above), ``images.csv`` (one row per image) and
``lockstep.png`` (score and box deltas of the diverging images).
"""
from __future__ import annotations

import io
import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.metrics.consistency import match_sets
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, image_table, outcome_tables
from oddsuite.metrics.stats import json_clean, rate

log = logging.getLogger(__name__)

FORMAT = "oddsuite-lockstep/1"
#: scene columns with more distinct values than this are binned into quartiles
_MAX_LEVELS = 8


# --------------------------------------------------------------------------- per image


def _by_image(preds: Sequence[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    out: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for p in preds:
        out[int(p["image_id"])].append(p)
    return out


def _det_record(d: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"category_id": int(d["category_id"]), "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])}


def first_divergence(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The first position where two detection lists differ, with what differs there (None: identical)."""
    for i in range(max(len(a), len(b))):
        da = a[i] if i < len(a) else None
        db = b[i] if i < len(b) else None
        if da is None or db is None:
            return {"index": i, "what": ["count"], "a": _det_record(da), "b": _det_record(db)}
        what = [k for k, same in (("category", da["category_id"] == db["category_id"]),
                                  ("box", list(da["bbox"]) == list(db["bbox"])),
                                  ("score", da["score"] == db["score"])) if not same]
        if what:
            out = {"index": i, "what": what, "a": _det_record(da), "b": _det_record(db),
                   "score_delta": float(db["score"]) - float(da["score"]),
                   "box_delta_px": float(np.max(np.abs(np.subtract(db["bbox"], da["bbox"]))))}
            return out
    return None


def _pairs(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], iou: float) -> list:
    box = lambda ds: np.array([d["bbox"] for d in ds], dtype=np.float64).reshape(-1, 4)  # noqa: E731
    cats = lambda ds: np.array([d["category_id"] for d in ds], dtype=np.int64)  # noqa: E731
    return match_sets(box(a), cats(a), box(b), cats(b), iou=iou)


def compare_image(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], *,
                  iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF) -> dict[str, Any]:
    """One image's A and B detections: identical or not, the first divergence and its size, and
    whether the detections at the operating point (score >= ``conf``) changed: not every one of
    them matched one to one (same class, IoU >= ``iou``) by one of the other run."""
    first = first_divergence(a, b)
    a_op, b_op = [d for d in a if d["score"] >= conf], [d for d in b if d["score"] >= conf]
    rec: dict[str, Any] = {"n_a": len(a), "n_b": len(b), "identical": first is None, "first_divergence": first,
                           "matched": 0, "unmatched_a": 0, "unmatched_b": 0, "max_score_delta": 0.0,
                           "max_box_delta_px": 0.0, "n_a_conf": len(a_op), "n_b_conf": len(b_op),
                           "changed_at_conf": False}
    if first is None:
        rec["matched"] = len(a)
        return rec
    n_op = len(_pairs(a_op, b_op, iou))
    rec["changed_at_conf"] = not (n_op == len(a_op) == len(b_op))
    pairs = _pairs(a, b, iou)
    rec["matched"] = len(pairs)
    rec["unmatched_a"], rec["unmatched_b"] = len(a) - len(pairs), len(b) - len(pairs)
    if pairs:
        rec["max_score_delta"] = max(abs(float(b[j]["score"]) - float(a[i]["score"])) for i, j, _ in pairs)
        rec["max_box_delta_px"] = max(float(np.max(np.abs(np.subtract(b[j]["bbox"], a[i]["bbox"]))))
                                      for i, j, _ in pairs)
    return rec


# --------------------------------------------------------------------------- false positives


def false_positives(gt: Mapping[str, Any], preds: Sequence[Mapping[str, Any]], *, iou: float = DEFAULT_IOU,
                    conf: float = DEFAULT_CONF) -> pd.DataFrame:
    """The detections with score >= ``conf`` matching no ground truth (status ``fp``)."""
    _, dets = outcome_tables(gt, preds, iou=iou, conf=conf)
    return dets[dets["status"] == "fp"].reset_index(drop=True)


def fp_overlap(gt: Mapping[str, Any], preds_a: Sequence[Mapping[str, Any]], preds_b: Sequence[Mapping[str, Any]],
               *, iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF) -> dict[str, Any]:
    """How far the false-positive sets of A and B are the same false positives (see the module doc).

    ``jaccard`` = shared / (|A| + |B| - shared), None when neither run has a false positive."""
    fa, fb = false_positives(gt, preds_a, iou=iou, conf=conf), false_positives(gt, preds_b, iou=iou, conf=conf)
    shared = 0
    per_image: dict[int, int] = {}
    for image_id in sorted(set(fa["image_id"]) & set(fb["image_id"])):
        ga, gb = fa[fa["image_id"] == image_id], fb[fb["image_id"] == image_id]
        n = len(match_sets(ga[["x", "y", "w", "h"]].to_numpy(), ga["category_id"].to_numpy(),
                           gb[["x", "y", "w", "h"]].to_numpy(), gb["category_id"].to_numpy(), iou=iou))
        shared += n
        per_image[int(image_id)] = n
    n_a, n_b = len(fa), len(fb)
    union = n_a + n_b - shared
    imgs_a, imgs_b = set(fa["image_id"].tolist()), set(fb["image_id"].tolist())
    img_union = imgs_a | imgs_b
    return {"n_a": n_a, "n_b": n_b, "shared": shared, "only_a": n_a - shared, "only_b": n_b - shared,
            "jaccard": shared / union if union else None,
            "images_with_fp_a": len(imgs_a), "images_with_fp_b": len(imgs_b),
            "images_jaccard": len(imgs_a & imgs_b) / len(img_union) if img_union else None,
            "iou": iou, "conf": conf}


# --------------------------------------------------------------------------- where divergences cluster


#: image columns that identify rather than describe an image
_NOT_CONDITIONS = ("image_id", "file_name", "scene_id", "subset", "n_rois")


def _condition_columns(images: pd.DataFrame, scenes: pd.DataFrame | None) -> pd.DataFrame:
    """One row per image: its conditions (variant, mode, subset size, full or not, and every
    column of ``scenes.parquet`` that varies), numeric columns with many values in quartile bins."""
    src = scenes if scenes is not None and "image_id" in getattr(scenes, "columns", []) else images
    cond = pd.DataFrame({"image_id": src["image_id"].to_numpy()})
    for col in src.columns:
        if col in _NOT_CONDITIONS:
            continue
        s = src[col].reset_index(drop=True)
        if s.nunique(dropna=True) <= 1:
            continue
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and s.nunique() > _MAX_LEVELS:
            try:
                s = pd.qcut(s, 4, duplicates="drop").astype(str)
            except ValueError:
                continue
        elif s.nunique() > _MAX_LEVELS:
            continue
        cond[col] = s.to_numpy()
    return cond


def divergence_clusters(per_image: pd.DataFrame, conditions: pd.DataFrame,
                        column: str = "diverged") -> list[dict[str, Any]]:
    """Rate of ``column`` (a bool per image: ``diverged`` or ``changed_at_conf``) per value of
    every condition column, highest first; ``above_overall`` when the value's 95% interval lies
    above the overall rate."""
    df = conditions.merge(per_image[["image_id", column]].rename(columns={column: "_hit"}), on="image_id")
    overall = float(df["_hit"].mean()) if len(df) else 0.0
    out = []
    for col in [c for c in df.columns if c not in ("image_id", "scene_id", "_hit")]:
        for value, g in df.groupby(col, dropna=True, sort=True):
            r = rate(int(g["_hit"].sum()), int(len(g)))
            ci = r.get("ci95")
            out.append({"condition": f"{col} = {value}", "column": col, "value": str(value), "rate": r,
                        "above_overall": bool(ci is not None and ci[0] > overall)})
    out.sort(key=lambda c: (-(c["rate"]["value"] or 0.0), c["condition"]))
    return out


# --------------------------------------------------------------------------- the study


def lockstep(suite_dir: str | Path, detector_a: Any, detector_b: Any, out_dir: str | Path, *,
             iou: float = DEFAULT_IOU, conf: float = DEFAULT_CONF, batch: int = 8, progress: bool = False,
             labels: Sequence[str] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate ``detector_a`` and ``detector_b`` on the suite (each resumable under ``OUT/A`` and
    ``OUT/B``; the same detector object may be given twice) and compare them image by image;
    writes ``lockstep.json``, ``images.csv`` and ``lockstep.png`` (see the module doc) and returns
    the JSON dict. ``extra`` (machine, threads, ...) is recorded as given."""
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.suite import load_suite

    out = Path(out_dir)
    metrics = {}
    for key, det in (("A", detector_a), ("B", detector_b)):
        metrics[key] = evaluate_suite(suite_dir, det, out / key, iou=iou, conf=conf, batch=batch, progress=progress)
    suite = load_suite(suite_dir)
    preds = {k: json.loads((out / k / "predictions.json").read_text(encoding="utf-8")) for k in ("A", "B")}
    per_image = _per_image_table(suite.gt, preds["A"], preds["B"], iou, conf)
    conditions = _condition_columns(image_table(suite.gt), suite.scenes)
    result = _summary(per_image, labels or [str(detector_a.name), str(detector_b.name)], metrics)
    result.update({
        "format": FORMAT, "suite": str(Path(suite_dir).resolve()), "settings": {"iou": iou, "conf": conf,
                                                                               "batch": batch},
        "false_positives": fp_overlap(suite.gt, preds["A"], preds["B"], iou=iou, conf=conf),
        "clusters": divergence_clusters(per_image, conditions)[:40],
        "clusters_at_conf": divergence_clusters(per_image, conditions, "changed_at_conf")[:40],
        "first_divergences": _first_divergences(per_image, suite.gt)[:20],
        "extra": dict(extra or {}),
    })
    _write(out, result, per_image)
    return result


def _per_image_table(gt: Mapping[str, Any], preds_a, preds_b, iou: float, conf: float) -> pd.DataFrame:
    a_by, b_by = _by_image(preds_a), _by_image(preds_b)
    rows = []
    for im in gt["images"]:
        iid = int(im["id"])
        rec = compare_image(a_by.get(iid, []), b_by.get(iid, []), iou=iou, conf=conf)
        first = rec.pop("first_divergence")
        rows.append({"image_id": iid, "file_name": str(im["file_name"]), **rec, "diverged": not rec["identical"],
                     "first_index": None if first is None else first["index"],
                     "first_what": None if first is None else "+".join(first["what"]),
                     "first": first})
    return pd.DataFrame(rows)


def _summary(per_image: pd.DataFrame, labels: Sequence[str], metrics: Mapping[str, Any]) -> dict[str, Any]:
    n = len(per_image)
    div = per_image[per_image["diverged"]]

    def full_map(m):
        return ((m.get("map") or {}).get("full") or {}).get("map")

    return {
        "models": {"A": labels[0], "B": labels[1]},
        "n_images": n,
        "identical_images": int(n - len(div)),
        "bit_identical": bool(len(div) == 0),
        "diverged": rate(int(len(div)), n),
        "changed_at_conf": rate(int(per_image["changed_at_conf"].sum()), n),
        "map": {"A": full_map(metrics["A"]), "B": full_map(metrics["B"])},
        "size": {"max_score_delta": float(div["max_score_delta"].max()) if len(div) else 0.0,
                 "median_score_delta": float(div["max_score_delta"].median()) if len(div) else 0.0,
                 "max_box_delta_px": float(div["max_box_delta_px"].max()) if len(div) else 0.0,
                 "median_box_delta_px": float(div["max_box_delta_px"].median()) if len(div) else 0.0,
                 "count_changed_images": int((div["n_a"] != div["n_b"]).sum()) if len(div) else 0,
                 "unmatched_a": int(div["unmatched_a"].sum()) if len(div) else 0,
                 "unmatched_b": int(div["unmatched_b"].sum()) if len(div) else 0},
        "first_what": {str(k): int(v) for k, v in div["first_what"].value_counts().sort_index().items()},
    }


def _first_divergences(per_image: pd.DataFrame, gt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The diverging images with the largest score delta first, with their first divergence."""
    div = per_image[per_image["diverged"]].sort_values(["max_score_delta", "image_id"], ascending=[False, True])
    return [{"image_id": int(r.image_id), "file_name": r.file_name, "max_score_delta": float(r.max_score_delta),
             "max_box_delta_px": float(r.max_box_delta_px), "first": r.first} for r in div.itertuples()]


def _write(out: Path, result: dict[str, Any], per_image: pd.DataFrame) -> None:
    from oddsuite.fileio import atomic_write_text, write_json
    from oddsuite.studies.mlp_experiment import save_png

    write_json(out / "lockstep.json", json_clean(result), sort_keys=False)
    buf = io.StringIO()
    per_image.drop(columns=["first"]).to_csv(buf, index=False)
    atomic_write_text(out / "images.csv", buf.getvalue())
    save_png(_plot(per_image, result), out / "lockstep.png")


def _plot(per_image: pd.DataFrame, result: Mapping[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    div = per_image[per_image["diverged"]]
    for ax, col, label in ((axes[0], "max_score_delta", "largest |score delta| per diverging image"),
                           (axes[1], "max_box_delta_px", "largest |box delta| per diverging image (px)")):
        vals = div[col].to_numpy(dtype=float)
        vals = vals[vals > 0]
        if len(vals):
            lo = max(vals.min(), 1e-12)
            bins = np.logspace(math.log10(lo), math.log10(max(vals.max(), lo * 10)), 20)
            ax.hist(vals, bins=bins, color="#4a7ab5")
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no diverging matched detection", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("images")
    m = result["models"]
    fig.suptitle(f"lockstep {m['A']} | {m['B']}: {result['identical_images']} of {result['n_images']} images "
                 "bit-identical", fontsize=9)
    fig.tight_layout()
    return fig

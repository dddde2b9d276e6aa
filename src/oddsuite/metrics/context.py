"""Context scores over the outcome table: context accuracy (§3), context-induced false
positives (§4) and ROI influence (§5) of metrics.md.

An image is identified by (scene_id, variant, mode, subset); "the same e, m" below means
same scene_id, variant and mode. Units and counts:

- context accuracy: the unit is one ROI under one variant and mode, (scene_id, roi_id,
  variant, mode). For each unit that is a ``hit`` in its isolated image (subset = {o}),
  the fraction of its context images (|S| >= 2, o in S) where it is still a hit; the
  figure is the mean of those fractions over units ("per ROI, then averaged"). A context
  image where o is an ignore region or has no visible pixel is left out and counted as
  *occluded in context* (``n_occluded_in_context``): the context hides the object there,
  it does not break its recognition. ``n`` is the number of units averaged, ``n_pairs``
  the number of (ROI, context) pairs scored; the 95% interval is a seeded bootstrap over
  the units (``stats.bootstrap_mean``).
- context-induced false positives: the background false positives (``matching``: an
  ``fp`` whose IoU with every annotated box of the image, ground truth or ignore region,
  any class, is below ``iou``; a wrong-class box on a ROI is a mislabel, counted in the
  outcomes, not here) of images with |S| >= 2 that match (same class, IoU >= ``iou``) no
  detection of the single-ROI images of the same scene, variant and mode. Detections of
  both count from the operating threshold ``conf``. An image whose scene, variant and
  mode have no single-ROI image has nothing to compare with: it is counted in
  ``n_images_unscored``, not scored as 0.
- ROI influence: pairs (S, S ∪ {r}) inside one (scene, variant, mode), pooled over
  variants and modes per (scene, target o, other r).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from oddsuite.metrics.matching import DEFAULT_IOU, iou_xywh
from oddsuite.metrics.stats import bootstrap_mean, mean_or_none, rate

GROUP = ["scene_id", "variant", "mode"]
UNIT = ["scene_id", "roi_id", "variant", "mode"]


def context_pairs(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The (ROI, context) pairs of §3: rows of ``outcomes`` with |S| >= 2 whose ROI is a hit
    in its isolated image of the same scene, variant and mode; adds bool columns ``hit``
    and ``occluded`` (the ROI is an ignore region or not visible in the context image:
    such a pair is left out of the accuracy and counted as occluded in context)."""
    iso = outcomes.loc[outcomes["subset_size"] == 1, UNIT + ["outcome"]]
    dup = iso.duplicated(UNIT)
    if dup.any():
        first = iso.loc[dup, UNIT].iloc[0].to_dict()
        raise ValueError(f"more than one isolated image for ROI {first}")
    iso_hits = iso.loc[iso["outcome"] == "hit", UNIT]
    ctx = outcomes.loc[outcomes["subset_size"] >= 2]
    pairs = ctx.merge(iso_hits, on=UNIT, how="inner")
    occluded = pairs["ignore"].astype(bool) | pairs["not_visible"].astype(bool)
    return pairs.assign(hit=(pairs["outcome"] == "hit") & ~occluded, occluded=occluded)


def _accuracy_of(pairs: pd.DataFrame) -> dict[str, Any]:
    scored = pairs.loc[~pairs["occluded"]]
    per_unit = scored.groupby(UNIT, sort=True)["hit"].mean().to_numpy() if len(scored) else []
    return bootstrap_mean(per_unit, n_pairs=len(scored), n_occluded_in_context=int(pairs["occluded"].sum()))


def context_accuracy(outcomes: pd.DataFrame, by: str | None = None) -> dict[str, Any]:
    """Context accuracy overall (``by=None``) or ``{value of column by: figure}``.

    A figure: ``{"value", "n" (ROI units), "n_pairs" (pairs scored), "n_occluded_in_context"
    (pairs left out: the ROI hidden there), "ci95" (bootstrap over units)}``; value None
    when n = 0. ``by`` is any column of the outcome table (e.g. category, variant,
    subset_size).
    """
    pairs = context_pairs(outcomes)
    if by is None:
        return _accuracy_of(pairs)
    if by not in outcomes.columns:
        raise KeyError(f"context_accuracy: no column {by!r} in the outcome table")
    return {str(k): _accuracy_of(g) for k, g in pairs.groupby(by, sort=True, dropna=False)}


def context_false_positives(detections: pd.DataFrame, images: pd.DataFrame, *,
                            iou: float = DEFAULT_IOU) -> tuple[dict[str, Any], pd.DataFrame]:
    """Context-induced false positives (§4; see the module doc).

    detections: the detection table of ``matching.outcome_tables`` (statuses other than
    ``below_conf`` are the detections with score >= conf; ``background`` marks the false
    positives). images: ``matching.image_table``. Returns (summary, per-image table with
    columns image_id, scene_id, variant, mode, subset_size, n_fp (background false
    positives of a multi-ROI image), n_context_fp, scored).
    """
    kept = detections.loc[detections["status"] != "below_conf"]
    img = images.set_index("image_id")
    kept = kept.join(img[GROUP + ["subset_size"]], on="image_id")

    single = kept.loc[kept["subset_size"] == 1]
    single_by_group: dict[tuple[Any, ...], pd.DataFrame] = {
        k: g for k, g in single.groupby(GROUP, sort=False)}
    groups_with_single = set(map(tuple, images.loc[images["subset_size"] == 1, GROUP].itertuples(index=False)))
    fps_by_image = {k: g for k, g in kept.loc[kept["background"].astype(bool)].groupby("image_id", sort=False)}

    rows = []
    multi = images.loc[images["subset_size"] >= 2]
    for im in multi.itertuples(index=False):
        key = (im.scene_id, im.variant, im.mode)
        fps = fps_by_image.get(im.image_id)
        n_fp = 0 if fps is None else len(fps)
        scored = key in groups_with_single
        n_ctx = 0
        if scored and n_fp:
            ref = single_by_group.get(key)
            for cat, f in fps.groupby("category_id", sort=False):
                fb = f[["x", "y", "w", "h"]].to_numpy()
                if ref is None:
                    n_ctx += len(f)
                    continue
                r = ref.loc[ref["category_id"] == cat, ["x", "y", "w", "h"]].to_numpy()
                if len(r) == 0:
                    n_ctx += len(f)
                    continue
                n_ctx += int(np.sum(~(iou_xywh(fb, r) >= iou).any(axis=1)))
        rows.append({"image_id": int(im.image_id), "scene_id": int(im.scene_id), "variant": im.variant,
                     "mode": im.mode, "subset_size": int(im.subset_size), "n_fp": n_fp,
                     "n_context_fp": n_ctx if scored else None, "scored": scored})
    table = pd.DataFrame(rows, columns=["image_id", "scene_id", "variant", "mode", "subset_size",
                                        "n_fp", "n_context_fp", "scored"])
    scored_t = table.loc[table["scored"]]
    counts = scored_t["n_context_fp"].astype(int)
    by_scene = []
    for scene_id, g in scored_t.groupby("scene_id", sort=True):
        c = g["n_context_fp"].astype(int)
        by_scene.append({"scene_id": int(scene_id), "n_context_fp": int(c.sum()), "n_images": len(g),
                         "per_image": float(c.mean())})
    summary = {
        "n_context_fp": int(counts.sum()),
        "n_images": int(len(scored_t)),
        "n_images_unscored": int((~table["scored"]).sum()) if len(table) else 0,
        "per_image": mean_or_none(counts.to_numpy()),
        "images_with_context_fp": rate(int((counts > 0).sum()), int(len(scored_t))),
        "by_scene": by_scene,
        "by_image": [{"image_id": int(r.image_id), "n_context_fp": int(r.n_context_fp)}
                     for r in scored_t.itertuples(index=False) if int(r.n_context_fp) > 0],
    }
    return summary, table


def roi_influence(outcomes: pd.DataFrame) -> pd.DataFrame:
    """influence(r -> o) = P(o hit | S) - P(o hit | S ∪ {r}) over the pairs of contexts that
    exist (§5), per (scene_id, target o, other r). Columns: scene_id, target_roi, other_roi,
    target_category, other_category, influence, p_hit_without, p_hit_with, n (pairs)."""
    acc: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    cats: dict[tuple[int, int], Any] = {}
    for r in outcomes[["scene_id", "roi_id", "category"]].drop_duplicates().itertuples(index=False):
        cats[(int(r.scene_id), int(r.roi_id))] = r.category
    for (scene_id, _v, _m), g in outcomes.groupby(GROUP, sort=False):
        by_subset: dict[frozenset[int], dict[int, bool]] = defaultdict(dict)
        for row in g[["subset", "roi_id", "outcome"]].itertuples(index=False):
            s = frozenset(int(x) for x in str(row.subset).split(",") if x != "")
            by_subset[s][int(row.roi_id)] = row.outcome == "hit"
        everyone = frozenset().union(*by_subset.keys()) if by_subset else frozenset()
        for s, hits in by_subset.items():
            for r in everyone - s:
                bigger = by_subset.get(s | {r})
                if bigger is None:
                    continue
                for o in s:
                    if o not in hits or o not in bigger:
                        continue
                    a = acc[(int(scene_id), o, r)]
                    a[0] += int(hits[o])
                    a[1] += int(bigger[o])
                    a[2] += 1
    rows = []
    for (scene_id, o, r), (h_without, h_with, n) in sorted(acc.items()):
        rows.append({"scene_id": scene_id, "target_roi": o, "other_roi": r,
                     "target_category": cats.get((scene_id, o)), "other_category": cats.get((scene_id, r)),
                     "influence": (h_without - h_with) / n, "p_hit_without": h_without / n,
                     "p_hit_with": h_with / n, "n": n})
    return pd.DataFrame(rows, columns=["scene_id", "target_roi", "other_roi", "target_category", "other_category",
                                       "influence", "p_hit_without", "p_hit_with", "n"])


def influence_summary(influence: pd.DataFrame) -> dict[str, Any]:
    """metrics.json form: every (scene, target, other) pair, most harmful first, and the
    pair-weighted mean influence per (target class, other class)."""
    pairs = influence.sort_values(["influence", "scene_id", "target_roi", "other_roi"],
                                  ascending=[False, True, True, True], kind="mergesort")
    by_class = []
    if len(influence):
        w = influence.assign(diff=influence["influence"] * influence["n"])
        for (tc, oc), g in w.groupby(["target_category", "other_category"], sort=True, dropna=False):
            n = int(g["n"].sum())
            by_class.append({"target_category": tc, "other_category": oc,
                             "influence": float(g["diff"].sum() / n) if n else None, "n": n,
                             "n_roi_pairs": len(g)})
    return {
        "n": int(influence["n"].sum()) if len(influence) else 0,
        "n_roi_pairs": int(len(influence)),
        "pairs": pairs.to_dict(orient="records"),
        "by_class": by_class,
    }

"""Reduced context (metrics.md §7): the ground truth of a reduced field of view, whether a
tile border cuts a ROI, and context retention of an inference condition against the reference.

- **Ground truth of a crop** (:func:`clip_ground_truth`): each annotated box is clipped to
  the window the detector sees. Its visible fraction is re-judged as
  ``visible_fraction x (area of the clipped box / area of the box)``: the share of the
  visible box left in view stands for the share of the visible pixels left (the suite
  stores boxes, not every image's instance mask), times what was visible before. Below
  ``min_visible`` the ROI becomes an ignore region (``iscrowd`` 1), as the suite judges it;
  with nothing left in view its annotation is dropped (the ROI is not visible there).
  ``area`` (visible pixels) is scaled by the same share.
- **Tile cut** (:func:`tile_cut`): a ROI is *cut* when no tile holds its visible box whole,
  so every tile that sees it sees it cut by a tile border; with overlapping tiles a box
  crossing one tile's border may still lie whole inside its neighbour.
- **Context retention** (:func:`context_retention`): ``P(o hit under c | o hit under the
  reference)``. Units are the ROI rows of the reference's outcome table that are scored
  (not ignore, not without a visible pixel) and a ``hit``; the same (image, ROI) row under
  ``c`` is looked up. Rows that ``c`` leaves out of view (an ignore region or not visible
  under a crop) are counted in ``n_out_of_view``, not scored. Over full-scene images each
  row is one ROI under one variant: a proportion with its Wilson 95% interval
  (``stats.rate``), also per class and, for tiles, by tile cut. Over permutation images
  the unit is one ROI under one variant and mode (scene, ROI, variant, mode), its value
  the share of its permutation images where it stays a hit, averaged with the seeded
  bootstrap interval of context accuracy (``stats.bootstrap_mean``). ``gained`` is the
  converse over full scenes: ``P(o hit under c | o scored, not a hit under the reference)``.

Imports only numpy, pandas and this package.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.metrics.stats import bootstrap_mean, rate

FULL_MODE = "full"
#: the column of a condition's outcome table that names the condition, and the reference's name
INFERENCE_COLUMN = "inference"
REFERENCE = "reference"
KEY = ["image_id", "roi_id"]
UNIT = ["scene_id", "roi_id", "variant", "mode"]
#: min_visible when annotations.json's info does not give it (metrics.md)
DEFAULT_MIN_VISIBLE = 0.1

Window = tuple[float, float, float, float]


def clip_ground_truth(gt: Mapping[str, Any], window: Callable[[int, int], Window],
                      min_visible: float | None = None) -> dict[str, Any]:
    """annotations.json's dict with every box clipped to ``window(height, width)`` of its
    image (``(x0, y0, x1, y1)``, pixels) and re-judged against ``min_visible`` (default:
    the suite's ``info.min_visible``, else 0.1); see the module doc. The input is not changed."""
    if min_visible is None:
        min_visible = float((gt.get("info") or {}).get("min_visible", DEFAULT_MIN_VISIBLE))
    images = {int(im["id"]): im for im in gt["images"]}
    anns = []
    for a in gt["annotations"]:
        im = images[int(a["image_id"])]
        x0, y0, x1, y1 = (float(v) for v in window(int(im["height"]), int(im["width"])))
        x, y, w, h = (float(v) for v in a["bbox"])
        cx0, cy0, cx1, cy1 = max(x, x0), max(y, y0), min(x + w, x1), min(y + h, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            continue  # nothing of it left in view
        share = (cx1 - cx0) * (cy1 - cy0) / (w * h) if w * h > 0 else 1.0
        b = dict(a)
        b["bbox"] = [cx0, cy0, cx1 - cx0, cy1 - cy0]
        b["area"] = float(a["area"]) * share
        vf = float(a.get("visible_fraction", 1.0)) * share
        b["visible_fraction"] = vf
        b["iscrowd"] = int(bool(a.get("iscrowd", 0)) or vf < min_visible)
        anns.append(b)
    out = copy.copy(dict(gt))
    out["annotations"] = anns
    return out


def tile_cut(boxes: np.ndarray, tiles: Sequence[Window]) -> np.ndarray:
    """For each xywh box (N, 4): True when no tile ``(x0, y0, x1, y1)`` holds it whole."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    t = np.asarray(tiles, dtype=np.float64).reshape(-1, 4)
    inside = ((b[:, None, 0] >= t[None, :, 0]) & (b[:, None, 1] >= t[None, :, 1])
              & (b[:, None, 0] + b[:, None, 2] <= t[None, :, 2]) & (b[:, None, 1] + b[:, None, 3] <= t[None, :, 3]))
    return ~inside.any(axis=1)


def _scored(rows: pd.DataFrame) -> pd.Series:
    return ~(rows["ignore"].astype(bool) | rows["not_visible"].astype(bool))


def _pairs(reference: pd.DataFrame, condition: pd.DataFrame) -> pd.DataFrame:
    """The reference's scored rows joined with the same (image, ROI) row under the condition:
    columns ``ref_hit``, ``in_view`` (scored under c), ``hit`` (a hit under c), plus the
    reference's columns and ``tile_cut`` when the condition's table has it."""
    ref = reference.loc[_scored(reference)]
    cols = KEY + ["outcome", "ignore", "not_visible"] + (["tile_cut"] if "tile_cut" in condition.columns else [])
    cond = condition[cols].rename(columns={"outcome": "c_outcome", "ignore": "c_ignore",
                                           "not_visible": "c_not_visible"})
    j = ref.merge(cond, on=KEY, how="left", validate="one_to_one")
    if j["c_outcome"].isna().any():
        first = j.loc[j["c_outcome"].isna(), KEY].iloc[0].to_dict()
        raise ValueError(f"context retention: the condition's outcome table has no row for {first}")
    in_view = ~(j["c_ignore"].astype(bool) | j["c_not_visible"].astype(bool))
    return j.assign(ref_hit=(j["outcome"] == "hit").to_numpy(), in_view=in_view.to_numpy(),
                    hit=((j["c_outcome"] == "hit") & in_view).to_numpy())


def _rate_of(p: pd.DataFrame) -> dict[str, Any]:
    """Retention over full-scene rows ``p`` (reference hits): hits in view / rows in view."""
    v = p.loc[p["in_view"]]
    return {**rate(int(v["hit"].sum()), len(v)), "n_out_of_view": int((~p["in_view"]).sum())}


def context_retention(reference: pd.DataFrame, condition: pd.DataFrame) -> dict[str, Any]:
    """Context retention of a condition (module doc) from two outcome tables of one suite
    (outcomes.parquet's columns; the condition's may carry ``tile_cut``).

    Returns ``{"full": rate + n_out_of_view, "by_class": {class: ...}, "by_tile_cut":
    {"cut": ..., "whole": ...} (tiles only, else None), "permutation": bootstrap figure +
    n_pairs + n_out_of_view, "gained": rate + n_out_of_view}``; a rate over nothing has
    value None. ValueError when the condition lacks a row the reference has."""
    j = _pairs(reference, condition)
    full = j.loc[j["mode"] == FULL_MODE]
    base = full.loc[full["ref_hit"]]
    out: dict[str, Any] = {"full": _rate_of(base)}
    out["by_class"] = {str(k): _rate_of(g) for k, g in base.groupby("category", sort=True, dropna=False)}
    out["by_tile_cut"] = None
    if "tile_cut" in j.columns:
        cut = base["tile_cut"].fillna(False).astype(bool)
        out["by_tile_cut"] = {"cut": _rate_of(base.loc[cut]), "whole": _rate_of(base.loc[~cut])}
    perm = j.loc[(j["mode"] != FULL_MODE) & j["ref_hit"]]
    scored = perm.loc[perm["in_view"]]
    per_unit = scored.groupby(UNIT, sort=True)["hit"].mean().to_numpy() if len(scored) else []
    out["permutation"] = bootstrap_mean(per_unit, n_pairs=len(scored), n_out_of_view=int((~perm["in_view"]).sum()))
    out["gained"] = _rate_of(full.loc[~full["ref_hit"]])
    return out


def condition_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline figures of one condition's metrics.json: full-scene and permutation mAP,
    hit rate of full-scene ROIs, context accuracy, false positives on full scenes."""
    def get(*keys: str) -> Any:
        d: Any = metrics
        for k in keys:
            d = d.get(k) if isinstance(d, Mapping) else None
        return d

    def mp(key: str) -> dict[str, Any] | None:
        m = get("map", key)
        return None if m is None else {k: m.get(k) for k in ("map", "ap50", "n_images", "n_gt")}

    fp = get("full_scene_fp")
    return {
        "map_full": mp("full"), "map_permutation": mp("permutation"),
        "hit_rate_full": get("outcomes", "full", "hit"),
        "context_accuracy": get("context_accuracy", "overall"),
        "full_scene_fp": None if fp is None else {"n_fp": fp.get("n_fp"), "n_images": fp.get("n_images"),
                                                  "per_image": fp.get("per_image"),
                                                  "images_with_fp": fp.get("images_with_fp")},
    }

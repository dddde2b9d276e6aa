"""False positives on full scenes (metrics.md §4b).

A false positive here is a detection with score >= ``conf`` in a full-scene image (mode
``full``, path 1) whose IoU with every annotated box of the image (ground truth or
ignore region, any class) is below ``iou``: the ``background`` detections of
``matching.outcome_tables``. A wrong-class box on a ROI is a mislabel (counted in the
outcomes), a second box on a ROI already found is a duplicate: neither is counted here.
Every full-scene image counts, also those of scenes without any ROI: a detector that
fires on an empty road shows here and nowhere else.

A figure: ``{"n_fp", "n_images", "per_image": {"value": mean FP per image, "n": images},
"images_with_fp": rate (share of images with at least one, Wilson 95% interval)}``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from oddsuite.metrics.stats import mean_or_none, rate
from oddsuite.metrics.tables import N_BINS, slice_labels

FULL_MODE = "full"
#: scenes.parquet column groups that are scene conditions (FORMAT.md)
CONDITION_PREFIXES = ("scenery.", "environment.", "camera.")


def _figure(counts: np.ndarray) -> dict[str, Any]:
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    return {
        "n_fp": int(counts.sum()),
        "n_images": n,
        "per_image": mean_or_none(counts),
        "images_with_fp": rate(int((counts > 0).sum()), n),
    }


def condition_labels(values: pd.Series) -> pd.Series:
    """A level per image: a number with more than ``N_BINS`` distinct values is cut into
    quantile bins (``tables.slice_labels``), another number is written with 4 significant
    digits (10000, 38.23), anything else as it is."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return values.astype(str)
    if values.nunique(dropna=True) > N_BINS:
        return slice_labels(values, max_levels=N_BINS)
    return values.map(lambda v: "nan" if pd.isna(v) else
                      np.format_float_positional(float(v), precision=4, unique=False, fractional=False, trim="-"))


def background_per_image(detections: pd.DataFrame, images: pd.DataFrame) -> pd.Series:
    """Background false positives (score >= conf) per image, indexed like ``images``
    (``matching.image_table``); 0 for an image without any."""
    fp = detections.loc[detections["background"].astype(bool)] if len(detections) else detections
    counts = fp.groupby("image_id").size() if len(fp) else pd.Series(dtype=np.int64)
    return images["image_id"].map(counts).fillna(0).astype(np.int64)


def full_scene_false_positives(detections: pd.DataFrame, images: pd.DataFrame, categories: Mapping[int, str], *,
                               scenes: pd.DataFrame | None = None) -> dict[str, Any]:
    """§4b over the full-scene images.

    detections: ``matching.outcome_tables``' detection table; images: ``matching.image_table``;
    categories: category id -> name (every class is listed, 0 where it never fires);
    scenes: scenes.parquet (optional), whose condition columns (``scenery.*``,
    ``environment.*``, ``camera.*`` with two or more levels among the full-scene images;
    levels as ``condition_labels`` writes them) give ``by_condition``.

    Returns the overall figure plus ``by_class`` (the detection's class), ``by_variant``,
    ``by_condition`` ({column: {level: figure}}) and ``by_image`` (images with at least one
    false positive, by image id).
    """
    full = images.loc[images["mode"] == FULL_MODE, ["image_id", "variant"]].reset_index(drop=True)
    counts = background_per_image(detections, full)
    out = _figure(counts.to_numpy())

    fp = detections.loc[detections["background"].astype(bool) & detections["image_id"].isin(full["image_id"])] \
        if len(detections) else detections
    by_class: dict[str, Any] = {}
    for cat_id, name in sorted(categories.items()):
        per = fp.loc[fp["category_id"] == cat_id].groupby("image_id").size() if len(fp) else pd.Series(dtype=int)
        c = full["image_id"].map(per).fillna(0).astype(np.int64).to_numpy()
        by_class[str(name)] = {"category_id": int(cat_id), **_figure(c)}
    out["by_class"] = by_class
    out["by_variant"] = {str(v): _figure(counts.loc[g.index].to_numpy())
                         for v, g in full.groupby("variant", sort=True)}

    by_condition: dict[str, Any] = {}
    if scenes is not None and len(full):
        cond = full[["image_id"]].merge(scenes, on="image_id", how="left", sort=False)
        for col in sorted(c for c in scenes.columns if c.startswith(CONDITION_PREFIXES)):
            values = cond[col]
            if values.nunique(dropna=True) < 2:
                continue
            labels = condition_labels(values).to_numpy()
            by_condition[col] = {str(lab): _figure(counts.to_numpy()[labels == lab]) for lab in sorted(set(labels))}
    out["by_condition"] = by_condition
    out["by_image"] = [{"image_id": int(i), "n_fp": int(c)} for i, c in zip(full["image_id"], counts) if c > 0]
    return out

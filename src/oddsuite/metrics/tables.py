"""Joining parameter columns onto outcome/image tables, and turning a column into slices."""
from __future__ import annotations

import pandas as pd

#: a numeric column with more distinct values than this is cut into quantile bins
MAX_LEVELS = 12
#: number of quantile bins for such a column
N_BINS = 5


def with_parameters(table: pd.DataFrame, scenes: pd.DataFrame | None = None,
                    rois: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add the scene parameter columns (joined on image_id; columns already in ``table``
    are kept from ``table``) and, when ``table`` has ROI rows, the ROI's columns prefixed
    ``roi.`` (joined on scene_id, roi_id)."""
    out = table
    if scenes is not None and len(scenes.columns):
        extra = [c for c in scenes.columns if c not in out.columns]
        if extra:
            out = out.merge(scenes[["image_id"] + extra], on="image_id", how="left", sort=False)
    if rois is not None and "roi_id" in out.columns and len(rois.columns):
        keys = ["scene_id", "roi_id"]
        extra = [c for c in rois.columns if c not in keys]
        r = rois[keys + extra].rename(columns={c: f"roi.{c}" for c in extra})
        r = r.drop(columns=[c for c in r.columns if c in out.columns and c not in keys])
        out = out.merge(r, on=keys, how="left", sort=False)
    return out


def slice_labels(values: pd.Series, *, max_levels: int = MAX_LEVELS, bins: int = N_BINS) -> pd.Series:
    """A label per row for slicing by this column: the value itself (as a string), or, for
    a numeric column with many distinct values, its quantile bin (e.g. "(10.0, 25.5]")."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(str)
    if pd.api.types.is_numeric_dtype(values) and values.nunique(dropna=True) > max_levels:
        cut = pd.qcut(values, q=bins, duplicates="drop")
        return cut.astype(str)
    return values.astype(str)

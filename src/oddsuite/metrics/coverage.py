"""Coverage of the ODD with the detector's outcomes (metrics.md §8): per t-tuple of levels,
how many full-scene images hit it and how the detector did there.

The levels, the tuples and whether the spec's rules allow each one come from
``odd.coverage`` (handed in as values: this package imports nothing above it); here they
meet the images and the outcome table. A tuple is *covered* when at least ``k``
full-scene images hit it; t-way coverage is covered / allowed, over the allowed tuples
only (a tuple the rules forbid is never missing). The failure rate of a tuple is the share
of scored ROI rows (not an ignore region, some pixel visible) of its full-scene images
whose outcome is not a hit (a miss or a mislabel), as trace counts failures.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.metrics.stats import rate

#: missing tuples listed per t (the count is always given)
MAX_LISTED = 100
#: per-tuple columns are written for t up to this (a 3-way table runs to thousands of rows)
MAX_DETAIL_T = 2


def failure_counts(outcomes: pd.DataFrame, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(failed, scored) ROI rows of each image of ``image_ids`` (aligned, int64): scored rows
    are neither an ignore region nor without a visible pixel; failed ones are not a hit."""
    pos = pd.Series(np.arange(len(image_ids)), index=pd.Index([int(i) for i in image_ids]))
    failed = np.zeros(len(image_ids), dtype=np.int64)
    scored = np.zeros(len(image_ids), dtype=np.int64)
    if len(outcomes) and len(image_ids):
        rows = outcomes.loc[outcomes["image_id"].isin(pos.index)
                            & ~outcomes["ignore"].astype(bool) & ~outcomes["not_visible"].astype(bool)]
        at = pos.loc[rows["image_id"].astype(int)].to_numpy()
        np.add.at(scored, at, 1)
        np.add.at(failed, at, (rows["outcome"] != "hit").to_numpy().astype(np.int64))
    return failed, scored


def way_section(tuples: Any, codes: np.ndarray, failed: np.ndarray, scored: np.ndarray, *, k: int,
                text: Any, detail: bool) -> dict[str, Any]:
    """The figures of one t. tuples: ``odd.coverage.Tuples``; codes: level indices of every
    image ([n_images, n_axes], -1 outside); failed, scored: ROI rows per image; text(dims,
    levels) -> the readable conditions of a tuple."""
    n_img = tuples.counts(codes).astype(np.int64)
    allowed = np.asarray(tuples.allowed, dtype=bool)
    covered = allowed & (n_img >= k)
    missing = np.flatnonzero(allowed & ~covered)
    n_allowed = int(allowed.sum())
    out: dict[str, Any] = {
        "t": int(tuples.t),
        "n_tuples": int(len(allowed)),
        "n_allowed": n_allowed,
        "n_forbidden": int((~allowed).sum()),
        "n_covered": int(covered.sum()),
        "coverage": (int(covered.sum()) / n_allowed) if n_allowed else None,
        "n_missing": int(len(missing)),
        "missing": [text(tuples.dims[i], tuples.levels[i]) for i in missing[:MAX_LISTED]],
    }
    if detail:
        n_failed = tuples.counts(codes, failed).astype(np.int64)
        n_rois = tuples.counts(codes, scored).astype(np.int64)
        out["tuples"] = {"dims": tuples.dims.tolist(), "levels": tuples.levels.tolist(), "allowed": allowed.tolist(),
                         "n_images": n_img.tolist(), "n_failed": n_failed.tolist(), "n_rois": n_rois.tolist()}
    return out


def coverage_section(odd: Any, images: pd.DataFrame, outcomes: pd.DataFrame, *, ways: Sequence[int] = (1, 2),
                     k: int = 1) -> dict[str, Any]:
    """metrics.json's ``coverage``. odd: an ``odd.coverage.OddCoverage``; images: one row per
    full-scene image (``image_id`` and a column per dimension path: scenes.parquet rows),
    of which those inside the ODD count (``odd.inside``); outcomes: the outcome table
    (``image_id``, ``outcome``, ``ignore``, ``not_visible``)."""
    from oddsuite.metrics.stats import json_clean

    all_codes = odd.codes(images)
    inside = odd.inside(images, all_codes)
    ids = images["image_id"].astype(int).to_numpy()[inside].tolist()
    codes = all_codes[inside]
    failed, scored = failure_counts(outcomes, ids)
    dims = []
    for i, d in enumerate(odd.describe()):
        col = codes[:, i]
        per_level = [{"n_images": int((col == j).sum()),
                      "failure": rate(int(failed[col == j].sum()), int(scored[col == j].sum()))}
                     for j in range(len(d["levels"]))]
        dims.append({**d, "n_images_outside": int((all_codes[:, i] < 0).sum()), "by_level": per_level})

    def text(dd: Sequence[int], lv: Sequence[int]) -> list[str]:
        return [f"{odd.axes[a].path} = {odd.axes[a].levels[j].label}" for a, j in zip(dd, lv)]

    by_t = {str(t): way_section(odd.tuples(t), codes, failed, scored, k=k, text=text, detail=t <= MAX_DETAIL_T)
            for t in sorted(set(int(t) for t in ways))}
    return json_clean({
        "k": int(k),
        "n_images": len(ids),
        "n_images_outside_odd": int((~inside).sum()),
        "n_rois": int(scored.sum()),
        "n_failed": int(failed.sum()),
        "image_set": "full-scene images inside the ODD (every value in a level, every rule kept), of every "
                     "variant, at the values in effect in each image",
        "dimensions": dims,
        "ways": by_t,
    })

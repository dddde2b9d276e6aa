"""Failure slices: the failure rate of the ROI rows in each level of each dimension, and
in each cell of pairs of dimensions.

A *failure* is a ROI row whose outcome is not ``hit`` (a miss or a mislabel); ignore-region
rows (visible fraction below ``min_visible``, or no visible pixel) are neither failures
nor successes and are left out, as metrics.md treats them.

Marginal score. ``score = lower Wilson 95% bound of the slice's failure rate − overall
failure rate``: positive only when the slice fails more often than the whole set even at
the pessimistic end of its interval, so a 2-of-2 slice does not outrank a 60-of-100 one.
Every level of every dimension is a slice, whatever its n (its interval says how much it
can be trusted); slices under ``min_support`` rows are marked ``small_n``.

The cells of the heatmap pairs (below) are slices too (``kind`` ``conjunction``: 'A and B'),
ranked with the single levels: a defect of one class under one condition is then a slice
of its own, not two half-explaining ones.

Conditional ranking (``conditional_ranking``): the first slice is the best by score; each
next one is the best by its *conditional* score, the same score computed only on the rows
that no slice already ranked covers, against the failure rate of those rows (ties go to
the slice that overlaps the covered rows least). A slice that
only looks bad because it overlaps an earlier one (``illumination = day`` beside a fog
defect) falls behind a slice that explains failures of its own; once no slice scores above
0 on the uncovered rows, the rest follow by that last conditional score. Slices that hold
exactly the same rows as a better-ranked slice are folded into it first (``same_rows``).

Pairs of dimensions are ranked by how much of the variation in failures their cells
explain beyond chance: ``(χ² − df) / N`` of the failure-by-cell table, where ``df`` (the
number of non-empty cells − 1) is what χ² is on average when the cells do not matter.
A pair where one dimension is a function of the other (e.g. variant and fog visibility
when each variant fixes the fog) shows nothing that one dimension alone does not, and is
skipped.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.metrics.stats import rate, wilson_interval
from oddsuite.trace.dimensions import Dimension

#: image sets a trace can look at
IMAGE_SETS = ("full", "permutation", "all")
FULL_MODE = "full"


def failure_rows(outcomes: pd.DataFrame, image_set: str = "full") -> pd.DataFrame:
    """The scored ROI rows of one image set with a bool column ``failure``.

    image_set: ``full`` (full-scene images, mode "full", the default), ``permutation``
    (every other image: ROI subsets with the rest masked), or ``all``.
    """
    if image_set not in IMAGE_SETS:
        raise ValueError(f"image set must be one of {IMAGE_SETS}, got {image_set!r}")
    missing = [c for c in ("outcome", "ignore", "not_visible", "mode") if c not in outcomes.columns]
    if missing:
        raise KeyError(f"outcome table lacks column(s) {missing} (see docs/FORMAT.md, outcomes.parquet)")
    rows = outcomes.loc[~(outcomes["ignore"].astype(bool) | outcomes["not_visible"].astype(bool))]  # not scored
    if image_set == "full":
        rows = rows.loc[rows["mode"] == FULL_MODE]
    elif image_set == "permutation":
        rows = rows.loc[rows["mode"] != FULL_MODE]
    rows = rows.reset_index(drop=True)
    return rows.assign(failure=(rows["outcome"] != "hit").to_numpy())


def overall(rows: pd.DataFrame) -> dict[str, Any]:
    n = len(rows)
    k = int(rows["failure"].sum())
    return {"n": n, "failures": k, "misses": int((rows["outcome"] == "miss").sum()),
            "mislabels": int((rows["outcome"] == "mislabel").sum()), "rate": rate(k, n)}


def _record(n: int, k: int, misses: int, mislabels: int, total_failures: int, base: float | None) -> dict[str, Any]:
    r = rate(k, n)
    score = diff = None
    if r["value"] is not None and base is not None:
        diff = r["value"] - base
        score = r["ci95"][0] - base
    return {"n": int(n), "failures": int(k), "misses": int(misses), "mislabels": int(mislabels), "rate": r,
            "share_of_failures": (k / total_failures) if total_failures else None,
            "diff": diff, "score": score}


def _counts(codes: np.ndarray, n_levels: int, fail: np.ndarray, miss: np.ndarray) -> tuple[np.ndarray, ...]:
    n = np.bincount(codes, minlength=n_levels)
    k = np.bincount(codes, weights=fail, minlength=n_levels).astype(np.int64)
    m = np.bincount(codes, weights=miss, minlength=n_levels).astype(np.int64)
    return n, k, m


def level_table(rows: pd.DataFrame, dim: Dimension, *, min_support: int) -> list[dict[str, Any]]:
    """Per level of ``dim``: its slice record (support, failures, rate with interval, …)."""
    fail = rows["failure"].to_numpy(dtype=np.float64)
    miss = (rows["outcome"] == "miss").to_numpy(dtype=np.float64)
    K = int(fail.sum())
    base = (K / len(rows)) if len(rows) else None
    n, k, m = _counts(dim.codes, len(dim.levels), fail, miss)
    out = []
    for i, lv in enumerate(dim.levels):
        rec = _record(int(n[i]), int(k[i]), int(m[i]), int(k[i] - m[i]), K, base)
        out.append({"dimension": dim.column, "name": dim.name, "level": lv.label, "level_index": i,
                    "condition": dim.level_text(i), "kind": "level", **rec, "small_n": bool(n[i] < min_support)})
    return out


def rank_key(s: dict[str, Any]) -> tuple:
    """Marginal order: score, share of failures, n; a single condition before a conjunction
    with the same figures (so that identical rows fold into the simpler statement)."""
    return (-(s["score"] if s["score"] is not None else -np.inf), -(s["share_of_failures"] or 0.0), -s["n"],
            len(s.get("dimensions") or [s["dimension"]]), s["dimension"], s["level_index"], s["condition"])


def rank_slices(tables: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every level of every dimension, best (most clearly failing) first by marginal score."""
    flat = [s for t in tables for s in t]
    return sorted(flat, key=rank_key)


def equivalent_levels(dims: Sequence[Dimension]) -> dict[tuple[str, int], tuple[Dimension, int]]:
    """(column, level) -> the level that states the same rows most plainly: a level of an
    ODD taxonomy dimension first, then of the dimension with the fewest levels (``class =
    person`` rather than ``asset = person/walking`` when the suite has one person asset)."""
    groups: dict[bytes, list[tuple[Dimension, int]]] = {}
    for d in dims:
        for i in range(len(d.levels)):
            m = d.codes == i
            groups.setdefault(np.packbits(m).tobytes() + str(len(m)).encode(), []).append((d, i))
    out = {}
    for members in groups.values():
        rep = min(members, key=lambda di: (not di[0].source.startswith("taxonomy"), len(di[0].levels), di[0].column))
        out.update({(d.column, i): rep for d, i in members})
    return out


def conjunction_slices(pairs: Sequence[Mapping[str, Any]], by_col: Mapping[str, Dimension],
                       plain: Mapping[tuple[str, int], tuple[Dimension, int]] | None = None
                       ) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Every cell of the heatmap pairs as a slice (``kind`` ``conjunction``, condition
    'A and B', each stated by its plainest equivalent level, ``equivalent_levels``) with its
    rows' mask, so that a condition × class defect is ranked beside the single conditions."""
    plain = plain or {}

    def text(d: Dimension, i: int) -> str:
        rd, ri = plain.get((d.column, i), (d, i))
        return rd.level_text(ri)

    out = []
    for p in pairs:
        a, b = (by_col[c] for c in p["dimensions"])
        for cell in p["cells"]:
            i, j = int(cell["a"]), int(cell["b"])
            rec = {k: v for k, v in cell.items() if k not in ("a", "b")}
            s = {"dimension": a.column, "dimensions": [a.column, b.column], "name": f"{a.name} × {b.name}",
                 "level": f"{a.levels[i].label} × {b.levels[j].label}", "level_index": i, "level_indices": [i, j],
                 "condition": f"{text(a, i)} and {text(b, j)}", "kind": "conjunction", **rec}
            out.append((s, (a.codes == i) & (b.codes == j)))
    return out


def _conditional_scores(masks: np.ndarray, fail: np.ndarray, uncovered: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per slice (row of ``masks``): n and failures among the uncovered rows, and its
    conditional score (lower Wilson bound there − failure rate of the uncovered rows;
    NaN when the slice has no uncovered row)."""
    n = (masks & uncovered).sum(axis=1)
    k = (masks & uncovered & fail).sum(axis=1)
    nu = int(uncovered.sum())
    base = float(fail[uncovered].sum()) / nu if nu else float("nan")
    lo = np.array([wilson_interval(int(kk), int(nn))[0] if nn else np.nan for kk, nn in zip(k, n)])
    return n, k, lo - base, np.full(len(n), base)


def conditional_ranking(ranked: list[dict[str, Any]], masks: Sequence[np.ndarray],
                        fail: np.ndarray) -> list[dict[str, Any]]:
    """``ranked`` (by marginal score) re-ordered by conditional score (module doc); ``masks``:
    the rows of each slice. Each slice gets ``conditional``: its n, failures, rate and
    score on the rows not covered by the slices ranked before it, and ``rank``."""
    if not ranked:
        return []
    m = np.vstack([np.asarray(x, dtype=bool) for x in masks])
    fail = np.asarray(fail, dtype=bool)
    uncovered = np.ones(m.shape[1], dtype=bool)
    total = m.sum(axis=1)
    left = list(range(len(ranked)))
    order: list[tuple[int, int, int, float, float]] = []
    while left:
        n, k, score, base = _conditional_scores(m[left], fail, uncovered)
        # ties: the slice overlapping the covered rows least, then the marginal order
        best = min(range(len(left)), key=lambda j: (-np.nan_to_num(score[j], nan=-np.inf), total[left[j]] - n[j], j))
        if not score[best] > 0:
            rest = sorted(range(len(left)), key=lambda j: (np.isnan(score[j]), -np.nan_to_num(score[j], nan=0.0), j))
            order.extend((left[j], int(n[j]), int(k[j]), float(score[j]), float(base[j])) for j in rest)
            break
        i = left.pop(best)
        order.append((i, int(n[best]), int(k[best]), float(score[best]), float(base[best])))
        uncovered &= ~m[i]
    out = []
    for rank, (i, n_u, k_u, sc, base) in enumerate(order, 1):
        s = ranked[i]
        s["conditional"] = {"n": n_u, "failures": k_u, "rate": rate(k_u, n_u),
                            "base_rate": None if np.isnan(base) else base,
                            "score": None if np.isnan(sc) else sc, "n_slices_before": rank - 1}
        s["rank"] = rank
        out.append(s)
    return out


def _chi2(n: np.ndarray, k: np.ndarray) -> tuple[float, int]:
    """(χ², df) of failures against the cells with rows."""
    keep = n > 0
    n, k = n[keep].astype(np.float64), k[keep].astype(np.float64)
    N, K = n.sum(), k.sum()
    if N == 0 or K == 0 or K == N:
        return 0.0, max(0, int(keep.sum()) - 1)
    p = K / N
    chi2 = float(np.sum((k - n * p) ** 2 / (n * p * (1 - p))))
    return chi2, int(keep.sum()) - 1


def pair_tables(rows: pd.DataFrame, dims: Sequence[Dimension], *, min_support: int, top: int = 4,
                max_levels: int = 12, max_uses: int = 2) -> list[dict[str, Any]]:
    """The ``top`` pairs of dimensions whose cells explain the most failure variation
    (module doc), each with its cell table. A dimension appears in at most ``max_uses``
    of the chosen pairs, so that one dominant condition does not fill every heatmap."""
    if top <= 0 or len(rows) == 0:
        return []
    fail = rows["failure"].to_numpy(dtype=np.float64)
    miss = (rows["outcome"] == "miss").to_numpy(dtype=np.float64)
    N, K = len(rows), int(fail.sum())
    base = K / N
    cand = [d for d in dims if 2 <= len(d.levels) <= max_levels]
    scored = []
    for a, b in combinations(cand, 2):
        la, lb = len(a.levels), len(b.levels)
        cell = a.codes * lb + b.codes
        n, k, m = _counts(cell, la * lb, fail, miss)
        nonempty = int((n > 0).sum())
        if nonempty <= max(la, lb):  # one dimension is a function of the other
            continue
        chi2, df = _chi2(n, k)
        score = (chi2 - df) / N
        if score <= 0:
            continue
        scored.append((score, a, b, n, k, m))
    scored.sort(key=lambda t: (-t[0], t[1].column, t[2].column))
    uses: dict[str, int] = {}
    out = []
    for score, a, b, n, k, m in scored:
        if uses.get(a.column, 0) >= max_uses or uses.get(b.column, 0) >= max_uses:
            continue
        uses[a.column] = uses.get(a.column, 0) + 1
        uses[b.column] = uses.get(b.column, 0) + 1
        lb = len(b.levels)
        cells = []
        for i in range(len(a.levels)):
            for j in range(lb):
                c = i * lb + j
                if n[c] == 0:
                    continue
                rec = _record(int(n[c]), int(k[c]), int(m[c]), int(k[c] - m[c]), K, base)
                cells.append({"a": i, "b": j, **rec, "small_n": bool(n[c] < min_support)})
        out.append({
            "dimensions": [a.column, b.column], "names": [a.name, b.name],
            "levels": [a.labels(), b.labels()], "score": score, "n": N, "failures": K, "cells": cells,
        })
        if len(out) >= top:
            break
    return out

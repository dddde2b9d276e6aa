"""Readable failure rules from a shallow decision tree over the scene conditions.

The tree (scikit-learn, seeded, depth ≤ 3, at least ``min_leaf`` rows per leaf) is fit on
the binned dimensions: an ordered dimension (binned or few numeric values) enters as its
level index, so every split falls on a bin edge of the taxonomy (``fog_visibility_m <
200 m``, not ``< 173.4``); a categorical one enters as one indicator per category
(``class = person`` / ``class ≠ person``); an indicator that only repeats a split of an
ODD dimension is left out. Each leaf becomes a rule: the conditions on its
path, merged per dimension, with the leaf's support, failure rate and Wilson interval,
and its share of all failures.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from oddsuite.trace.dimensions import Dimension
from oddsuite.trace.slices import _record

MAX_DEPTH = 3


def _key(mask: np.ndarray) -> bytes:
    return np.packbits(mask).tobytes()


def _features(dims: Sequence[Dimension]) -> tuple[np.ndarray, list[tuple[int, int | None]]]:
    """Feature matrix and, per feature, (dimension index, category index or None for ordered).

    Ordered dimensions come first, those binned by the ODD taxonomy before the others, and a
    category indicator that splits the rows exactly as a threshold of an earlier feature does
    (e.g. ``variant = fog_150m`` when that variant alone has fog under 200 m) is left out:
    the tree then states the split by the ODD dimension, which is what the variant means.
    """
    order = sorted(range(len(dims)), key=lambda i: (not dims[i].ordered,
                                                    not dims[i].source.startswith("taxonomy"), i))
    cols, meta = [], []
    seen: set[bytes] = set()
    for di in order:
        d = dims[di]
        if d.ordered:
            cols.append(d.codes.astype(np.float64))
            meta.append((di, None))
            for k in range(len(d.levels) - 1):
                m = d.codes <= k
                seen.update((_key(m), _key(~m)))
        else:
            for li in range(len(d.levels)):
                m = d.codes == li
                if _key(m) in seen:
                    continue
                seen.update((_key(m), _key(~m)))
                cols.append(m.astype(np.float64))
                meta.append((di, li))
    X = np.column_stack(cols) if cols else np.zeros((0, 0))
    return X, meta


def _leaf_paths(tree: Any) -> dict[int, list[tuple[int, float, bool]]]:
    """leaf node id -> [(feature, threshold, went_left)] from the root."""
    t = tree.tree_
    out: dict[int, list[tuple[int, float, bool]]] = {}
    stack: list[tuple[int, list[tuple[int, float, bool]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # leaf
            out[node] = path
            continue
        f, thr = int(t.feature[node]), float(t.threshold[node])
        stack.append((right, path + [(f, thr, False)]))
        stack.append((left, path + [(f, thr, True)]))
    return out


def _conditions(path: list[tuple[int, float, bool]], meta: list[tuple[int, int | None]],
                dims: Sequence[Dimension]) -> list[dict[str, Any]]:
    allowed: dict[int, set[int]] = {}
    order: list[int] = []
    for f, thr, left in path:
        di, li = meta[f]
        d = dims[di]
        cur = allowed.setdefault(di, set(range(len(d.levels))))
        if di not in order:
            order.append(di)
        if li is None:  # ordered: code <= thr goes left
            keep = {c for c in cur if (c <= thr) == left}
        else:  # indicator of category li: <= 0.5 (not li) goes left
            keep = {c for c in cur if (c == li) != left}
        allowed[di] = keep
    out = []
    for di in order:
        d = dims[di]
        idx = sorted(allowed[di])
        out.append({"dimension": d.column, "name": d.name, "levels": [d.levels[i].label for i in idx],
                    "text": d.condition_text(idx)})
    return out


def decision_rules(rows: pd.DataFrame, dims: Sequence[Dimension], *, max_depth: int = MAX_DEPTH,
                   min_leaf: int = 20, seed: int = 0) -> dict[str, Any]:
    """Fit the tree on ``rows`` (with a bool column ``failure``) and return its leaves as
    rules, most clearly failing first (same score as the slices), plus the tree's settings,
    the importance of each dimension, and ``leaf_of_row`` (the rule index of every row)."""
    from sklearn.tree import DecisionTreeClassifier

    if not 1 <= int(max_depth) <= MAX_DEPTH:
        raise ValueError(f"max_depth must be 1..{MAX_DEPTH} (rules stay readable), got {max_depth}")
    if min_leaf < 1:
        raise ValueError(f"min_leaf must be >= 1, got {min_leaf}")
    y = rows["failure"].to_numpy(dtype=bool)
    miss = (rows["outcome"] == "miss").to_numpy()
    N, K = len(y), int(y.sum())
    base = K / N if N else None
    X, meta = _features(dims)
    settings = {"max_depth": int(max_depth), "min_leaf": int(min_leaf), "seed": int(seed),
                "criterion": "gini", "n": N, "features": len(meta)}
    if N == 0:
        return {"settings": settings, "rules": [], "importance": {}, "leaf_of_row": np.zeros(0, dtype=np.int64)}
    if X.shape[1] == 0:
        X = np.zeros((N, 1))
        meta = []
    tree = DecisionTreeClassifier(max_depth=int(max_depth), min_samples_leaf=int(min_leaf), random_state=int(seed))
    tree.fit(X, y)
    leaves = tree.apply(X)
    paths = _leaf_paths(tree)
    rules = []
    for leaf, path in paths.items():
        mask = leaves == leaf
        n, k = int(mask.sum()), int(y[mask].sum())
        m = int((mask & y & miss).sum())
        conds = _conditions(path, meta, dims) if meta else []
        text = " and ".join(c["text"] for c in conds) if conds else "all ROIs (the tree found no split)"
        rules.append({"leaf": int(leaf), "conditions": conds, "text": text,
                      **_record(n, k, m, k - m, K, base),
                      "above_overall": bool(base is not None and n and k / n > base)})
    rules.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -np.inf), -r["n"], r["leaf"]))
    index = {r["leaf"]: i for i, r in enumerate(rules)}
    leaf_of_row = np.array([index[int(v)] for v in leaves], dtype=np.int64)
    importance: dict[str, float] = {}
    if meta:
        for (di, _), imp in zip(meta, tree.feature_importances_):
            importance[dims[di].column] = importance.get(dims[di].column, 0.0) + float(imp)
        importance = {k: v for k, v in sorted(importance.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0}
    return {"settings": settings, "rules": rules, "importance": importance, "leaf_of_row": leaf_of_row}

"""``covering``: scene ``i`` is row ``i`` (wrapping) of a covering array over the levels of
the ODD's dimensions (``odd.coverage``), so that the first rows already hold every
``t``-tuple of levels the spec's rules allow (``strength: 2`` by default, ``strength: 3``
allowed): t-way coverage of 100% with far fewer scenes than random or Halton draws
(``benchmarks/coverage.py`` measures how many fewer).

The array comes from allpairspy (``AllPairs``, a maintained greedy pairwise / n-wise
generator), with the rules as its filter: a partial row passes when its levels can still
be completed to a point that keeps every rule (``OddCoverage.allows``, exact where rules
compare against constants). allpairspy's greedy search stops at the first row that adds
no new tuple, which under constraints can leave allowed tuples out; those are then
added one row each, the row's other levels chosen greedily to hit as many tuples still
missing as the rules let them. Axes are given to allpairspy largest level count first,
as covering-array heuristics do; the array does not depend on the seed.

Inside each level, the values come from (suite seed, scene id): ``OddCoverage.draw``
draws them from the spec's distribution restricted to the row's levels and to a part of
them that keeps the rules, with the scene's own Generator. The same spec and seed give
the same scenes, and any scene can be made alone. Past the array's last row, the rows
repeat with new values.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from oddsuite.errors import SpecError
from oddsuite.odd.coverage import OddCoverage, odd_coverage
from oddsuite.odd.samplers.base import Sampler
from oddsuite.odd.spec import OddSpec

_ROWS: dict[tuple, list[tuple[int, ...]]] = {}


class CoveringSampler(Sampler):
    name = "covering"

    def __init__(self, spec: OddSpec, seed: int):
        super().__init__(spec, seed)
        self.coverage = odd_coverage(spec)
        self.rows = covering_rows(spec)

    def first(self, scene_id: int, rng: np.random.Generator) -> list[Any]:
        return self.coverage.draw(self.rows[scene_id % len(self.rows)], rng)

    @classmethod
    def problems(cls, spec: OddSpec) -> list[tuple[tuple, str]]:
        try:
            cov = odd_coverage(spec)
        except SpecError as e:
            return [(("rules",), str(e).split(": rules: ", 1)[-1])]
        if not cov.satisfiable:
            return [(("rules",), "no point of the spec's domains keeps every rule; the covering sampler has no row")]
        return []


def covering_rows(spec: OddSpec) -> list[tuple[int, ...]]:
    """The covering array of ``spec`` at ``spec.strength``: one tuple of level indices per
    row, one index per axis of ``odd_coverage(spec)`` (fixed axes: 0). Cached per spec."""
    key = (spec.source_text, spec.model_dump_json())
    rows = _ROWS.get(key)
    if rows is None:
        if len(_ROWS) >= 8:
            _ROWS.clear()
        rows = _ROWS[key] = build_rows(odd_coverage(spec), spec.strength)
    return rows


def build_rows(cov: OddCoverage, t: int) -> list[tuple[int, ...]]:
    """A covering array of strength ``t`` over ``cov``'s varying axes that keeps the rules
    (see the module doc). Raises SpecError when no point keeps the rules."""
    if not cov.satisfiable:
        raise SpecError(f"{cov.spec.source_path}: rules: no point of the spec's domains keeps every rule")
    order = sorted(cov.varying, key=lambda a: (-len(cov.axes[a].levels), a))
    base = [0] * len(cov.axes)
    t = min(t, len(order))
    rows: list[tuple[int, ...]] = []
    if t >= 1 and len(order) >= 2:
        from allpairspy import AllPairs

        def ok(partial: list[int]) -> bool:
            return cov.allows(dict(zip(order, partial)))

        params = [list(range(len(cov.axes[a].levels))) for a in order]
        for r in AllPairs(params, filter_func=ok, n=t):
            row = list(base)
            for a, lv in zip(order, r):
                row[a] = int(lv)
            rows.append(tuple(row))
    elif len(order) == 1:
        a = order[0]
        rows = [tuple(lv if i == a else 0 for i in range(len(cov.axes))) for lv in range(len(cov.axes[a].levels))
                if cov.allows({a: lv})]
    if not rows:
        rows = [tuple(base)] if cov.allows({}) else []
    return _complete(cov, rows, order, t)


def _complete(cov: OddCoverage, rows: list[tuple[int, ...]], order: list[int], t: int) -> list[tuple[int, ...]]:
    """Add a row for every allowed t-tuple the rows miss (greedy, see the module doc)."""
    if t < 1 or not order:
        return rows
    tuples = cov.tuples(t)
    codes = np.asarray(rows, dtype=np.int64).reshape(-1, len(cov.axes))
    missing = tuples.allowed & (tuples.counts(codes) == 0)
    # per group of t axes, the tuples still missing as a boolean array over their levels
    left: list[tuple[tuple[int, ...], np.ndarray]] = []
    start = 0
    for dims, shape in tuples.groups:
        size = int(np.prod(shape))
        left.append((dims, missing[start:start + size].reshape(shape).copy()))
        start += size
    out = list(rows)
    for k in np.flatnonzero(missing):
        dims, levels = tuple(tuples.dims[k]), tuple(tuples.levels[k])
        arr = next(a for d, a in left if d == dims)
        if not arr[levels]:
            continue  # a row added since holds it
        fixed = dict(zip(dims, (int(x) for x in levels)))
        for a in order:
            if a in fixed:
                continue
            gains = np.zeros(len(cov.axes[a].levels))
            for d, m in left:  # tuples through a whose other axes are chosen already
                if a in d and all(x == a or x in fixed for x in d):
                    gains += m[tuple(slice(None) if x == a else fixed[x] for x in d)]
            allowed = [lv for lv in range(len(gains)) if cov.allows({**fixed, a: lv})]
            if not allowed:  # cannot happen when the tuple is allowed: allows() is exact
                raise AssertionError(f"no level of {cov.axes[a].path} completes an allowed tuple")
            fixed[a] = max(allowed, key=lambda lv: (gains[lv], -lv))
        row = tuple(fixed.get(i, 0) for i in range(len(cov.axes)))
        out.append(row)
        for d, m in left:
            m[tuple(row[x] for x in d)] = False
    return out

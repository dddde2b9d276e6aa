"""ROI subset plans: which subsets of a scene's ROIs are rendered.

- ``full``: the full scene only.
- ``exhaustive``: every non-empty subset (2^n − 1), refused past ``max_subsets``.
- ``k-subsets``: every subset of size ≤ k, plus the full set.
- ``ablation``: singletons, leave-one-out, and the full set.
- ``sampled``: singletons and the full set, plus ``n`` further distinct subsets drawn
  with the scene's Generator (fewer when the scene has fewer subsets).

Every plan is counted (``plan_size``) and refused past ``max_subsets`` before a subset is
built. Subsets are sorted tuples of ROI ids; a plan's list is in a fixed order (by size, then
lexicographic), so the same scene always gives the same images in the same order.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from oddsuite.errors import SpecError
from oddsuite.odd.spec import plan_size

Subset = tuple[int, ...]
PLANS = ("full", "exhaustive", "k-subsets", "ablation", "sampled")


def _ablation(ids: list[int]) -> list[Subset]:
    out = {(i,) for i in ids} | {tuple(j for j in ids if j != i) for i in ids} | {tuple(ids)}
    return [s for s in out if s]


def subsets(plan: str, roi_ids: list[int], *, k: int = 2, n_sampled: int = 16, max_subsets: int = 256,
            rng: np.random.Generator | None = None, where: str = "") -> list[Subset]:
    """The subsets of ``roi_ids`` that ``plan`` renders, in plan order. ``rng``: the scene's
    Generator (``params.rng('subsets')``), required by ``sampled``. Raises SpecError when the
    plan would give more than ``max_subsets`` (``where`` prefixes the message)."""
    ids = sorted(roi_ids)
    n = len(ids)
    if n == 0:
        return []
    full = tuple(ids)
    size = plan_size(plan, n, k, n_sampled) if plan in PLANS else 0
    if size > max_subsets:  # counted before anything is built
        raise SpecError(
            f"{where}{plan} plan: a scene with {n} ROIs has {size} subsets, above "
            f"permutations.max_subsets = {max_subsets}; use k-subsets (small k), ablation or sampled, "
            f"lower the object counts, or raise max_subsets"
        )
    if plan == "full":
        out = {full}
    elif plan == "exhaustive":
        out = {c for s in range(1, n + 1) for c in combinations(ids, s)}
    elif plan == "k-subsets":
        out = {c for s in range(1, min(k, n) + 1) for c in combinations(ids, s)} | {full}
    elif plan == "ablation":
        out = set(_ablation(ids))
    elif plan == "sampled":
        out = {(i,) for i in ids} | {full}
        total = 2**n - 1
        want = min(total, len(out) + n_sampled)
        if rng is None:
            raise ValueError("the sampled plan draws its subsets from the scene's Generator: pass "
                             "rng=params.rng('subsets')")
        tries = 0
        while len(out) < want and tries < 100 * want:
            tries += 1
            mask = rng.random(n) < 0.5
            if mask.any():
                out.add(tuple(i for i, m in zip(ids, mask) if m))
    else:
        raise SpecError(f"{where}unknown permutation plan {plan!r}; expected full, exhaustive, k-subsets, ablation or sampled")
    return sorted(out, key=lambda s: (len(s), s))


def subset_code(subset: Subset, n_rois: int) -> str:
    """File-name code of a subset: ``all`` for the full set, else ``s0-2-3``."""
    if len(subset) == n_rois:
        return "all"
    return "s" + "-".join(str(i) for i in subset)

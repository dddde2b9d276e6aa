"""Class-presence influence: the effect on a target ROI of "any ROI of class c present"
versus none, beside the instance-level influence of metrics.md §5.

§5's ``influence(r → o)`` compares ``S`` with ``S ∪ {r}``. When a scene holds two or three
ROIs of one class and the detector reacts to the *presence* of that class, adding one more
of them to a context that already holds one changes nothing: every instance-level pair
reads 0 and the cause is invisible to it (redundant causes). The measures here compare
contexts that differ by *all* the other ROIs of one class:

- **presence pair** (within one scene, variant and masking mode): a rendered context
  ``S`` holding the target ``o`` and at least one other ROI of class ``c``, and
  ``strip_c(S) = S \\ {ROIs of class c other than o}``, when that context was rendered too.
  Each ``S`` has at most one partner, so a pair is named by ``S``.
  ``presence_influence(c → o) = P(o hit | strip_c(S)) − P(o hit | S)`` over the pairs:
  positive means the presence of class ``c`` hurts ``o``.
- **class Shapley value**: the game of one target ROI ``o`` in one (scene, variant, mode)
  whose players are the classes of the scene's other ROIs, with value
  ``v(T) = P(o hit | the classes of S \\ {o} are exactly T)`` over rendered contexts ``S ∋ o``.
  Where the plan rendered a context for every coalition ``T`` (exhaustive plans; ablation
  or k-subsets when few classes), the Shapley value of class ``c`` (Shapley, "A value for
  n-person games", 1953; the same exact enumeration as ``shap``'s ExactExplainer, with
  ``v`` as the model and the empty coalition as background) is
  ``φ_c = Σ_{T ⊆ C∖{c}} |T|! (m − |T| − 1)! / m! · (v(T) − v(T ∪ {c}))``, sign as §5
  (positive: the class lowers the hit probability). ``Σ_c φ_c = v(∅) − v(C)``.
  Games with a coalition the plan never rendered have no Shapley value (``complete`` false).

Rows whose target is an ignore region in a context are left out of that context. Only
the outcome table's columns ``scene_id, variant, mode, subset, roi_id, category, outcome``
(and ``ignore`` when present) are read.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from math import factorial
from typing import Any, Iterator, Mapping

import pandas as pd

GROUP = ["scene_id", "variant", "mode"]
#: most classes (players) a Shapley game is enumerated for (2^m coalitions)
MAX_PLAYERS = 8

PAIR_COLUMNS = ["scene_id", "variant", "mode", "target_roi", "target_category", "other_category", "subset_without",
                "subset_with", "n_added", "hit_without", "hit_with"]
SHAPLEY_COLUMNS = ["scene_id", "variant", "mode", "target_roi", "target_category", "other_category", "shapley",
                   "n_players", "n_coalitions", "n_rendered", "complete"]

Contexts = Mapping[frozenset, Mapping[int, bool]]


def _subset(text: Any) -> frozenset:
    return frozenset(int(x) for x in str(text).split(",") if x != "")


def roi_classes(outcomes: pd.DataFrame) -> dict[tuple[int, int], Any]:
    """(scene_id, roi_id) -> category."""
    first = outcomes[["scene_id", "roi_id", "category"]].drop_duplicates(["scene_id", "roi_id"])
    return {(int(s), int(r)): c for s, r, c in first.itertuples(index=False)}


def contexts(outcomes: pd.DataFrame) -> Iterator[tuple[tuple[int, str, str], dict[frozenset, dict[int, bool]]]]:
    """Per (scene, variant, mode): rendered subset -> {scored ROI: hit}. Ignore-region and
    not-visible rows are left out (the ROI is not scored in that image)."""
    unscored = [c for c in ("ignore", "not_visible") if c in outcomes.columns]
    cols = GROUP + ["subset", "roi_id", "outcome"] + unscored
    for (scene, variant, mode), g in outcomes[cols].groupby(GROUP, sort=True):
        ctx: dict[frozenset, dict[int, bool]] = defaultdict(dict)
        for row in g.itertuples(index=False):
            s = _subset(row.subset)
            hits = ctx[s]  # the context exists even when every ROI in it is unscored
            if any(bool(getattr(row, c)) for c in unscored):
                continue
            hits[int(row.roi_id)] = row.outcome == "hit"
        yield (int(scene), str(variant), str(mode)), dict(ctx)


def _pairs_of_group(key: tuple[int, str, str], ctx: Contexts, cls: Mapping[tuple[int, int], Any]) -> list[tuple]:
    scene = key[0]
    out = []
    for s, hits in ctx.items():
        for o, hit_with in hits.items():
            by_class: dict[Any, list[int]] = defaultdict(list)
            for r in s - {o}:
                by_class[cls.get((scene, r))].append(r)
            for c, members in by_class.items():
                without = s - set(members)
                partner = ctx.get(without)
                if partner is None or o not in partner:
                    continue
                out.append((*key, o, cls.get((scene, o)), c, ",".join(map(str, sorted(without))),
                            ",".join(map(str, sorted(s))), len(members), bool(partner[o]), bool(hit_with)))
    return out


def presence_pairs(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Every presence pair (module doc), one row per (scene, variant, mode, target, class c,
    context S with c): columns ``PAIR_COLUMNS``; ``n_added`` counts the ROIs of class c
    that S adds to ``strip_c(S)``; ``hit_without`` / ``hit_with`` are the target's outcomes."""
    cls = roi_classes(outcomes)
    rows = [r for key, ctx in contexts(outcomes) for r in _pairs_of_group(key, ctx, cls)]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(
        ["scene_id", "variant", "mode", "target_roi", "other_category", "subset_with"], kind="mergesort",
        ignore_index=True)


def shapley_values(v: Mapping[frozenset, float], players: list[Any]) -> dict[Any, float]:
    """Exact Shapley values of the game ``v`` (coalition -> value, defined on every subset of
    ``players``), with the sign of metrics.md §5: ``φ_c = Σ_T w(T) (v(T) − v(T ∪ {c}))``,
    ``w(T) = |T|! (m − |T| − 1)! / m!`` (Shapley 1953). KeyError when a coalition lacks a value."""
    m = len(players)
    out = {}
    for c in players:
        rest = [p for p in players if p != c]
        phi = 0.0
        for size in range(m):
            w = factorial(size) * factorial(m - size - 1) / factorial(m)
            for t in combinations(rest, size):
                ft = frozenset(t)
                phi += w * (v[ft] - v[ft | {c}])
        out[c] = phi
    return out


def _game_of(scene: int, o: int, ctx: Contexts, cls: Mapping[tuple[int, int], Any]
             ) -> tuple[list[Any], dict[frozenset, float]]:
    """Players (the classes of the group's other ROIs) and the mean hit of ``o`` per
    rendered coalition of classes."""
    everyone = frozenset().union(*ctx.keys()) if ctx else frozenset()
    players = sorted({cls.get((scene, r)) for r in everyone - {o}}, key=str)
    acc: dict[frozenset, list[int]] = defaultdict(lambda: [0, 0])
    for s, hits in ctx.items():
        if o not in hits:
            continue
        t = frozenset(cls.get((scene, r)) for r in s - {o})
        acc[t][0] += int(hits[o])
        acc[t][1] += 1
    return players, {t: k / n for t, (k, n) in acc.items()}


def class_shapley(outcomes: pd.DataFrame, max_players: int = MAX_PLAYERS) -> pd.DataFrame:
    """Per (scene, variant, mode, target ROI, other class): the class Shapley value (module
    doc), ``None`` when the game is not complete (``n_rendered`` of ``n_coalitions``
    coalitions rendered) or has more than ``max_players`` classes. Groups of a single image
    (full scenes) are left out. Columns ``SHAPLEY_COLUMNS``."""
    cls = roi_classes(outcomes)
    rows = []
    for (scene, variant, mode), ctx in contexts(outcomes):
        if len(ctx) < 2:  # one image (a full-scene group): nothing to contrast
            continue
        targets = sorted({o for hits in ctx.values() for o in hits})
        for o in targets:
            players, v = _game_of(scene, o, ctx, cls)
            if not players:
                continue
            m = len(players)
            n_coal = 2 ** m
            complete = m <= max_players and len(v) == n_coal
            phi = shapley_values(v, players) if complete else {}
            for c in players:
                rows.append((scene, variant, mode, o, cls.get((scene, o)), c, phi.get(c), m, n_coal, len(v),
                             complete))
    return pd.DataFrame(rows, columns=SHAPLEY_COLUMNS)


INSTANCE_COLUMNS = ["scene_id", "target_roi", "other_roi", "target_category", "other_category", "n", "n_first",
                    "influence_first"]


def instance_pair_kinds(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Which of §5's instance pairs ``(S, S ∪ {r})`` can show a presence effect of ``r``'s
    class: per (scene, target o, other r), ``n`` pairs (over variants and modes, ``o``
    scored in both images: ignore regions are left out), ``n_first`` of them where
    ``S ∖ {o}`` holds no ROI of ``r``'s class (``r`` is the first of its class), and the
    influence over those (None when ``n_first = 0``). When
    ``n_first = 0`` every pair added ``r`` beside another ROI of its class: a detector that
    reacts to the class's presence reads 0 there (redundant causes)."""
    cls = roi_classes(outcomes)
    acc: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (scene, _v, _m), ctx in contexts(outcomes):
        for with_r, hits_with in ctx.items():  # each rendered S ∪ {r}, and r, when S was rendered too
            for r in with_r:
                without = with_r - {r}
                same_class = {x for x in without if cls.get((scene, x)) == cls.get((scene, r))}
                for o, hit in ctx.get(without, {}).items():
                    if o not in hits_with:
                        continue
                    a = acc[(scene, o, r)]
                    a[0] += 1
                    if not same_class - {o}:
                        a[1] += 1
                        a[2] += int(hit) - int(hits_with[o])
    rows = [(s, o, r, cls.get((s, o)), cls.get((s, r)), n, nf, (d / nf) if nf else None)
            for (s, o, r), (n, nf, d) in sorted(acc.items())]
    return pd.DataFrame(rows, columns=INSTANCE_COLUMNS)

"""Class-presence influence, ranked, with what the plan let us see.

Per (target class, other class c), from ``oddsuite.metrics.presence``:

- ``influence``: mean of ``hit(o | strip_c(S)) − hit(o | S)`` over the presence pairs
  (contexts S with a ROI of class c, against the same context without any of them);
  positive: the presence of class c hurts targets of the class.
- ``breaks``: over the target ROIs (one unit per scene, variant, mode and target ROI),
  the mean fraction of their presence pairs where the target, a hit without class c,
  fails with it; Wilson 95% interval over the units (``metrics.stats.mean_rate``).
- ``shapley``: the mean class Shapley value over the units whose game the plan rendered
  completely (``n_games`` of ``n_units_present``).
- ``instance``: §5's instance pairs ``(S, S ∪ {r})`` with ``r`` of class c: how many there
  were and how many added the *first* ROI of class c (``n_first``). With two or three ROIs
  of one class and an ablation plan, ``n_first`` is 0: a presence defect reads 0 there.

Ranking: ``score = lower bound of breaks − the break rate of all presence pairs`` (every
class pooled), the slices' rule carried over: a row ranks high when adding the class
breaks targets more often than adding any class does, even at the pessimistic end of its
interval; every row is listed, small n included (``small_n``).

Identifiability: a row with no presence pair is reported as *not identifiable* (value
None, never 0) with the plan that would separate it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from oddsuite.metrics.presence import class_shapley, instance_pair_kinds, presence_pairs
from oddsuite.metrics.stats import mean_rate, rate

KEY = ["target_category", "other_category"]
UNIT = ["scene_id", "variant", "mode", "target_roi"]
#: the plans that render {o} and {o, r} for every ROI pair, so that every class's presence is separable
SEPARATING_PLANS = "k-subsets with k = 2 (every subset of at most 2 ROIs: {o} and {o, r} for each pair) or exhaustive"


def _plan_text(plan: str | None) -> str:
    return f"plan {plan!r}" if plan else "this suite's plan"


def _breaks(g: pd.DataFrame) -> dict[str, Any]:
    """Per unit: the fraction of its pairs (target hit without the class) that fail with it."""
    ok = g.loc[g["hit_without"]]
    per_unit = (~ok["hit_with"]).groupby([ok[c] for c in UNIT], sort=True).mean()
    return mean_rate(per_unit.to_numpy(), n_pairs=len(ok))


def _pair_stats(g: pd.DataFrame) -> dict[str, Any]:
    n = len(g)
    return {
        "influence": float((g["hit_without"].astype(int) - g["hit_with"].astype(int)).mean()),
        "n_pairs": int(n), "n_units": int(len(g.drop_duplicates(UNIT))), "n_scenes": int(g["scene_id"].nunique()),
        "hit_without": rate(int(g["hit_without"].sum()), n), "hit_with": rate(int(g["hit_with"].sum()), n),
        "breaks": _breaks(g),
    }


def _empty_stats() -> dict[str, Any]:
    return {"influence": None, "n_pairs": 0, "n_units": 0, "n_scenes": 0, "hit_without": rate(0, 0),
            "hit_with": rate(0, 0), "breaks": mean_rate([], n_pairs=0)}


def _shapley_stats(g: pd.DataFrame) -> dict[str, Any]:
    done = g.loc[g["complete"].astype(bool)]
    return {"shapley": float(done["shapley"].mean()) if len(done) else None, "n_games": int(len(done)),
            "n_units_present": int(len(g))}


def _instance_stats(g: pd.DataFrame | None) -> dict[str, Any]:
    if g is None or not len(g):
        return {"n_pairs": 0, "n_first": 0, "influence_first": None}
    nf = int(g["n_first"].sum())
    w = g.loc[g["n_first"] > 0]
    infl = float((w["influence_first"] * w["n_first"]).sum() / nf) if nf else None
    return {"n_pairs": int(g["n"].sum()), "n_first": nf, "influence_first": infl}


def _contrasts(row: dict[str, Any], plan: str | None) -> tuple[bool, str]:
    """(identifiable, the contrasts the plan provided, in words)."""
    tc, c = row["target_category"], row["other_category"]
    inst = row["instance"]
    said = (f"{row['n_pairs']} presence pair(s) ({tc} with vs without every {c}) for {row['n_units']} of the "
            f"{row['n_units_present']} {tc} ROIs (per variant and mode) with a {c} beside them; "
            f"{inst['n_pairs']} instance pair(s) (S, S ∪ {{{c}}}), "
            f"{inst['n_first']} adding the first {c}; Shapley over classes from {row['n_games']} complete game(s)")
    if row["n_pairs"] > 0:
        return True, said
    why = (f"every instance pair added a {c} beside another {c}" if inst["n_pairs"] and not inst["n_first"]
           else f"no rendered context held a {tc} without any {'other ' if tc == c else ''}{c}")
    return False, (f"not identifiable with {_plan_text(plan)}: {why}; {SEPARATING_PLANS} would separate it. "
                   + said)


def presence_ranking(outcomes: pd.DataFrame, *, plan: str | None = None, min_support: int = 20) -> dict[str, Any]:
    """The ``presence`` section of trace.json (module doc): ``rows`` ranked, ``baseline``
    (break rate of all presence pairs), counts. outcomes: the whole outcome table; plan:
    the suite's permutation plan (named in the identifiability notes); rows whose breaks
    rest on fewer than ``min_support`` units are marked ``small_n``."""
    pairs = presence_pairs(outcomes)
    games = class_shapley(outcomes)
    inst = instance_pair_kinds(outcomes)
    inst_by = {k: g for k, g in inst.groupby(KEY, sort=True, dropna=False)} if len(inst) else {}
    pair_by = {k: g for k, g in pairs.groupby(KEY, sort=True, dropna=False)} if len(pairs) else {}
    baseline = _breaks(pairs) if len(pairs) else mean_rate([], n_pairs=0)
    rows = []
    for key, g in (games.groupby(KEY, sort=True, dropna=False) if len(games) else []):
        row: dict[str, Any] = dict(zip(KEY, key))
        p = pair_by.get(key)
        row.update(_pair_stats(p) if p is not None else _empty_stats())
        row.update(_shapley_stats(g))
        row["instance"] = _instance_stats(inst_by.get(key))
        row["identifiable"], row["contrasts"] = _contrasts(row, plan)
        lo = (row["breaks"]["ci95"] or [None])[0]
        row["score"] = (lo - baseline["value"]) if lo is not None and baseline["value"] is not None else None
        row["small_n"] = bool(row["breaks"]["n"] < min_support)
        rows.append(row)
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] if r["score"] is not None else 0.0),
                             -(r["influence"] if r["influence"] is not None else -9.0), str(r["target_category"]),
                             str(r["other_category"])))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return {"plan": plan, "baseline": baseline, "n_pairs": int(len(pairs)), "min_support": int(min_support),
            "n_not_identifiable": int(sum(not r["identifiable"] for r in rows)), "rows": rows,
            "separating_plans": SEPARATING_PLANS}


def presence_summary(r: dict[str, Any]) -> str:
    """'car present → person: influence +0.93, break rate 0.95 [0.88, 0.98] over 60 targets
    (120 pairs), Shapley +0.90 (40 games)' or the not-identifiable note."""
    head = f"{r['other_category']} present → {r['target_category']}"
    if not r["identifiable"]:
        return f"{head}: {r['contrasts'].split(':')[0]}"
    b = r["breaks"]
    br = (f"break rate {b['value']:.2f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}] over {b['n']} target(s)"
          if b["value"] is not None else "break rate undefined (never a hit without it)")
    sh = f", Shapley {r['shapley']:+.2f} ({r['n_games']} games)" if r["shapley"] is not None else ""
    return (f"{head}: influence {r['influence']:+.2f}, {br} ({r['n_pairs']} pairs){sh}"
            + (" [small n]" if r["small_n"] else ""))


def top_presence(section: dict[str, Any] | None, k: int = 3) -> list[dict[str, Any]]:
    """The rows with a positive score (clearly harmful), best first."""
    rows = (section or {}).get("rows") or []
    return [r for r in rows if r.get("score") is not None and r["score"] > 0 and np.isfinite(r["score"])][:k]

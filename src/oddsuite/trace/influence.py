"""ROI influence: which co-present ROIs break a failing ROI, by class and relative position.

Two measures, both per (target class, other class, relation):

- ``influence``: the pair-weighted mean of metrics.md §5's ``influence(r → o) = P(o hit |
  S) − P(o hit | S ∪ {r})`` (the values of metrics.json where present, else computed with
  ``oddsuite.metrics.roi_influence``). Positive: adding ``r`` to the image hurts ``o``.
  ``n_pairs`` counts the (S, S ∪ {r}) image pairs behind it.
- ``breaks``: from the outcome table, among the (ROI, context) pairs of context accuracy
  (``o`` is a hit alone, ``|S| ≥ 2``, same variant and mode), how often ``o`` fails when
  ``r`` is among the other ROIs of ``S`` (a rate over those co-presences, Wilson
  interval). It is observational: the other ROIs of ``S`` are there too.

Identifiability: a row whose every image pair added ``r`` to a context that already held
another ROI of ``r``'s class (an ablation plan with two or three cars) cannot show an
effect of the class being present; its ``influence`` is None (not 0), ``identifiable`` is
false, ``note`` says why and ``influence_additional`` keeps the measured effect of one
more instance. The class-level measure for that case is ``oddsuite.trace.presence``.

Relation of ``r`` to ``o``: ``in front`` (nearer the camera along its axis) or ``behind``;
``left`` or ``right`` in the image; ``overlapping`` or ``apart`` boxes. Image side and
overlap come from the ROIs' full (unoccluded) boxes in the suite's full-scene images when
the suite is at hand; without it the side comes from the ground-plane lateral position
and the overlap is ``unknown``.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from oddsuite.metrics.context import context_pairs, roi_influence
from oddsuite.metrics.presence import instance_pair_kinds, roi_classes
from oddsuite.metrics.stats import rate

Box = tuple[float, float, float, float]


def roi_positions(outcomes: pd.DataFrame) -> dict[tuple[int, int], tuple[float, float]]:
    """(scene_id, roi_id) -> (forward x, lateral y) in metres on the ground plane (camera at
    the origin looking along +x, +y to the left), from the ``roi.`` columns."""
    xcol = next((c for c in ("roi.x_m", "roi.distance_m") if c in outcomes.columns), None)
    ycol = next((c for c in ("roi.y_m", "roi.lateral_m") if c in outcomes.columns), None)
    if xcol is None:
        return {}
    cols = ["scene_id", "roi_id", xcol] + ([ycol] if ycol else [])
    first = outcomes[cols].drop_duplicates(["scene_id", "roi_id"])
    out = {}
    for r in first.itertuples(index=False):
        y = float(r[3]) if ycol else float("nan")
        out[(int(r[0]), int(r[1]))] = (float(r[2]), y)
    return out


def full_boxes(gt: Mapping[str, Any]) -> dict[tuple[int, int], Box]:
    """(scene_id, roi_id) -> the ROI's full (unoccluded) box, xywh, in the first full-scene
    image of its scene (``full_bbox`` of annotations.json, else its visible ``bbox``)."""
    first_full: dict[int, int] = {}
    for im in gt.get("images", []):
        if im.get("is_full") and int(im["scene_id"]) not in first_full:
            first_full[int(im["scene_id"])] = int(im["id"])
    wanted = {v: k for k, v in first_full.items()}
    out: dict[tuple[int, int], Box] = {}
    for a in gt.get("annotations", []):
        scene = wanted.get(int(a["image_id"]))
        if scene is None:
            continue
        box = a.get("full_bbox") or a.get("bbox")
        if box and len(box) == 4:
            out[(scene, int(a["roi_id"]))] = tuple(float(v) for v in box)  # type: ignore[assignment]
    return out


def relation(scene: int, o: int, r: int, positions: Mapping[tuple[int, int], tuple[float, float]],
             boxes: Mapping[tuple[int, int], Box] | None) -> dict[str, str]:
    """Where ROI ``r`` is relative to ROI ``o`` (module doc)."""
    po, pr = positions.get((scene, o)), positions.get((scene, r))
    depth = side = overlap = "unknown"
    if po is not None and pr is not None:
        depth = "in front" if pr[0] < po[0] else "behind"
        if np.isfinite(po[1]) and np.isfinite(pr[1]):
            side = "left" if pr[1] > po[1] else "right"
    bo = boxes.get((scene, o)) if boxes else None
    br = boxes.get((scene, r)) if boxes else None
    if bo is not None and br is not None:
        side = "left" if br[0] + br[2] / 2 < bo[0] + bo[2] / 2 else "right"
        iw = min(bo[0] + bo[2], br[0] + br[2]) - max(bo[0], br[0])
        ih = min(bo[1] + bo[3], br[1] + br[3]) - max(bo[1], br[1])
        overlap = "overlapping" if (iw > 0 and ih > 0) else "apart"
    return {"depth": depth, "side": side, "overlap": overlap}


def relation_text(rel: Mapping[str, str]) -> str:
    parts = [rel["depth"], rel["side"]]
    if rel["overlap"] != "unknown":
        parts.append(rel["overlap"] + " box")
    return ", ".join(p for p in parts if p != "unknown") or "unknown"


REL = ["depth", "side", "overlap"]
#: (scene, target, other) pairs searched for an example image pair per row
MAX_FLIP_CANDIDATES = 20
KEY = ["target_category", "other_category"] + REL


FlipIndex = Mapping[int, Mapping[tuple[str, str], Mapping[frozenset, tuple[int, dict[int, bool]]]]]


def _flip_index(outcomes: pd.DataFrame) -> dict[int, dict[tuple[str, str], dict[frozenset, tuple[int, dict[int, bool]]]]]:
    """scene -> (variant, mode) -> subset -> (image id, {roi: hit})."""
    idx: dict[int, dict[tuple[str, str], dict[frozenset, tuple[int, dict[int, bool]]]]] = defaultdict(
        lambda: defaultdict(dict))
    cols = ["image_id", "scene_id", "variant", "mode", "subset", "roi_id", "outcome"]
    for r in outcomes[cols].itertuples(index=False):
        s = frozenset(int(x) for x in str(r.subset).split(",") if x != "")
        slot = idx[int(r.scene_id)][(str(r.variant), str(r.mode))].setdefault(s, (int(r.image_id), {}))
        slot[1][int(r.roi_id)] = r.outcome == "hit"
    return idx


def find_flip(index: FlipIndex, scene: int, o: int, r: int) -> dict[str, Any] | None:
    """A pair of images of one scene, variant and mode where ROI ``o`` is a hit without ``r``
    and not a hit once ``r`` is added (the smallest such context first)."""
    for (variant, mode), subsets in sorted(index.get(scene, {}).items()):
        for s in sorted(subsets, key=lambda s: (len(s), sorted(s))):
            if o not in s or r in s:
                continue
            with_r = subsets.get(s | {r})
            if with_r is None:
                continue
            img_a, hits_a = subsets[s]
            img_b, hits_b = with_r
            if hits_a.get(o) and o in hits_b and not hits_b[o]:
                return {"scene_id": scene, "variant": variant, "mode": mode, "target_roi": o, "other_roi": r,
                        "image_without": img_a, "image_with": img_b,
                        "subset_without": sorted(s), "subset_with": sorted(s | {r})}
    return None


RelationFn = Callable[[int, int, int], dict[str, str]]


def _relations(outcomes: pd.DataFrame, boxes: Mapping[tuple[int, int], Box] | None) -> RelationFn:
    """A cached ``relation(scene, o, r)`` over the outcome table's positions and the boxes."""
    positions = roi_positions(outcomes)
    cache: dict[tuple[int, int, int], dict[str, str]] = {}

    def rel(s: int, o: int, r: int) -> dict[str, str]:
        key = (s, o, r)
        if key not in cache:
            cache[key] = relation(s, o, r, positions, boxes)
        return cache[key]

    return rel


def _add_relations(table: pd.DataFrame, rel: RelationFn) -> pd.DataFrame:
    """``table`` (columns scene_id, target_roi, other_roi) with the REL columns added."""
    out = table.copy()
    if not len(out):
        for k in REL:
            out[k] = pd.Series(dtype=str)
        return out
    rels = [rel(int(s), int(o), int(r)) for s, o, r in out[["scene_id", "target_roi", "other_roi"]].itertuples(index=False)]
    for k in REL:
        out[k] = [x[k] for x in rels]
    return out


def co_presence_breaks(pairs: pd.DataFrame, cats: Mapping[tuple[int, int], Any], rel: RelationFn) -> pd.DataFrame:
    """One row per (context pair of context accuracy, other ROI r in its S): ``broken`` when
    the target, a hit alone, fails in S (module doc, ``breaks``)."""
    rows = []
    for p in pairs[["scene_id", "roi_id", "subset", "category", "hit"]].itertuples(index=False):
        s, o = int(p.scene_id), int(p.roi_id)
        for x in str(p.subset).split(","):
            if x == "" or int(x) == o:
                continue
            rows.append((s, o, int(x), p.category, not bool(p.hit)))
    brk = pd.DataFrame(rows, columns=["scene_id", "target_roi", "other_roi", "target_category", "broken"])
    if len(brk):
        brk["other_category"] = [cats.get((s, r)) for s, r in brk[["scene_id", "other_roi"]].itertuples(index=False)]
    return _add_relations(brk, rel)


def _identifiability(g: pd.DataFrame, other: Any) -> dict[str, Any]:
    """From the instance pairs' kinds (``metrics.presence.instance_pair_kinds`` joined on
    the (scene, target, other) rows of ``g``): whether any pair added the first ROI of the
    class; when none did, the influence is not a measure of the class's presence."""
    n_first = int(g["n_first"].fillna(0).sum()) if "n_first" in g.columns else 0
    redundant = n_first == 0 and int(g["n"].sum()) > 0
    return {"n_pairs_first": n_first, "identifiable": not redundant,
            "note": (f"every image pair added a {other} beside another {other}: an effect of any {other} being "
                     f"present cannot show here (see presence influence)") if redundant else None}


def _class_rows(infl: pd.DataFrame, brk: pd.DataFrame) -> dict[tuple, dict[str, Any]]:
    """(target class, other class, relation) -> influence, pair counts, identifiability, breaks."""
    rows: dict[tuple, dict[str, Any]] = {}
    if len(infl):
        w = infl.assign(weighted=infl["influence"] * infl["n"])
        for key, g in w.groupby(KEY, sort=True, dropna=False):
            n = int(g["n"].sum())
            value = float(g["weighted"].sum() / n) if n else None
            ident = _identifiability(g, key[1])
            rows[key] = {"influence": value if ident["identifiable"] else None,
                         "influence_additional": value, "n_pairs": n, "n_roi_pairs": int(len(g)),
                         "n_harmful_roi_pairs": int((g["influence"] > 0).sum()), **ident}
    if len(brk):
        for key, g in brk.groupby(KEY, sort=True, dropna=False):
            rows.setdefault(key, {"influence": None, "influence_additional": None, "n_pairs": 0, "n_roi_pairs": 0,
                                  "n_harmful_roi_pairs": 0, "n_pairs_first": 0, "identifiable": True, "note": None})
            rows[key]["breaks"] = rate(int(g["broken"].sum()), int(len(g)))
    return rows


def _row_order(min_pairs: int) -> Callable[[dict[str, Any]], tuple]:
    def key(r: dict[str, Any]) -> tuple:
        return (not (r["n_pairs"] >= min_pairs), -(r["influence"] if r["influence"] is not None else -9),
                -(r["breaks"]["ci95"][0] if r["breaks"]["ci95"] else -1), str(r["other_category"]), r["relation"])
    return key


def _attach_examples(lst: list[dict[str, Any]], tc: Any, infl: pd.DataFrame, flip_index: FlipIndex, k: int) -> None:
    """Give up to ``k`` harmful rows an example image pair where the target flips."""
    shown = 0
    for r in lst:
        if shown >= k or not r["influence"] or r["influence"] <= 0:
            continue
        cand = infl.loc[(infl["target_category"] == tc) & (infl["other_category"] == r["other_category"])
                        & (infl["depth"] == r["depth"]) & (infl["side"] == r["side"])
                        & (infl["overlap"] == r["overlap"]) & (infl["influence"] > 0)]
        cand = cand.sort_values(["influence", "n", "scene_id", "target_roi", "other_roi"],
                                ascending=[False, False, True, True, True], kind="mergesort")
        for c in cand.head(MAX_FLIP_CANDIDATES).itertuples(index=False):
            ex = find_flip(flip_index, int(c.scene_id), int(c.target_roi), int(c.other_roi))
            if ex is not None:
                r["example"] = ex
                shown += 1
                break


def _by_target_class(rows: Mapping[tuple, dict[str, Any]], failures_by_class: Mapping[str, int], infl: pd.DataFrame,
                     flip_index: FlipIndex, *, min_pairs: int, top_rows: int, examples: int) -> list[dict[str, Any]]:
    """Per failing class (most failures first): its ``top_rows`` rows, best first, with examples."""
    out = []
    for tc, n_fail in sorted(failures_by_class.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if not n_fail:
            continue
        lst = []
        for key, v in rows.items():
            if key[0] != tc:
                continue
            r = dict(zip(KEY, key))
            r.update(v)
            r.setdefault("breaks", rate(0, 0))
            r["relation"] = relation_text(r)
            lst.append(r)
        lst.sort(key=_row_order(min_pairs))
        lst = lst[:top_rows]
        if examples:
            _attach_examples(lst, tc, infl, flip_index, examples)
        out.append({"target_category": tc, "failures": int(n_fail), "rows": lst})
    return out


def _class_matrix(infl: pd.DataFrame) -> list[dict[str, Any]]:
    """Pair-weighted mean influence per (target class, other class)."""
    out = []
    if len(infl):
        w = infl.assign(weighted=infl["influence"] * infl["n"])
        for (tc, oc), g in w.groupby(["target_category", "other_category"], sort=True, dropna=False):
            n = int(g["n"].sum())
            out.append({"target_category": tc, "other_category": oc,
                        "influence": float(g["weighted"].sum() / n) if n else None, "n": n})
    return out


def _per_roi(infl: pd.DataFrame, failures_by_roi: Mapping[tuple[int, int], int],
             cats: Mapping[tuple[int, int], Any], top_rois: int) -> list[dict[str, Any]]:
    """The ``top_rois`` most failing ROIs, each with the (up to 3) other ROIs that hurt it most."""
    out = []
    for (s, o), n_fail in sorted(failures_by_roi.items(), key=lambda kv: (-kv[1], kv[0]))[:top_rois]:
        g = infl.loc[(infl["scene_id"] == s) & (infl["target_roi"] == o) & (infl["influence"] > 0)] if len(infl) \
            else infl
        g = g.sort_values(["influence", "n", "other_roi"], ascending=[False, False, True], kind="mergesort").head(3)
        others = [{"other_roi": int(r.other_roi), "other_category": r.other_category, "influence": float(r.influence),
                   "p_hit_without": float(r.p_hit_without), "p_hit_with": float(r.p_hit_with), "n": int(r.n),
                   "relation": relation_text({"depth": r.depth, "side": r.side, "overlap": r.overlap})}
                  for r in g.itertuples(index=False)]
        out.append({"scene_id": s, "target_roi": o, "target_category": cats.get((s, o)), "failures": int(n_fail),
                    "others": others})
    return out


def _failure_counts(outcomes: pd.DataFrame) -> tuple[dict[str, int], dict[tuple[int, int], int]]:
    """Failures (scored rows, neither ignore nor not visible, that are not hits) per class and
    per (scene, ROI)."""
    scored = outcomes.loc[~(outcomes["ignore"].astype(bool) | outcomes["not_visible"].astype(bool))]
    f = scored.loc[scored["outcome"] != "hit"]
    return (f.groupby("category").size().to_dict(),
            {(int(s), int(r)): int(n) for (s, r), n in f.groupby(["scene_id", "roi_id"]).size().items()})


def influence_ranking(outcomes: pd.DataFrame, *, influence: pd.DataFrame | None = None,
                      boxes: Mapping[tuple[int, int], Box] | None = None,
                      failures_by_class: Mapping[str, int] | None = None,
                      failures_by_roi: Mapping[tuple[int, int], int] | None = None,
                      min_pairs: int = 5, top_rows: int = 8, top_rois: int = 15, examples_per_class: int = 2
                      ) -> dict[str, Any]:
    """The ROI-influence section of trace.json (module doc).

    outcomes: the whole outcome table (every image); influence: the (scene, target, other)
    table of metrics (None: computed here); failures_by_class / failures_by_roi: failure
    counts of the traced rows, which decide the failing classes and ROIs listed (None:
    counted over ``outcomes``' scored rows). Rows with fewer than ``min_pairs`` image
    pairs are listed after the others. A row whose every image pair added the other ROI
    beside another of its class has ``influence`` None and ``identifiable`` false (its
    measured value is ``influence_additional``): a presence effect cannot show there.
    """
    source = "metrics.json"
    if influence is None:
        influence = roi_influence(outcomes)
        source = "computed from outcomes.parquet"
    counted = _failure_counts(outcomes) if failures_by_class is None or failures_by_roi is None else None
    failures_by_class = failures_by_class if failures_by_class is not None else counted[0]
    failures_by_roi = failures_by_roi if failures_by_roi is not None else counted[1]
    rel = _relations(outcomes, boxes)
    cats = roi_classes(outcomes)
    kinds = instance_pair_kinds(outcomes)[["scene_id", "target_roi", "other_roi", "n_first"]]
    infl = _add_relations(influence, rel)
    if len(infl):
        infl = infl.merge(kinds, on=["scene_id", "target_roi", "other_roi"], how="left")
    pairs = context_pairs(outcomes)
    pairs = pairs.loc[~pairs["occluded"]]
    brk = co_presence_breaks(pairs, cats, rel)
    rows = _class_rows(infl, brk)
    flip_index = _flip_index(outcomes) if examples_per_class else {}
    return {
        "source": source,
        "positions": ("full boxes of the suite's full-scene images" if boxes
                      else "ground-plane positions (suite not available: overlap unknown)"),
        "min_pairs": int(min_pairs),
        "n_pairs": int(influence["n"].sum()) if len(influence) else 0,
        "n_roi_pairs": int(len(influence)),
        "n_context_pairs": int(len(pairs)),
        "by_target_class": _by_target_class(rows, failures_by_class, infl, flip_index, min_pairs=min_pairs,
                                            top_rows=top_rows, examples=examples_per_class),
        "class_matrix": _class_matrix(infl),
        "per_roi": _per_roi(infl, failures_by_roi, cats, top_rois),
    }

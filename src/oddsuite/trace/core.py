"""Trace failures to scene conditions and ROIs: one results folder in, trace.json + figures out.

``trace_outcomes`` works on tables (the outcome table, optionally the ROI-influence table
and the ROIs' boxes); ``trace_results`` reads a results folder (docs/FORMAT.md), runs it and
writes ``RESULTS_DIR/trace/trace.json`` and PNG figures. trace.json holds, with every rate's
count and Wilson 95% interval:

- ``overall``: failures among the traced ROI rows;
- ``dimensions``: every condition dimension with its levels (and the columns skipped);
- ``slices``: every level of every dimension, small n included (``small_n``), and every
  cell of the heatmap pairs (``kind`` ``conjunction``: two conditions at once), conditionally
  ranked: each on what the slices above it leave unexplained (``oddsuite.trace.slices``),
  the first ones with example failing rows;
- ``pairs``: the pairs of dimensions whose cells explain the most failures, cell tables
  (drawn as heatmaps);
- ``rules``: the leaves of a shallow decision tree as readable rules, with examples;
- ``influence``: which co-present ROIs break each failing ROI class, by class and relative
  position, instance by instance (``oddsuite.trace.influence``);
- ``presence``: the effect of any ROI of a class being present, with the contrasts the
  plan provided and what it could not separate (``oddsuite.trace.presence``).

A results folder evaluated under inference conditions (``evaluate --inference``, metrics.md
§7) adds the conditions' outcome tables to the slicing rows, the reference's rows labelled
``inference = reference``: the condition is a dimension like any other (``inference =
tiles:2x2:0.2``), and so is ``tile_cut``. Influence and presence stay the reference's.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.fileio import atomic_write_bytes, write_json
from oddsuite.errors import OddsuiteError
from oddsuite.suite.layout import ANNOTATIONS, MANIFEST
from oddsuite.suite.manifest import read_manifest
from oddsuite.suite.reader import read_annotations
from oddsuite.metrics.reduced_context import INFERENCE_COLUMN, REFERENCE
from oddsuite.metrics.stats import json_clean
from oddsuite.trace.dimensions import build_dimensions
from oddsuite.trace.influence import full_boxes, influence_ranking
from oddsuite.trace.rules import MAX_DEPTH, decision_rules
from oddsuite.trace.presence import presence_ranking
from oddsuite.trace.summary import rate_summary
from oddsuite.trace.slices import (IMAGE_SETS, conditional_ranking, conjunction_slices, equivalent_levels,
                                   failure_rows, level_table, overall, pair_tables, rank_key, rank_slices)

log = logging.getLogger(__name__)

FORMAT = "oddsuite-trace/1"
TRACE_DIR = "trace"
TRACE_JSON = "trace.json"
DEFAULT_MIN_SUPPORT = 20
#: slices and rules that get example rows
N_EXAMPLE_SLICES = 10

RANKING_TEXT = ("marginal score = lower Wilson 95% bound of the slice's failure rate - overall failure rate; slices "
                "ranked by conditional score: the same on the rows no earlier-ranked slice covers, against their rate")

IMAGE_SET_TEXT = {
    "full": "full-scene images (every ROI present)",
    "permutation": "permutation images (ROI subsets, the rest masked)",
    "all": "all images (full scenes and permutations)",
}


@dataclass(frozen=True)
class Trace:
    """data: the trace.json dict; figures: file name -> PNG bytes."""

    data: dict[str, Any]
    figures: dict[str, bytes]


def _examples(rows: pd.DataFrame, mask: np.ndarray, k: int) -> list[dict[str, Any]]:
    """Up to ``k`` failing rows of ``mask``, from distinct scenes where possible, clearly
    visible ROIs first (a failure on a fully visible object is the convincing one)."""
    sub = rows.loc[mask & rows["failure"].to_numpy()]
    if not len(sub) or k <= 0:
        return []
    vis = sub["visible_fraction"].fillna(0.0) if "visible_fraction" in sub.columns else pd.Series(0.0, index=sub.index)
    sub = sub.assign(_vis=-vis).sort_values(["_vis", "scene_id", "variant", "roi_id", "image_id"], kind="mergesort")
    picked, seen = [], set()
    for _, r in sub.iterrows():
        if r["scene_id"] in seen:
            continue
        seen.add(r["scene_id"])
        picked.append(r)
        if len(picked) >= k:
            break
    if len(picked) < k:
        ids = {int(r["image_id"]) * 100003 + int(r["roi_id"]) for r in picked}
        for _, r in sub.iterrows():
            if len(picked) >= k:
                break
            key = int(r["image_id"]) * 100003 + int(r["roi_id"])
            if key not in ids:
                ids.add(key)
                picked.append(r)
    out = []
    for r in picked:
        out.append({"image_id": int(r["image_id"]), "scene_id": int(r["scene_id"]), "roi_id": int(r["roi_id"]),
                    "variant": str(r["variant"]), "mode": str(r["mode"]), "category": r.get("category"),
                    "outcome": str(r["outcome"]),
                    "visible_fraction": float(r["visible_fraction"]) if "visible_fraction" in r else None})
        if INFERENCE_COLUMN in r:
            out[-1][INFERENCE_COLUMN] = str(r[INFERENCE_COLUMN])
    return out


#: kept for the report, which imports it by this name
_summary = rate_summary


def _merge_identical(ranked: list[dict[str, Any]], masks: Sequence[np.ndarray]
                     ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Slices holding exactly the same rows as a better-ranked one (e.g. a variant that fixes
    the fog, or several parameters of one scene) are folded into it: its ``same_rows`` lists
    their conditions. Returns the kept slices and their masks."""
    seen: dict[bytes, dict[str, Any]] = {}
    out, out_masks = [], []
    for s, mask in zip(ranked, masks):
        key = hashlib.sha256(np.packbits(mask).tobytes() + str(len(mask)).encode()).digest()
        first = seen.get(key)
        if first is not None:
            first["same_rows"].append(s["condition"])
            continue
        s["same_rows"] = []
        seen[key] = s
        out.append(s)
        out_masks.append(mask)
    return out, out_masks


def _ranked_slices(rows: pd.DataFrame, dims: Sequence[Any], tables: Sequence[list[dict[str, Any]]],
                   pairs: Sequence[Mapping[str, Any]], n_examples: int) -> list[dict[str, Any]]:
    """Every level slice and every cell of the heatmap pairs (a conjunction of two
    conditions): identical ones folded, conditionally ranked, summaries and examples."""
    by_col = {d.column: d for d in dims}
    cands = [(s, by_col[s["dimension"]].codes == s["level_index"]) for s in rank_slices(tables)]
    cands += conjunction_slices(pairs, by_col, equivalent_levels(dims))
    cands.sort(key=lambda sm: rank_key(sm[0]))
    merged, masks = _merge_identical([c[0] for c in cands], [c[1] for c in cands])
    mask_of = {id(s): m for s, m in zip(merged, masks)}
    ranked = conditional_ranking(merged, masks, rows["failure"].to_numpy(dtype=bool))
    for s in ranked:
        s["summary"] = _summary(s["condition"], s)
    for s in ranked[:N_EXAMPLE_SLICES]:
        s["examples"] = _examples(rows, mask_of[id(s)], n_examples)
    return ranked


def _rules(rows: pd.DataFrame, dims: Sequence[Any], *, max_depth: int, min_leaf: int, seed: int,
           n_examples: int) -> dict[str, Any]:
    """The rule tree with summaries and, for rules above the overall rate, examples."""
    tree = decision_rules(rows, dims, max_depth=max_depth, min_leaf=min_leaf, seed=seed)
    leaf_of_row = tree.pop("leaf_of_row")
    for i, r in enumerate(tree["rules"]):
        r["examples"] = _examples(rows, leaf_of_row == i, n_examples) if r["above_overall"] else []
        r["summary"] = _summary(r["text"], r)
    return tree


def _roi_influence(outcomes: pd.DataFrame, rows: pd.DataFrame, influence: pd.DataFrame | None,
                   boxes: Mapping[tuple[int, int], tuple[float, float, float, float]] | None) -> dict[str, Any]:
    """Instance-level ROI influence for the classes and ROIs that fail among the traced rows."""
    fails = rows.loc[rows["failure"]]
    by_class = fails.groupby("category").size().to_dict() if "category" in rows.columns else {}
    by_roi = {(int(s), int(r)): int(n) for (s, r), n in fails.groupby(["scene_id", "roi_id"]).size().items()}
    return influence_ranking(outcomes, influence=influence, boxes=boxes, failures_by_class=by_class,
                             failures_by_roi=by_roi)


def _settings(image_set: str, min_support: int, max_depth: int, min_leaf: int, seed: int, top_pairs: int,
              bins: Mapping[str, Sequence[float]] | None, plan: str | None) -> dict[str, Any]:
    return {"image_set": image_set, "image_set_text": IMAGE_SET_TEXT[image_set], "min_support": int(min_support),
            "max_depth": int(max_depth), "min_leaf": int(min_leaf), "seed": int(seed), "top_pairs": int(top_pairs),
            "bins": {k: list(v) for k, v in (bins or {}).items()}, "plan": plan,
            "failure": "outcome != hit (miss or mislabel); ignore-region and not-visible rows excluded",
            "ranking": RANKING_TEXT}


def trace_outcomes(outcomes: pd.DataFrame, *, influence: pd.DataFrame | None = None,
                   boxes: Mapping[tuple[int, int], tuple[float, float, float, float]] | None = None,
                   image_set: str = "full", min_support: int = DEFAULT_MIN_SUPPORT, max_depth: int = MAX_DEPTH,
                   min_leaf: int | None = None, seed: int = 0, top_pairs: int = 4,
                   bins: Mapping[str, Sequence[float]] | None = None, n_examples: int = 3,
                   plan: str | None = None, conditions: pd.DataFrame | None = None) -> dict[str, Any]:
    """The trace.json dict (module doc) of one outcome table (outcomes.parquet's columns).

    image_set: ``full`` | ``permutation`` | ``all`` (``oddsuite.trace.slices.failure_rows``);
    min_support: slices, heatmap cells and presence rows with fewer ROI rows (units) are
    marked ``small_n`` (still shown and ranked by their lower bound); it is also the rule
    tree's fewest rows per leaf unless ``min_leaf`` is given; bins: user bin edges per
    column; plan: the suite's permutation plan, named where it cannot separate a cause;
    conditions: the outcome rows of other inference conditions (column ``inference``), sliced
    with ``outcomes`` (module doc).
    """
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support}")
    table = outcomes
    if conditions is not None and len(conditions):
        table = pd.concat([outcomes.assign(**{INFERENCE_COLUMN: REFERENCE}), conditions], ignore_index=True)
    rows = failure_rows(table, image_set)
    dims, skipped = build_dimensions(rows, bins=bins)
    tables = [level_table(rows, d, min_support=min_support) for d in dims]
    pairs = pair_tables(rows, dims, min_support=min_support, top=top_pairs)
    for i, p in enumerate(pairs, 1):
        p["figure"] = f"heatmap_{i}.png"
    tree = _rules(rows, dims, max_depth=max_depth, min_leaf=min_leaf or min_support, seed=seed,
                  n_examples=n_examples)
    settings = _settings(image_set, min_support, max_depth, min_leaf or min_support, seed, top_pairs, bins, plan)
    if table is not outcomes:
        names = list(dict.fromkeys(table[INFERENCE_COLUMN].astype(str)))
        settings["inference"] = names
        settings["image_set_text"] += f", under {len(names)} inference conditions ({', '.join(names)})"
    data = {
        "format": FORMAT,
        "settings": settings,
        "overall": overall(rows),
        "dimensions": [{**d.describe(), "table": t} for d, t in zip(dims, tables)],
        "skipped_columns": skipped,
        "slices": _ranked_slices(rows, dims, tables, pairs, n_examples),
        "n_small_slices": sum(1 for t in tables for s in t if s["small_n"]),
        "pairs": pairs,
        "tree": {"settings": tree["settings"], "importance": tree["importance"]},
        "rules": tree["rules"],
        "influence": _roi_influence(outcomes, rows if table is outcomes else
                                    rows.loc[rows[INFERENCE_COLUMN] == REFERENCE], influence, boxes),
        "presence": presence_ranking(outcomes, plan=plan, min_support=min_support),
    }
    return json_clean(data)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OddsuiteError(f"{path}: not readable JSON ({e})") from e


def recorded_suite(results_dir: Path) -> tuple[Path | None, str]:
    """The suite that ``results_dir``'s run.json names, when it still holds annotations.json;
    else None and why, in words (no run.json, unreadable, no suite.path, the suite gone)."""
    run = results_dir / "run.json"
    if not run.is_file():
        return None, "it has no run.json, which `oddsuite evaluate` writes: is it a results folder?"
    try:
        path = json.loads(run.read_text(encoding="utf-8")).get("suite", {}).get("path")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None, f"{run} cannot be read as JSON with a suite.path"
    if not path:
        return None, f"{run} names no suite.path"
    if not (Path(path) / ANNOTATIONS).is_file():
        return None, f"run.json's suite path {path} holds no annotations.json any more"
    return Path(path), ""


def find_suite(results_dir: Path, suite_dir: str | Path | None = None) -> Path | None:
    """The suite a results folder was made from: ``suite_dir`` when given, else run.json's
    suite path when it still exists (``recorded_suite``). None when neither is at hand."""
    if suite_dir is not None:
        p = Path(suite_dir)
        if not (p / ANNOTATIONS).is_file():
            raise OddsuiteError(f"{p}: not a suite folder (no annotations.json)")
        return p
    return recorded_suite(results_dir)[0]


def suite_plan(suite: Path) -> str | None:
    """The permutation plan of a suite as its manifest records it (``k-subsets`` with its
    k), None when the manifest does not say."""
    if not (suite / MANIFEST).is_file():
        return None
    plan = read_manifest(suite).get("plan")
    if not isinstance(plan, Mapping) or not plan.get("plan"):
        return None
    name = str(plan["plan"])
    return f"{name} (k = {plan['k']})" if name == "k-subsets" and "k" in plan else name


def load_outcomes(results_dir: str | Path) -> pd.DataFrame:
    path = Path(results_dir) / "outcomes.parquet"
    if not path.is_file():
        raise OddsuiteError(f"{path}: missing; run `oddsuite evaluate` first (docs/FORMAT.md)")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types
        raise OddsuiteError(f"{path}: not a readable parquet file ({e})") from e


def load_influence(results_dir: str | Path) -> pd.DataFrame | None:
    """The (scene, target, other) influence pairs of metrics.json, or None when absent."""
    path = Path(results_dir) / "metrics.json"
    if not path.is_file():
        return None
    pairs = (_read_json(path).get("influence") or {}).get("pairs")
    if pairs is None:
        return None
    cols = ["scene_id", "target_roi", "other_roi", "target_category", "other_category", "influence",
            "p_hit_without", "p_hit_with", "n"]
    df = pd.DataFrame(pairs, columns=cols)
    return df.dropna(subset=["influence"])


def load_condition_outcomes(results_dir: str | Path) -> pd.DataFrame | None:
    """The outcome tables of the inference conditions that metrics.json's ``reduced_context``
    lists (``evaluate --inference``), concatenated; None when there are none."""
    res = Path(results_dir)
    path = res / "metrics.json"
    section = _read_json(path).get("reduced_context") if path.is_file() else None
    if not isinstance(section, Mapping):
        return None
    tables = []
    for c in section.get("conditions") or []:
        if c.get("folder") in (None, "."):
            continue
        p = res / str(c["folder"]) / "outcomes.parquet"
        if not p.is_file():
            raise OddsuiteError(f"{p}: missing, but {path} lists inference condition {c.get('name')!r}; run the "
                                f"same `oddsuite evaluate --inference` again to finish it")
        tables.append(load_outcomes(p.parent))
    return pd.concat(tables, ignore_index=True) if tables else None


def trace_results(results_dir: str | Path, *, suite_dir: str | Path | None = None, write: bool = True,
                  out_dir: str | Path | None = None, **options: Any) -> Trace:
    """Trace a results folder (outcomes.parquet; metrics.json and the suite when there).

    Writes ``trace.json`` and the figures into ``out_dir`` (default ``RESULTS_DIR/trace``)
    when ``write``. ``options`` are those of ``trace_outcomes``.
    """
    from oddsuite.trace.figures import trace_figures

    res = Path(results_dir)
    if not res.is_dir():
        raise OddsuiteError(f"{res}: not a results folder")
    if options.get("image_set", "full") not in IMAGE_SETS:
        raise OddsuiteError(f"image set must be one of {IMAGE_SETS}, got {options['image_set']!r}")
    outcomes = load_outcomes(res)
    suite = find_suite(res, suite_dir)
    boxes = None
    if suite is not None:
        boxes = full_boxes(read_annotations(suite))
        options.setdefault("plan", suite_plan(suite))
    else:
        log.info("%s: suite not found (run.json's path); ROI sides from ground-plane positions", res)
    try:
        data = trace_outcomes(outcomes, influence=load_influence(res), boxes=boxes,
                              conditions=load_condition_outcomes(res), **options)
    except (KeyError, ValueError) as e:
        raise OddsuiteError(f"{res / 'outcomes.parquet'}: {e.args[0] if e.args else e}") from e
    data["results_dir"] = str(res.resolve())
    data["suite_dir"] = str(suite.resolve()) if suite is not None else None
    figures = trace_figures(data)
    data["figures"] = sorted(figures)
    trace = Trace(data, figures)
    if write:
        write_trace(trace, Path(out_dir) if out_dir is not None else res / TRACE_DIR)
    return trace


def write_trace(trace: Trace, out_dir: str | Path) -> Path:
    """trace.json and the PNG figures into ``out_dir`` (atomic writes). Returns trace.json's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, png in trace.figures.items():
        atomic_write_bytes(out / name, png)
    write_json(out / TRACE_JSON, trace.data, sort_keys=False, nan="null")
    return out / TRACE_JSON

def load_trace(path: str | Path) -> dict[str, Any]:
    """A trace.json (its path, or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / TRACE_JSON
    data = _read_json(p)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OddsuiteError(f"{p}: not a trace.json of format {FORMAT}")
    return data

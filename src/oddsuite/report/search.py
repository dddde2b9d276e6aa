"""Report section of a search suite (``oddsuite search``, #19): the search itself, read from
the ``search:`` block of the suite's spec.yaml (``odd.samplers.search.SearchRecord``) and
the searched scenes' parameters in scenes.parquet.

It shows the severity of every trial in search order with the best so far, where in the
ODD the searched scenes lie and which of them failed (one panel per free dimension), and
the trace's top slices, stating that rates on a search suite are conditional on where the
optimiser looked: they are not ODD-wide rates. Figures use matplotlib's Agg canvas
directly (no pyplot)."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import ValidationError

from oddsuite.errors import SpecError
from oddsuite.odd.families import LOOKS
from oddsuite.odd.reader import read_yaml
from oddsuite.metrics.stats import rate
from oddsuite.odd.samplers.search import OBJECTIVE_TEXT, SCORE_COLUMNS, SearchRecord, exploring_trials
from oddsuite.report.images import png_data_uri

log = logging.getLogger(__name__)

#: free dimensions drawn (those whose failing and passing scenes lie furthest apart first)
MAX_DIMENSION_PANELS = 6
#: trace slices listed in the section
TOP_SLICES = 5
FAIL_COLOUR, PASS_COLOUR, BEST_COLOUR = "#c0392b", "#95a5a6", "#2c3e50"


def read_search(suite_dir: str | Path) -> Optional[SearchRecord]:
    """The search block of a suite's spec.yaml; None for a generated suite (or no spec)."""
    p = Path(suite_dir) / "spec.yaml"
    if not p.is_file():
        return None
    try:
        data = read_yaml(p.read_text(encoding="utf-8"), str(p)).data
        raw = data.get("search") if isinstance(data, dict) else None
        return None if raw is None else SearchRecord.model_validate(raw)
    except (SpecError, ValidationError, UnicodeDecodeError) as e:
        log.warning("%s: search block not readable (%s): no search section", p, e)
        return None


def trials_table(rec: SearchRecord) -> pd.DataFrame:
    """One row per searched scene: scene, SCORE_COLUMNS, failing, expanded, best_so_far
    (the highest severity up to and including the scene), exploring (a startup or
    exploration proposal, chosen without looking at any score: ``exploring_trials``) and
    each dimension's unit coordinate."""
    df = pd.DataFrame([list(r) for r in rec.scores], columns=list(SCORE_COLUMNS))
    df.insert(0, "scene", np.arange(len(df)))
    df["failing"] = df["severity"].astype(float) > rec.fail_above
    df["expanded"] = df["scene"].isin(rec.expanded)
    df["best_so_far"] = df["severity"].astype(float).cummax()
    df["exploring"] = exploring_trials(len(df), rec.startup, rec.explore)
    for j, d in enumerate(rec.dimensions):
        df[f"u:{d}"] = [p[j] for p in rec.points]
    return df


def _new(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def trials_figure(df: pd.DataFrame) -> bytes:
    """Severity of each trial in search order (failing ones red) and the highest so far."""
    from oddsuite.trace.figures import png_bytes

    fig = _new(8.0, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    for exploring, label in ((False, "the optimiser's proposal"), (True, "startup or exploration (no scores seen)")):
        part = df[df["exploring"] == exploring]
        colours = [FAIL_COLOUR if f else PASS_COLOUR for f in part["failing"]]
        if len(part):
            ax.scatter(part["scene"], part["severity"], s=14, zorder=3, label=label,
                       **({"facecolors": "none", "edgecolors": colours} if exploring else {"c": colours}))
    ax.step(df["scene"], df["best_so_far"], where="post", color=BEST_COLOUR, lw=1.4,
            label="highest severity so far")
    ax.set_xlabel(f"trial (= scene id), n = {len(df)}")
    ax.set_ylabel("severity")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return png_bytes(fig)


#: a dimension is ranked by how far apart its failing and passing scenes lie only when each
#: side holds at least this many scenes (fewer: the distance is noise; it ranks last)
MIN_SIDE = 5


def _separation(df: pd.DataFrame, col: str) -> float:
    fail, ok = df.loc[df["failing"], col], df.loc[~df["failing"], col]
    if len(fail) < MIN_SIDE or len(ok) < MIN_SIDE:
        return 0.0
    return abs(float(fail.mean()) - float(ok.mean()))


def dimensions_figure(df: pd.DataFrame, values: pd.DataFrame, dims: Sequence[str]) -> Optional[bytes]:
    """Per free dimension (at most MAX_DIMENSION_PANELS): each searched scene at its value,
    against its severity; failing scenes red. Where the points crowd is where the search
    looked; where the red ones crowd is where the failures cluster."""
    from oddsuite.trace.figures import png_bytes

    dims = [d for d in dims if d in values.columns][:MAX_DIMENSION_PANELS]
    if not dims:
        return None
    cols = min(3, len(dims))
    rows = (len(dims) + cols - 1) // cols
    fig = _new(3.1 * cols, 2.4 * rows)
    rng = np.random.default_rng(0)  # jitter of categorical values, fixed: the same figure every time
    colours = [FAIL_COLOUR if f else PASS_COLOUR for f in df["failing"]]
    for k, d in enumerate(dims):
        ax = fig.add_subplot(rows, cols, k + 1)
        v = values[d].reindex(df["scene"])
        has = v.notna().to_numpy()  # an object slot a scene does not fill has no value
        v, sev, colours_d = v[has], df["severity"].to_numpy()[has], [c for c, h in zip(colours, has) if h]
        if pd.api.types.is_numeric_dtype(v):
            x = v.to_numpy(dtype=float)
            if pd.api.types.is_integer_dtype(v):
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            levels = sorted(v.astype(str).unique())
            x = np.array([levels.index(s) for s in v.astype(str)], dtype=float) + rng.uniform(-0.15, 0.15, len(v))
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels(levels, fontsize=7, rotation=45 if len(levels) > 4 else 0, ha="right"
                               if len(levels) > 4 else "center")
        ax.scatter(x, sev, c=colours_d, s=10)
        ax.set_title(d, fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("severity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(-0.05, 1.05)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return png_bytes(fig)


#: an object slot's dimension path (``odd.samplers.search.ObjectDimension.path``): key, slot, field
_SLOT = re.compile(r"^objects\.(?P<key>.+)\[(?P<slot>\d+)\]\.(?P<field>[a-z_]+)$")


def _scene_values(suite_dir: Path, rec: SearchRecord) -> pd.DataFrame:
    """The value of every searched dimension per scene: global ones from scenes.parquet (the
    searched variant's full image); an object slot's from rois.parquet (the ``slot``-th ROI
    of its class in the scene, as sampled: ``distance_m``, ``lateral_m``, ``heading_deg``,
    ``asset``; a look from the search record; missing where the scene holds fewer objects
    of the class)."""
    p = suite_dir / "scenes.parquet"
    if not p.is_file():
        return pd.DataFrame()
    df = pd.read_parquet(p)
    full = df[(df["mode"] == "full") & (df["variant"] == rec.variant)]
    cols = [d for d in rec.dimensions if d in full.columns]
    out = full.drop_duplicates("scene_id").set_index("scene_id")[cols]
    slots = [(d, m) for d in rec.dimensions if d not in full.columns and (m := _SLOT.match(d))]
    if slots and (suite_dir / "rois.parquet").is_file():
        keys = _object_keys(suite_dir / "spec.yaml")
        rois = pd.read_parquet(suite_dir / "rois.parquet").sort_values(["scene_id", "roi_id"])
        rois["slot"] = rois.groupby(["scene_id", "category_id"]).cumcount()
        for d, m in slots:
            if m["key"] not in keys:
                continue
            sel = rois[(rois["category_id"] == keys.index(m["key"]) + 1) & (rois["slot"] == int(m["slot"]))]
            if m["field"] == "look":  # not a ROI column: the searched look, where the scene holds the slot
                j = rec.dimensions.index(d)
                look = pd.Series({i: int(pt[j] * LOOKS) for i, pt in enumerate(rec.points)})
                out[d] = look.where(look.index.isin(sel["scene_id"])).reindex(out.index)
                continue
            out[d] = sel.set_index("scene_id")[m["field"]].reindex(out.index)
    return out


def _object_keys(spec_path: Path) -> list[str]:
    """The object class keys of a suite's spec, in spec order (their category ids - 1)."""
    try:
        data = read_yaml(spec_path.read_text(encoding="utf-8"), str(spec_path)).data
        return [str(k) for k in (data.get("objects") or {})]
    except (SpecError, OSError, UnicodeDecodeError, AttributeError):
        return []


def search_section(suite_dir: str | Path | None, trace: Optional[Mapping[str, Any]] = None,
                   evaluated_sha256: Optional[str] = None) -> Optional[dict[str, Any]]:
    """Everything the report's search section shows, or None when the suite was not searched."""
    if suite_dir is None:
        return None
    rec = read_search(suite_dir)
    if rec is None or not rec.points:
        return None
    suite_dir = Path(suite_dir)
    df = trials_table(rec)
    values = _scene_values(suite_dir, rec)
    # an object slot counts only in the scenes that hold it (its coordinate is unused elsewhere)
    held = {d: values[d].reindex(df["scene"]).notna().to_numpy() if d in values.columns else np.ones(len(df), bool)
            for d in rec.dimensions}
    seps = {d: _separation(df[held[d]], f"u:{d}") for d in rec.dimensions}
    ranked = sorted(rec.dimensions, key=lambda d: (-seps[d], rec.dimensions.index(d)))
    dims_png = dimensions_figure(df, values, ranked)
    top = df.sort_values(["severity", "objective", "scene"], ascending=[False, False, True]).iloc[0]
    slices = [s for s in (trace or {}).get("slices") or [] if s.get("score") is not None and s["score"] > 0]
    n = len(df)
    return {
        "record": rec,
        "objective_text": OBJECTIVE_TEXT.get(rec.objective, rec.objective),
        "n": n, "failing": int(df["failing"].sum()), "failing_share": float(df["failing"].mean()),
        "expanded": len(rec.expanded), "infeasible": rec.infeasible,
        # chosen without looking at any score: an estimate of the ODD-wide failing share
        "exploring": rate(int(df.loc[df["exploring"], "failing"].sum()), int(df["exploring"].sum())),
        "modelled": rate(int(df.loc[~df["exploring"], "failing"].sum()), int((~df["exploring"]).sum())),
        "best": {"scene": int(top["scene"]), "severity": float(top["severity"]), "failed": int(top["rois_failed"]),
                 "scored": int(top["rois_scored"])},
        "dimensions": [{"name": d, "separation": seps[d]} for d in ranked],
        "trials_figure": png_data_uri(trials_figure(df)),
        "dimensions_figure": png_data_uri(dims_png) if dims_png else None,
        "slices": slices[:TOP_SLICES],
        "same_detector": evaluated_sha256 is None or rec.detector.sha256 is None
        or evaluated_sha256 == rec.detector.sha256,
    }

"""Other results a report can show when they are there: quantization consistency (a compare
folder: a consistency JSON) and fault injection (a faults folder: results JSON/CSV and
plots). Other commands write these; they are read defensively and shown generically: the
rates and numbers of the JSON (a dict with ``value`` and ``ci95`` is a rate), the first rows
of each CSV, and every PNG; a CSV without a plot gets a line plot of its numeric columns.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_ROWS = 40
MAX_CSV_ROWS = 10
MAX_PNGS = 4
MAX_FILES = 6
#: largest file read (JSON / CSV / PNG)
MAX_BYTES = 20 * 1024 * 1024


def find_extra_dirs(results_dir: Path, prefix: str) -> list[Path]:
    """Sub-folders of the results folder named ``prefix`` or ``prefix*`` (e.g. compare, compare_int8)."""
    if not results_dir.is_dir():
        return []
    return sorted(p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith(prefix))


def _is_rate(v: Any) -> bool:
    return isinstance(v, dict) and "value" in v and ("ci95" in v or "n" in v)


def flatten(obj: Any, prefix: str = "", depth: int = 0, max_depth: int = 4) -> list[tuple[str, Any]]:
    """(dotted key, scalar or rate dict) pairs of a JSON value; lists of scalars are shown
    short, lists of objects by their length."""
    out: list[tuple[str, Any]] = []
    if _is_rate(obj):
        return [(prefix or "value", obj)]
    if isinstance(obj, dict):
        if depth >= max_depth:
            return [(prefix, f"{{{len(obj)} keys}}")]
        for k, v in obj.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1, max_depth))
        return out
    if isinstance(obj, list):
        if all(isinstance(v, (int, float, str, bool)) or v is None for v in obj) and len(obj) <= 8:
            return [(prefix, ", ".join("undefined" if v is None else str(v) for v in obj))]
        return [(prefix, f"[{len(obj)} items]")]
    return [(prefix, obj)]


def _read_csv(path: Path) -> dict[str, Any] | None:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as e:  # any parse problem: shown as unreadable, never fatal
        log.warning("%s: not a readable CSV (%s)", path, e)
        return None
    return {"name": path.name, "columns": [str(c) for c in df.columns], "n_rows": int(len(df)),
            "rows": [[_cell(v) for v in r] for r in df.head(MAX_CSV_ROWS).itertuples(index=False)], "frame": df}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


METRIC_HINTS = ("map", "ap", "acc", "rate", "score", "value", "agreement")


def _plot_csv(df: Any, title: str) -> bytes | None:
    """Median (and min–max band over repeated rows) of the metric-like numeric columns against
    the first numeric column, one line per level of the first categorical column."""
    from oddsuite.trace.figures import _new, png_bytes

    num = [c for c in df.columns if str(df[c].dtype).startswith(("int", "float"))]
    if len(num) < 2 or len(df) < 2:
        return None
    x = num[0]
    plain = [c for c in num[1:] if not any(h in str(c).lower() for h in ("seed", "id", "index", "count"))]
    ys = [c for c in plain if any(h in str(c).lower() for h in METRIC_HINTS)] or plain
    ys = ys[:3]
    if not ys:
        return None
    cats = [c for c in df.columns if c not in num and 1 < df[c].nunique() <= 6]
    group = cats[0] if cats else None
    fig = _new(6.5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    parts = df.groupby(group, sort=True) if group else [(None, df)]
    for key, g in parts:
        for c in ys:
            agg = g.groupby(x)[c].agg(["median", "min", "max"]).sort_index()
            label = " ".join(str(v) for v in (c if len(ys) > 1 or not group else None, key) if v is not None)
            line, = ax.plot(agg.index, agg["median"], marker="o", ms=3, label=label or str(c))
            if (agg["max"] > agg["min"]).any():
                ax.fill_between(agg.index, agg["min"], agg["max"], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel(str(x))
    ax.set_ylabel(", ".join(str(c) for c in ys))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title}: median, band min–max over repeats (n = {len(df)} rows)", fontsize=9)
    return png_bytes(fig)


def json_tables(data: Any, max_tables: int = 3, max_rows: int = 12, max_cols: int = 12) -> list[dict[str, Any]]:
    """Lists of flat records (every value a scalar) near the top of a JSON value, as tables:
    e.g. the per-point summary of a fault sweep. Lists named ``summary`` come first."""
    found: list[tuple[str, list[dict[str, Any]]]] = []

    def walk(obj: Any, path: str, depth: int) -> None:
        if depth > 2 or not isinstance(obj, dict):
            return
        for k, v in obj.items():
            key = f"{path}.{k}" if path else str(k)
            if (isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
                    and all(all(not isinstance(x, (dict, list)) for x in r.values()) for r in v)):
                found.append((key, v))
            elif isinstance(v, dict):
                walk(v, key, depth + 1)

    walk(data, "", 0)
    found.sort(key=lambda kv: (kv[0].rsplit(".", 1)[-1] != "summary", kv[0]))
    out = []
    for name, recs in found[:max_tables]:
        cols: list[str] = []
        for r in recs:
            for k in r:
                if k not in cols:
                    cols.append(str(k))
        cols = cols[:max_cols]
        out.append({"name": name, "columns": cols, "n_rows": len(recs),
                    "rows": [[_cell(r.get(c)) if r.get(c) is not None else "undefined" for c in cols]
                             for r in recs[:max_rows]]})
    return out


def read_extra(folder: Path, kind: str) -> dict[str, Any]:
    """What a compare / faults folder holds, for the report (see the module doc). JSON and
    CSV files are read from the folder itself (sub-folders hold per-model or per-point
    results); PNGs from the folder first, then from its direct sub-folders."""
    out: dict[str, Any] = {"path": str(folder), "name": folder.name, "kind": kind, "json": [], "csv": [],
                           "png": [], "problems": []}
    if not folder.is_dir():
        out["problems"].append(f"{folder}: not a folder")
        return out
    top = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    sub_png = sorted(q for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
                     for q in sorted(d.glob("*.png"))[:MAX_PNGS])
    for p in top + sub_png:
        if p.stat().st_size > MAX_BYTES:
            out["problems"].append(f"{p.name}: larger than {MAX_BYTES >> 20} MiB, not shown")
            continue
        suffix = p.suffix.lower()
        name = str(p.relative_to(folder))
        if suffix == ".json" and p.parent == folder and len(out["json"]) < MAX_FILES:
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                out["problems"].append(f"{p.name}: not valid JSON ({e})")
                continue
            rows = flatten(data)
            out["json"].append({"name": name, "rows": rows[:MAX_ROWS], "n_rows": len(rows),
                                "tables": json_tables(data), "data": data})
        elif suffix == ".csv" and p.parent == folder and len(out["csv"]) < MAX_FILES:
            c = _read_csv(p)
            if c is None:
                out["problems"].append(f"{p.name}: not a readable CSV")
            else:
                c["name"] = name
                out["csv"].append(c)
        elif suffix == ".png" and len(out["png"]) < MAX_PNGS:
            png = p.read_bytes()
            if png[:8] == b"\x89PNG\r\n\x1a\n":
                out["png"].append({"name": name, "png": png})
    if not out["png"]:
        for c in out["csv"]:
            fig = _plot_csv(c["frame"], c["name"])
            if fig is not None:
                out["png"].append({"name": f"{c['name']} (plotted here)", "png": fig})
                break
    for c in out["csv"]:
        c.pop("frame", None)
    if not (out["json"] or out["csv"] or out["png"]):
        out["problems"].append("no JSON, CSV or PNG files")
    return out


def consistency_summary(data: Any) -> dict[str, Any] | None:
    """The headline of a consistency JSON (oddsuite.metrics.consistency's dict, possibly
    nested one level), or None when it does not look like one."""
    if not isinstance(data, dict):
        return None
    cand = data if "overall" in data else next((v for v in data.values() if isinstance(v, dict) and "overall" in v),
                                               None)
    if cand is None or not isinstance(cand.get("overall"), dict):
        return None
    ov = cand["overall"]
    out: dict[str, Any] = {}
    if _is_rate(ov.get("agreement")):
        out["agreement"] = ov["agreement"]
    flips = ov.get("flips") or {}
    for k in ("hit_to_not", "not_to_hit"):
        if _is_rate(flips.get(k)):
            out[k] = flips[k]
    drift = ov.get("score_drift")
    if isinstance(drift, dict):
        out["score_drift"] = drift
    m = ov.get("map")
    if isinstance(m, dict) and isinstance(m.get("a"), dict) and isinstance(m.get("b"), dict):
        out["map"] = {"a": m["a"].get("map"), "b": m["b"].get("map"),
                      "delta": (m.get("delta") or {}).get("map"), "n_images": m.get("n_images")}
    out["n_images"] = ov.get("n_images")
    models = cand.get("models")
    if isinstance(models, dict):
        out["models"] = {k: {"name": v.get("name"), "sha256": v.get("sha256")} for k, v in models.items()
                         if isinstance(v, dict)}
    out["top_images"] = cand.get("top_images") if isinstance(cand.get("top_images"), list) else []
    return out if len(out) > 2 else None

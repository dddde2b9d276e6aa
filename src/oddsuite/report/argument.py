"""The report's opening sections, each built by its own function: the verdicts of the
spec's acceptance criteria with the GSN argument (``verdicts_section``) and the coverage
of the ODD with its 2-way heatmap (``coverage_section``). The report shows them before
its numbered sections (``PREFACE``) and never writes into the results folder:
``oddsuite check`` writes evidence.json."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from oddsuite.evaluate.loop import METRICS, OUTCOMES, PREDICTIONS
from oddsuite.errors import OddsuiteError
from oddsuite.fileio import sha256_file
from oddsuite.report.evidence import EVIDENCE_JSON, evidence_svg, figure_text, more_text, solution_rows
from oddsuite.report.images import png_data_uri

log = logging.getLogger(__name__)

#: (id, title) of the sections before the numbered ones
PREFACE = [("verdicts", "Verdicts"), ("coverage", "ODD coverage")]
#: missing tuples listed in the report (metrics.json lists more, and counts all)
MAX_MISSING_SHOWN = 30


def _saved_evidence(res: Path) -> dict[str, Any] | None:
    """RESULTS/evidence.json when it was written for the results files as they are now."""
    path = res / EVIDENCE_JSON
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        files = (doc.get("sources") or {}).get("results") or {}
        for name in (METRICS, OUTCOMES, PREDICTIONS):
            f = res / name
            if files.get(name) != (sha256_file(f) if f.is_file() else None):
                return None
        return doc
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def verdicts_section(results_dir: str | Path, suite_dir: str | Path | None = None) -> dict[str, Any]:
    """The verdicts and the argument: from RESULTS/evidence.json when it matches the
    results files (what ``oddsuite check`` judged), else judged now on the suite's spec
    (not saved). ``{"doc", "svg", "solutions", "source", "error"}``."""
    from oddsuite.report.evidence import check_results

    res = Path(results_dir)
    doc, source = _saved_evidence(res), f"{EVIDENCE_JSON} (written by oddsuite check)"
    if doc is None:
        source = "judged for this report on the suite's spec (run `oddsuite check` to save evidence.json)"
        try:
            doc, _ = check_results(res, suite_dir=suite_dir, write=False)
        except OddsuiteError as e:
            return {"doc": None, "svg": None, "solutions": [], "source": None, "error": str(e)}
    if not doc.get("criteria"):
        return {"doc": doc, "svg": None, "solutions": [], "source": source, "error": None}
    for c in doc["criteria"]:
        for s in c.get("slices") or []:
            s["figure_text"] = figure_text(s["figure"])
            s["more_text"] = more_text(s.get("more"))
    return {"doc": doc, "svg": evidence_svg(doc), "solutions": solution_rows(doc), "source": source, "error": None}


# ----------------------------------------------------------------------------- coverage

def heatmap_png(section: Mapping[str, Any]) -> bytes | None:
    """The 2-way heatmap: rows × columns are the levels of the varying dimensions (each
    pair of dimensions once, below the diagonal); colour = failure rate of the ROIs of the
    tuple's full-scene images, hatched = allowed but not covered (fewer than k images),
    crossed = forbidden by a rule, grey = covered with no ROI to rate."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from oddsuite.trace.figures import png_bytes

    way = (section.get("ways") or {}).get("2") or {}
    cols = way.get("tuples")
    if not cols:
        return None
    dims = section["dimensions"]
    varying = [i for i, d in enumerate(dims) if d.get("varying")]
    start, labels, bounds = {}, [], []
    for i in varying:
        start[i] = len(labels)
        name = dims[i]["path"].split(".", 1)[-1]
        labels += [f"{name} = {lv}"[:40] for lv in dims[i]["levels"]]
        bounds.append(len(labels))
    n = len(labels)
    k = int(section.get("k", 1))
    fig = Figure(figsize=(min(4 + 0.2 * n, 18), min(3.5 + 0.2 * n, 18)), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    grid = np.full((n, n), np.nan)
    cmap = colormaps["RdYlGn_r"]
    ax.set_facecolor("white")
    for (a, b), (la, lb), allowed, n_img, n_fail, n_roi in zip(cols["dims"], cols["levels"], cols["allowed"],
                                                               cols["n_images"], cols["n_failed"], cols["n_rois"]):
        r, c = start[b] + lb, start[a] + la  # the later dimension down, the earlier across
        if not allowed:
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#dddddd", edgecolor="#555555", hatch="xx",
                                   linewidth=0.3))
        elif n_img < k:
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="white", edgecolor="#999999", hatch="////",
                                   linewidth=0.3))
        elif n_roi == 0:
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#bbbbbb", linewidth=0))
        else:
            grid[r, c] = n_fail / n_roi
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    for x in bounds[:-1]:
        ax.axhline(x - 0.5, color="#333333", linewidth=0.6)
        ax.axvline(x - 0.5, color="#333333", linewidth=0.6)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=5.5)
    ax.set_yticklabels(labels, fontsize=5.5)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label("failure rate of the ROIs (miss or mislabel)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    ax.set_title(f"2-way coverage {way.get('n_covered')}/{way.get('n_allowed')} allowed tuples (k = {k}); "
                 f"hatched: not covered, crossed: forbidden by a rule, grey: no ROI", fontsize=7.5)
    fig.tight_layout()
    return png_bytes(fig)


def coverage_section(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Coverage table rows (per t), the dimensions and their levels, the first missing
    tuples and the heatmap, from metrics.json's ``coverage``; None when it has none."""
    cov = metrics.get("coverage")
    if not isinstance(cov, Mapping):
        return None
    ways = [{"t": int(t), **{k: v for k, v in w.items() if k not in ("tuples", "missing")},
             "missing": (w.get("missing") or [])[:MAX_MISSING_SHOWN]}
            for t, w in sorted((cov.get("ways") or {}).items(), key=lambda kv: int(kv[0]))]
    png = heatmap_png(cov)
    return {"k": cov.get("k"), "n_images": cov.get("n_images"),
            "n_images_outside_odd": cov.get("n_images_outside_odd", 0), "ways": ways, "dimensions": cov.get("dimensions") or [],
            "heatmap": png_data_uri(png) if png else None, "image_set": cov.get("image_set")}


def preface(results_dir: str | Path, metrics: Mapping[str, Any], suite_dir: str | Path | None) -> dict[str, Any]:
    """Both opening sections, for the report's context (``preface`` key)."""
    return {"sections": PREFACE, "verdicts": verdicts_section(results_dir, suite_dir),
            "coverage": coverage_section(metrics)}


__all__ = ["PREFACE", "coverage_section", "heatmap_png", "preface", "verdicts_section"]

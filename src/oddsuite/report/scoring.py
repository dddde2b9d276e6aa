"""Report sections of the scores added in #15, each built by its own function from the
metrics.json dict: false positives on full scenes (metrics.md §4b) and the TIDE error
breakdown (§4c, a bar chart drawn with matplotlib's Agg canvas, no pyplot)."""
from __future__ import annotations

from typing import Any, Mapping

from oddsuite.report.images import png_data_uri

#: TIDE error types in the order of the paper's figure, with the words the report uses
TIDE_LABELS = {"Cls": "classification", "Loc": "localisation", "Both": "class. + loc.", "Dupe": "duplicate",
               "Bkg": "background", "Miss": "missed GT"}
#: conditions of §4b shown per level in the report (the others stay in metrics.json)
MAX_CONDITIONS = 6


def _rows(by: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"name": k, **v} for k, v in (by or {}).items() if isinstance(v, Mapping)]


def full_fp_section(metrics: Mapping[str, Any], drawer: Any = None) -> dict[str, Any] | None:
    """§4b: the overall figure, per detection class, per variant, per scene condition (the
    conditions whose levels differ most in FP per image first), and the image with the most
    false positives drawn (when the suite's images are at hand). None when metrics.json has
    no such section (results written before #15)."""
    fp = metrics.get("full_scene_fp")
    if not isinstance(fp, Mapping):
        return None
    conditions = []
    for col, levels in (fp.get("by_condition") or {}).items():
        rows = _rows(levels)
        vals = [r["per_image"]["value"] for r in rows if r["per_image"]["value"] is not None]
        spread = (max(vals) - min(vals)) if vals else 0.0
        conditions.append({"name": col, "rows": rows, "spread": spread})
    conditions.sort(key=lambda c: (-c["spread"], c["name"]))
    example = None
    worst = sorted(fp.get("by_image") or [], key=lambda r: (-int(r["n_fp"]), int(r["image_id"])))
    if drawer is not None and worst:
        i = int(worst[0]["image_id"])
        example = {"uri": drawer.draw(i, fp=True), "caption": drawer.caption(i), "n": int(worst[0]["n_fp"])}
    return {"overall": fp, "by_class": _rows(fp.get("by_class")), "by_variant": _rows(fp.get("by_variant")),
            "conditions": conditions[:MAX_CONDITIONS], "n_conditions": len(conditions), "example": example}


def tide_figure(tide: Mapping[str, Any]) -> bytes | None:
    """Bar chart of TIDE's dAP per error type, full-scene and permutation images side by side."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from oddsuite.trace.figures import png_bytes

    groups = [(k, label) for k, label in (("full", "full-scene"), ("permutation", "permutation"))
              if isinstance(tide.get(k), Mapping) and tide[k].get("ap_base") is not None]
    if not groups:
        return None
    fig = Figure(figsize=(7.5, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(TIDE_LABELS))
    width = 0.8 / len(groups)
    for j, ((key, label), colour) in enumerate(zip(groups, ("#2c3e50", "#e67e22"))):
        t = tide[key]
        vals = [float(t["delta_ap"][e] or 0.0) for e in TIDE_LABELS]
        ax.bar(x + (j - (len(groups) - 1) / 2) * width, vals, width, color=colour,
               label=f"{label} (AP50 {t['ap_base']:.3f}, n = {t['n_images']} images)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{e}\n{TIDE_LABELS[e]}" for e in TIDE_LABELS], fontsize=8)
    ax.set_ylabel("dAP50 if fixed")
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return png_bytes(fig)


def tide_section(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """§4c: TIDE's dAP and error counts of full-scene and permutation images, the bar chart
    and the engine (name and version) that computed them. None when metrics.json has none."""
    tide = metrics.get("tide")
    if not isinstance(tide, Mapping):
        return None
    rows = [{"name": label, **tide[k]} for k, label in (("full", "full-scene images"),
                                                         ("permutation", "permutation images"))
            if isinstance(tide.get(k), Mapping)]
    png = tide_figure(tide)
    engine = tide.get("engine") or {}
    return {"rows": rows, "errors": TIDE_LABELS, "figure": png_data_uri(png) if png else None,
            "engine": f"{engine.get('name', 'unknown')} {engine.get('version', '')}".strip()}

"""Figures of a trace (PNG bytes), drawn from the trace.json dict alone, so that the report
can draw the same figures from a saved trace. matplotlib's Agg canvas is used directly
(no pyplot, no global backend switch). Every figure states its n."""
from __future__ import annotations

import io
import textwrap
from typing import Any, Mapping

import numpy as np

#: slices shown in the slice figure
TOP_SLICES = 15
DPI = 100


def _new(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _wrap(s: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(str(s), width)) or str(s)


def slices_figure(data: Mapping[str, Any], top: int = TOP_SLICES) -> bytes | None:
    """Failure rate with its 95% interval of the top-ranked slices, against the overall rate."""
    slices = list(data.get("slices") or [])[:top]
    ov = data["overall"]
    if not slices or ov["rate"]["value"] is None:
        return None
    fig = _new(8.5, 0.42 * len(slices) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(slices))[::-1]
    vals = np.array([s["rate"]["value"] for s in slices])
    lo = np.array([s["rate"]["ci95"][0] for s in slices])
    hi = np.array([s["rate"]["ci95"][1] for s in slices])
    ax.barh(y, vals, color="#c0392b", alpha=0.75, height=0.6)
    ax.errorbar(vals, y, xerr=[vals - lo, hi - vals], fmt="none", ecolor="black", capsize=3, lw=1)
    base = ov["rate"]["value"]
    blo, bhi = ov["rate"]["ci95"]
    ax.axvspan(blo, bhi, color="#7f8c8d", alpha=0.15, lw=0)
    ax.axvline(base, color="#34495e", ls="--", lw=1.2, label=f"overall {base:.2f} (n = {ov['n']})")
    ax.set_yticks(y)
    labels = []
    for s in slices:
        same = len(s.get("same_rows") or [])
        labels.append(f"{_wrap(s['condition'], 44)}  (n = {s['n']}{', small n' if s.get('small_n') else ''})"
                      + (f"\n(+{same} condition(s), same rows)" if same else ""))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("failure rate (miss or mislabel), bars: 95% Wilson interval")
    ax.set_title(f"Most clearly failing conditions, each on what the ones above leave unexplained — "
                 f"{data['settings']['image_set_text']}\n{ov['failures']} failures in n = {ov['n']} ROI rows; "
                 f"small n: n < {data['settings']['min_support']}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


def heatmap_figure(pair: Mapping[str, Any], *, image_set_text: str = "", min_support: int = 1) -> bytes:
    """Failure rate per cell of a pair of dimensions; cells under ``min_support`` are hatched
    and their rate greyed; each cell shows its rate and n."""
    la, lb = pair["levels"]
    na, nb = pair["names"]
    rates = np.full((len(la), len(lb)), np.nan)
    fig = _new(max(5.0, 1.15 * len(lb) + 2.8), max(3.2, 0.62 * len(la) + 1.9))
    ax = fig.add_subplot(1, 1, 1)
    for c in pair["cells"]:
        rates[c["a"], c["b"]] = c["rate"]["value"]
    masked = np.ma.masked_invalid(rates)
    im = ax.imshow(masked, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for c in pair["cells"]:
        v = c["rate"]["value"]
        small = c["small_n"]
        colour = "white" if (v is not None and v > 0.6 and not small) else ("#566573" if small else "black")
        if small:
            ax.add_patch(_hatch(fig, c["b"], c["a"]))
        ax.text(c["b"], c["a"], f"{v:.2f}\nn={c['n']}" if v is not None else f"n={c['n']}", ha="center",
                va="center", fontsize=7.5, color=colour, zorder=3)
    ax.set_xticks(range(len(lb)))
    ax.set_xticklabels([_wrap(s, 14) for s in lb], fontsize=7.5)
    ax.set_yticks(range(len(la)))
    ax.set_yticklabels([_wrap(s, 22) for s in la], fontsize=7.5)
    ax.set_xlabel(nb)
    ax.set_ylabel(na)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("failure rate", fontsize=8)
    ax.set_title(f"Failure rate by {na} × {nb}\n{pair['failures']} failures, n = {pair['n']} ROI rows"
                 f"{'; ' + image_set_text if image_set_text else ''}\nhatched: n < {min_support} (small n)",
                 fontsize=9)
    return png_bytes(fig)


def _hatch(fig: Any, x: float, y: float):
    from matplotlib.patches import Rectangle

    # a white veil under the hatching keeps the cell's colour visible but faded, and its text readable
    return Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=(1, 1, 1, 0.6), hatch="///", edgecolor="#aab7b8", lw=0)


def influence_figure(data: Mapping[str, Any]) -> bytes | None:
    """Mean influence(r → o) per (target class, other class): positive = the other class hurts."""
    m = (data.get("influence") or {}).get("class_matrix") or []
    m = [r for r in m if r.get("influence") is not None]
    if not m:
        return None
    targets = sorted({str(r["target_category"]) for r in m})
    others = sorted({str(r["other_category"]) for r in m})
    mat = np.full((len(targets), len(others)), np.nan)
    ns = np.zeros_like(mat, dtype=int)
    for r in m:
        i, j = targets.index(str(r["target_category"])), others.index(str(r["other_category"]))
        mat[i, j] = r["influence"]
        ns[i, j] = r["n"]
    lim = max(0.05, float(np.nanmax(np.abs(mat))))
    fig = _new(max(4.5, 1.1 * len(others) + 2.6), max(3.0, 0.6 * len(targets) + 1.8))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.ma.masked_invalid(mat), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(targets)):
        for j in range(len(others)):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:+.2f}\nn={ns[i, j]}", ha="center", va="center", fontsize=7.5,
                        color="white" if abs(mat[i, j]) > 0.6 * lim else "black")
    ax.set_xticks(range(len(others)))
    ax.set_xticklabels(others, fontsize=8)
    ax.set_yticks(range(len(targets)))
    ax.set_yticklabels(targets, fontsize=8)
    ax.set_xlabel("other ROI r (added to the image)")
    ax.set_ylabel("target ROI o")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("influence = P(o hit | S) − P(o hit | S ∪ {r})", fontsize=7.5)
    total = int(sum(r["n"] for r in m))
    ax.set_title(f"ROI influence by class (red: r hurts o)\nn = {total} image pairs (S, S ∪ {{r}})", fontsize=9)
    return png_bytes(fig)


def trace_figures(data: Mapping[str, Any]) -> dict[str, bytes]:
    """file name -> PNG of every figure of the trace: slices.png, heatmap_N.png, influence.png."""
    out: dict[str, bytes] = {}
    s = slices_figure(data)
    if s is not None:
        out["slices.png"] = s
    for i, pair in enumerate(data.get("pairs") or [], 1):
        out[f"heatmap_{i}.png"] = heatmap_figure(pair, image_set_text=data["settings"]["image_set_text"],
                                                 min_support=data["settings"]["min_support"])
    f = influence_figure(data)
    if f is not None:
        out["influence.png"] = f
    return out

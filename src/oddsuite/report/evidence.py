"""The safety argument of a results folder in the GSN style (Goal Structuring Notation,
GSN Community Standard v3): ``evidence.json`` and its drawing.

- the top goal: the detector is fit for the ODD of the spec, in the context of the spec,
  the suite and the model (each named by its SHA-256);
- a strategy: argue over each acceptance criterion of the spec, judged at the pessimistic
  end of its 95% interval (``report.verdicts``);
- a goal per criterion (its id and requirement text); over slices, a strategy "argue over
  every level of DIM" and a goal per slice;
- a solution under each leaf goal: the figure (value, interval, count) with the files
  it is computed from and their SHA-256 (results files, the suite's manifest, the model).

Each goal and solution carries the verdict (pass, fail, inconclusive); an inconclusive
leaf goal is also marked *undeveloped* (GSN's diamond: its evidence does not yet settle
it) with the further images its figure would need.

``evidence_document`` builds the JSON value (deterministic: no time stamp, so the same
inputs give the same bytes); ``evidence_svg`` draws it as an inline SVG (a tree from left
to right; no external reference, for the self-contained report).
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping
from xml.sax.saxutils import escape

from oddsuite.evaluate.loop import OUTCOMES, PREDICTIONS
from oddsuite.suite.layout import ANNOTATIONS, SCENES
from oddsuite.fileio import atomic_write_bytes
from oddsuite.metrics.stats import json_clean

#: the file ``oddsuite check`` writes into the results folder
EVIDENCE_JSON = "evidence.json"
FORMAT = 1
#: the results files each metric's figure is computed from
_FROM = {
    "hit_rate": (OUTCOMES,), "failure_rate": (OUTCOMES,),
    "context_accuracy": (OUTCOMES,),
    "map": (PREDICTIONS, ANNOTATIONS), "ap50": (PREDICTIONS, ANNOTATIONS),
    "fp_per_image": (PREDICTIONS, ANNOTATIONS),
    "context_fp_rate": (PREDICTIONS, ANNOTATIONS),
    "coverage": (SCENES, "spec"),
}


def _fmt(x: Any, digits: int = 2) -> str:
    return "undefined" if x is None else f"{float(x):.{digits}f}"


def figure_text(fig: Mapping[str, Any]) -> str:
    """``0.93 [0.88, 0.96], n = 120 ROIs in 60 images`` (or the coverage count)."""
    if fig.get("unit") == "tuples":
        return f"{_fmt(fig.get('value'))} ({fig.get('n_covered', 0)} of {fig.get('n', 0)} tuples, {fig.get('n_images', 0)} images)"
    s = _fmt(fig.get("value"))
    ci = fig.get("ci95")
    if ci:
        s += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    n, unit = fig.get("n", 0), fig.get("unit", "")
    s += f", n = {n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"
    if fig.get("unit") != "images":
        n_img = fig.get("n_images", 0)
        s += f" in {n_img} image{'' if n_img == 1 else 's'}"
    return s


def more_text(more: Mapping[str, Any] | None) -> str:
    if not more:
        return ""
    img = f" (≈ {more['images']} images)" if more.get("unit") != "images" else ""
    return f"≈ {more['units']} more {more.get('unit', 'units')}{img} to {'pass' if more['towards'] == 'pass' else 'show a failure'} at the observed value"


def _files(metric: str, sources: Mapping[str, Any]) -> list[dict[str, Any]]:
    res = sources.get("results") or {}
    suite = sources.get("suite") or {}
    out = []
    for name in _FROM.get(metric, ()):
        if name == "spec":
            sp = sources.get("spec") or {}
            out.append({"role": "ODD spec", "path": sp.get("path"), "sha256": sp.get("sha256")})
        elif name in (ANNOTATIONS, SCENES):
            out.append({"role": f"suite {name}", "path": str(Path(suite.get("path", "")) / name),
                        "sha256": None, "note": "hashed in the suite manifest"})
        else:
            out.append({"role": name, "path": str(Path(res.get("path", "")) / name), "sha256": res.get(name)})
    man = suite.get("manifest") or {}
    out.append({"role": "suite manifest", "path": man.get("path"), "sha256": man.get("sha256")})
    model = sources.get("model") or {}
    if metric != "coverage":
        out.append({"role": "model", "name": model.get("name"), "sha256": model.get("sha256")})
    return out


def argument(verdicts: Mapping[str, Any], detector: str | None = None) -> dict[str, Any]:
    """The GSN nodes and links of a verdict document (``report.verdicts.evaluate_acceptance``)."""
    src = verdicts.get("sources") or {}
    nodes: list[dict[str, Any]] = []
    links: list[dict[str, str]] = []

    def node(kind: str, nid: str, text: str, parent: str | None, rel: str = "supported_by", **kw: Any) -> str:
        nodes.append({"id": nid, "type": kind, "text": text, **kw})
        if parent is not None:
            links.append({"from": parent, "to": nid, "kind": rel})
        return nid

    name = detector or (src.get("model") or {}).get("name") or "the detector"
    spec = src.get("spec") or {}
    top = node("goal", "G1", f"{name} is fit for the ODD {verdicts.get('spec')}", None, status=verdicts.get("status"))
    node("context", "C1", f"ODD spec {spec.get('name')} (sha256 {str(spec.get('sha256'))[:12]}…)", top,
         "in_context_of", files=[{"role": "ODD spec", "path": spec.get("path"), "sha256": spec.get("sha256")}])
    man = (src.get("suite") or {}).get("manifest") or {}
    node("context", "C2", f"the suite '{Path(str((src.get('suite') or {}).get('path'))).name}' "
                          f"(manifest sha256 {str(man.get('sha256'))[:12]}…)", top, "in_context_of",
         files=[{"role": "suite manifest", "path": man.get("path"), "sha256": man.get("sha256")}])
    model = src.get("model") or {}
    if model.get("sha256"):
        what, digest = f"model {model.get('name')}", model["sha256"]
    elif model.get("predictions_source"):  # scored from a predictions file (oddsuite score)
        what, digest = f"predictions of {model.get('name')}", model["predictions_source"]
    else:
        what, digest = f"model {model.get('name')}", None
    node("context", "C3", f"{what} (sha256 {digest[:12] + '…' if digest else 'not recorded'})", top, "in_context_of",
         files=[{"role": what.split(" ")[0], "name": model.get("name"), "sha256": digest}])
    crits = verdicts.get("criteria") or []
    if not crits:
        node("goal", "G1.1", "no acceptance criterion in the spec: nothing argued", top, status="inconclusive",
             undeveloped=True)
        return {"nodes": nodes, "links": links}
    s1 = node("strategy", "S1", "argue over each acceptance criterion of the spec, each judged at the pessimistic "
                                "end of its 95% interval", top)
    n_sol = 0
    for i, c in enumerate(crits, 1):
        slices = c.get("slices") or []
        per = c.get("per")
        single = slices[0] if len(slices) == 1 and not per else None
        g = node("goal", f"G{i + 1}", f"{c['id']}: {c['text']}", s1, status=c["status"], criterion=c["id"],
                 statement=c["statement"], undeveloped=bool(single and single["status"] == "inconclusive"),
                 needs=(more_text(single.get("more")) or None) if single else None)
        parent = node("strategy", f"S{i + 1}", f"argue over every level of {per}", g) if per else g
        for j, s in enumerate(slices, 1):
            leaf = parent
            if per:
                leaf = node("goal", f"G{i + 1}.{j}", f"{c['id']} holds where {per} = {s['level']}", parent,
                            status=s["status"], undeveloped=s["status"] == "inconclusive",
                            needs=more_text(s.get("more")) or None)
            n_sol += 1
            fig = s["figure"]
            node("solution", f"Sn{n_sol}", f"{c['metric']} {figure_text(fig)}", leaf, status=s["status"],
                 method=fig.get("method"), reason=s.get("reason"), files=_files(c["metric"], src))
    return {"nodes": nodes, "links": links}


def evidence_document(verdicts: Mapping[str, Any], detector: str | None = None) -> dict[str, Any]:
    """evidence.json: the verdicts, the files they rest on and the GSN argument (docs/FORMAT.md)."""
    return json_clean({
        "format": FORMAT,
        "status": verdicts.get("status"),
        "spec": verdicts.get("spec"),
        "sources": verdicts.get("sources"),
        "settings": verdicts.get("settings"),
        "n_full_images": verdicts.get("n_full_images"),
        "n_full_images_outside_odd": verdicts.get("n_full_images_outside_odd"),
        "criteria": verdicts.get("criteria"),
        "argument": argument(verdicts, detector),
    })


def write_evidence(results_dir: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``RESULTS/evidence.json`` atomically (sorted keys, 1-space indent: stable bytes)."""
    import json

    path = Path(results_dir) / EVIDENCE_JSON
    atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
                              + "\n").encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- drawing

_FILL = {"pass": "#d8f0dc", "fail": "#f8d4d4", "inconclusive": "#fdf0c4", None: "#ffffff", "none": "#ffffff"}
_STROKE = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#b7870b", None: "#555555", "none": "#555555"}
_W, _H, _DX, _DY, _CHARS, _LINES = 220, 66, 260, 86, 36, 4


def _lines(text: str, chars: int = _CHARS) -> list[str]:
    lines = textwrap.wrap(text, chars) or [""]
    if len(lines) > _LINES:
        lines = lines[:_LINES]
        lines[-1] = lines[-1][: chars - 1] + "…"
    return lines


def _layout(arg: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """(x, y) of every node: the tree of supported_by links from left to right (leaves top
    to bottom, a parent level with the middle of its children), one column right of the
    contexts, which stand beside the node they give the context of, one row apart."""
    nodes = [n["id"] for n in arg["nodes"]]
    children: dict[str, list[str]] = {}
    context_of: dict[str, list[str]] = {}
    for ln in arg["links"]:
        (children if ln["kind"] == "supported_by" else context_of).setdefault(ln["from"], []).append(ln["to"])
    contexts = {c for cs in context_of.values() for c in cs}
    pos: dict[str, tuple[float, float]] = {}
    row = [0]

    def place(nid: str, depth: int) -> float:
        kids = children.get(nid, [])
        if not kids:
            y = row[0] * _DY
            row[0] += 1
        else:
            ys = [place(k, depth + 1) for k in kids]
            y = (ys[0] + ys[-1]) / 2
        pos[nid] = ((depth + 1) * _DX, y)
        return y

    targets = {ln["to"] for ln in arg["links"]}
    for r in (n for n in nodes if n not in targets):
        place(r, 0)
    for owner, cs in context_of.items():
        x, y = pos[owner]
        for j, c in enumerate(cs):
            pos[c] = (x - _DX, y + (j - (len(cs) - 1) / 2) * _DY)
    low = min((p[1] for p in pos.values()), default=0.0)
    return {k: (x, y - low) for k, (x, y) in pos.items()}


def _shape(kind: str, x: float, y: float, fill: str, stroke: str) -> str:
    if kind == "strategy":
        s = 12
        pts = f"{x + s},{y} {x + _W},{y} {x + _W - s},{y + _H} {x},{y + _H}"
        return f'<polygon points="{pts}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
    if kind == "solution":
        return (f'<ellipse cx="{x + _W / 2}" cy="{y + _H / 2}" rx="{_W / 2}" ry="{_H / 2}" fill="{fill}" '
                f'stroke="{stroke}" stroke-width="1.5"/>')
    if kind == "context":
        return (f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="18" fill="{fill}" stroke="{stroke}" '
                f'stroke-width="1.5"/>')
    return f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'


def evidence_svg(doc: Mapping[str, Any]) -> str:
    """The argument (``evidence_document(...)["argument"]``) as an inline SVG: goals as
    rectangles, strategies as parallelograms, solutions as ellipses, contexts as rounded
    rectangles beside their goal, an undeveloped goal with a diamond below it; fill and
    border give the verdict (green pass, red fail, amber inconclusive). Each node's full
    text and, for a solution, its files and SHA-256 are in its tooltip (``<title>``)."""
    arg = doc.get("argument") or doc
    pos = _layout(arg)
    width = max((p[0] for p in pos.values()), default=0) + _W + 20
    height = max((p[1] for p in pos.values()), default=0) + _H + 30
    out = [f'<svg class="gsn" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="10" role="img" '
           f'aria-label="GSN argument">']

    def at(nid: str) -> tuple[float, float]:
        x, y = pos[nid]
        return x + 10, y + 10

    for ln in arg["links"]:
        (x1, y1), (x2, y2) = at(ln["from"]), at(ln["to"])
        if ln["kind"] == "supported_by":  # GSN: a solid arrowhead
            a, b, dash, head, fill = (x1 + _W, y1 + _H / 2), (x2, y2 + _H / 2), "", -8, "#444"
        else:  # in context of, from the goal's left side to the context on its left: a hollow arrowhead
            a, b, dash, head, fill = (x1, y1 + _H / 2), (x2 + _W, y2 + _H / 2), ' stroke-dasharray="4 3"', 8, "#fff"
        mid = (a[0] + b[0]) / 2
        out.append(f'<path d="M{a[0]},{a[1]} C{mid},{a[1]} {mid},{b[1]} {b[0] - head},{b[1]}" fill="none" '
                   f'stroke="#444"{dash}/>')
        out.append(f'<polygon points="{b[0]},{b[1]} {b[0] + head},{b[1] - 4} {b[0] + head},{b[1] + 4}" '
                   f'fill="{fill}" stroke="#444"/>')
    for n in arg["nodes"]:
        nid = n["id"]
        x, y = at(nid)
        st = n.get("status")
        tip = [f"{nid} ({n['type']}): {n['text']}"]
        tip += [f"{key}: {n[key]}" for key in ("statement", "reason", "method", "needs") if n.get(key)]
        tip += [f"{f.get('role')}: {f.get('path') or f.get('name') or ''} sha256 "
                f"{f.get('sha256') or f.get('note') or 'not recorded'}" for f in n.get("files") or []]
        out.append(f'<g class="gsn-{n["type"]}"><title>{escape(chr(10).join(tip))}</title>')
        out.append(_shape(n["type"], x, y, _FILL.get(st, "#fff"), _STROKE.get(st, "#555")))
        label = nid + (f" · {st.upper()}" if st in ("pass", "fail", "inconclusive") else "")
        inset = 30 if n["type"] == "solution" else 14  # inside the ellipse's curve
        out.append(f'<text x="{x + inset}" y="{y + 13}" font-weight="bold">{escape(label)}</text>')
        for k, line in enumerate(_lines(n["text"], _CHARS - (4 if n["type"] == "solution" else 0))):
            out.append(f'<text x="{x + inset}" y="{y + 26 + 11 * k}">{escape(line)}</text>')
        if n.get("undeveloped"):
            cx, cy = x + _W / 2, y + _H + 8
            out.append(f'<polygon points="{cx},{cy - 6} {cx + 7},{cy} {cx},{cy + 6} {cx - 7},{cy}" fill="#fff" '
                       f'stroke="{_STROKE.get(st, "#555")}"/>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def solution_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per solution node: id, the goal it supports, its figure and its files."""
    arg = doc.get("argument") or doc
    parent = {ln["to"]: ln["from"] for ln in arg["links"] if ln["kind"] == "supported_by"}
    by_id = {n["id"]: n for n in arg["nodes"]}
    rows = []
    for n in arg["nodes"]:
        if n["type"] == "solution":
            g = by_id.get(parent.get(n["id"], ""), {})
            rows.append({"id": n["id"], "goal": g.get("id"), "goal_text": g.get("text"), "text": n["text"],
                         "status": n.get("status"), "method": n.get("method"), "files": n.get("files") or []})
    return rows


def check_results(results_dir: str | Path, *, suite_dir: str | Path | None = None,
                  spec_path: str | Path | None = None, write: bool = True) -> tuple[dict[str, Any], Path | None]:
    """Judge the acceptance criteria of the suite's spec (or ``spec_path``) on a results
    folder and, with ``write``, save ``RESULTS/evidence.json``; returns (the evidence
    document, its path). A spec without criteria gives status ``none`` and writes nothing."""
    from oddsuite.report.verdicts import evaluate_acceptance

    verdicts = evaluate_acceptance(results_dir, suite_dir=suite_dir, spec_path=spec_path)
    doc = evidence_document(verdicts)
    path = write_evidence(results_dir, doc) if write and verdicts["criteria"] else None
    return doc, path

"""The HTML report: one self-contained file (Jinja2 templates, inline CSS, figures and
images embedded as base64 PNG, no external URL) from a results folder.

Sections: suite and run summary with sample images; mAP tables; ROI outcomes; context
accuracy; context-induced false positives; false positives on full scenes and the TIDE
error breakdown (``report.scoring``); failure slices, heatmaps and rules (from the
trace), each with example images; ROI influence; quantization consistency, fault
injection (with the requantisation mode and the seed's stuck-at finding), lockstep runs and
latency distributions when their folders are there (see ``report.studies``); reduced context
(``report.reduced_context``) when the results were evaluated under inference conditions; the
falsification search (``report.search``) for a search suite. Every rate carries its interval
and count, and a
rate over nothing is written "undefined", never 0.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from oddsuite.errors import OddsuiteError, SuiteError
from oddsuite.report.argument import preface
from oddsuite.report.extras import consistency_summary, find_extra_dirs, read_extra
from oddsuite.suite.layout import ANNOTATIONS, MANIFEST
from oddsuite.suite.manifest import read_manifest
from oddsuite.suite.reader import read_annotations
from oddsuite.report.images import OUTCOME_COLOURS, PRED_COLOUR, FP_COLOUR, ImageDrawer, png_data_uri
from oddsuite.report.reduced_context import reduced_context_section
from oddsuite.report.scoring import full_fp_section, tide_section
from oddsuite.report.search import search_section
from oddsuite.report.studies import faults_findings, latency_sections, lockstep_sections

log = logging.getLogger(__name__)

SECTIONS = [
    ("summary", "Suite and run"),
    ("map", "Detection accuracy (mAP)"),
    ("outcomes", "ROI outcomes"),
    ("context-accuracy", "Context accuracy"),
    ("context-fp", "Context-induced false positives"),
    ("full-fp", "False positives on full scenes"),
    ("tide", "Error breakdown (TIDE)"),
    ("slices", "Failure slices"),
    ("rules", "Failure rules"),
    ("influence", "ROI influence"),
    ("consistency", "Quantization consistency"),
    ("faults", "Fault injection"),
    ("lockstep", "Lockstep runs"),
    ("latency", "Latency distribution"),
    ("reduced-context", "Reduced context"),
    ("search", "Falsification search"),
    ("method", "Method and settings"),
]
MODE_ORDER = {"isolate": 0, "remove": 1, "cutout": 2}


# ----------------------------------------------------------------------------- formatting


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number for a table; None or NaN (nothing to compute it over) is 'undefined'."""
    if x is None:
        return "undefined"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if f != f:
        return "undefined"
    return f"{f:.{digits}f}"


def fmt_rate(r: Any, digits: int = 2) -> str:
    """'0.71 [0.63, 0.78]' for a rate dict; 'undefined (n = 0)' when there is nothing to rate."""
    if not isinstance(r, Mapping) or r.get("value") is None:
        n = r.get("n", 0) if isinstance(r, Mapping) else 0
        return f"undefined (n = {n})"
    ci = r.get("ci95")
    s = f"{float(r['value']):.{digits}f}"
    if ci:
        s += f" [{float(ci[0]):.{digits}f}, {float(ci[1]):.{digits}f}]"
    return s


def fmt_pct(x: Any) -> str:
    return "undefined" if x is None else f"{100 * float(x):.0f}%"


def fmt_signed(x: Any, digits: int = 2) -> str:
    return "undefined" if x is None else f"{float(x):+.{digits}f}"


def fmt_value(v: Any) -> str:
    """A JSON value of another command's output, for a generic table."""
    if isinstance(v, Mapping) and "value" in v:
        s = fmt_rate(v, 3) if "ci95" in v else fmt_num(v.get("value"))
        if "n" in v:
            s += f" (n = {v['n']})"
        return s
    if v is None:
        return "undefined"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ----------------------------------------------------------------------------- reading


def _read_json(path: Path, what: str, notes: list[str]) -> Any:
    if not path.is_file():
        notes.append(f"{path.name} not found in the results folder: {what} not shown")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OddsuiteError(f"{path}: not valid JSON ({e})") from e


def _get(d: Any, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return default
        d = d[k]
    return d


def _map_rows(slices: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name, s in (slices or {}).items():
        if isinstance(s, Mapping):
            rows.append({"name": name, **{k: s.get(k) for k in ("map", "ap50", "ap75", "n_images", "n_gt", "n_dets")}})
    return rows


def _acc_rows(by: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"name": k, **v} for k, v in (by or {}).items() if isinstance(v, Mapping)]


# ----------------------------------------------------------------------------- examples


class _Examples:
    """Picks and draws the images of an example: the full scene next to the masked ROI
    renders of the same scene and variant that show what happens to the ROI."""

    def __init__(self, drawer: ImageDrawer, outcomes: pd.DataFrame, max_images: int = 3):
        self.d = drawer
        self.max_images = max_images
        self.full: dict[tuple[int, str], int] = {}
        self.perm: dict[tuple[int, str, int], list[tuple[int, str, str, int]]] = {}
        for im in drawer.images.values():
            key = (int(im["scene_id"]), str(im["variant"]))
            if im.get("mode") == "full":
                self.full.setdefault(key, int(im["id"]))
        rows = outcomes[["image_id", "scene_id", "variant", "mode", "roi_id", "subset_size", "outcome", "ignore",
                         "not_visible"]]
        for r in rows.itertuples(index=False):
            if r.mode == "full":
                continue
            o = "ignore" if bool(r.ignore) or bool(r.not_visible) else str(r.outcome)
            self.perm.setdefault((int(r.scene_id), str(r.variant), int(r.roi_id)), []).append(
                (int(r.subset_size), str(r.mode), o, int(r.image_id)))

    def group(self, ex: Mapping[str, Any]) -> dict[str, Any]:
        """The full scene whole, then zoomed: the full scene, the ROI alone (first masking
        mode of isolate / remove / cutout), and the smallest context where it fails."""
        scene, variant, roi = int(ex["scene_id"]), str(ex["variant"]), int(ex["roi_id"])
        ids: list[int] = []
        full = self.full.get((scene, variant))
        if full is not None:
            ids.append(full)
        if int(ex["image_id"]) not in ids:
            ids.append(int(ex["image_id"]))
        perm = sorted(self.perm.get((scene, variant, roi), []), key=lambda t: (t[0], MODE_ORDER.get(t[1], 9), t[3]))
        alone = [t for t in perm if t[0] == 1 and t[3] not in ids]
        failing = [t for t in perm if t[0] > 1 and t[2] in ("miss", "mislabel") and t[3] not in ids]
        for t in alone[:1] + failing[:1]:
            if len(ids) < self.max_images:
                ids.append(t[3])
        ids = ids[:self.max_images]
        title = f"scene {scene} · {variant} · ROI {roi} ({ex.get('category') or '?'}): {ex.get('outcome')}"
        return {"title": title, "images": self._images(ids, [roi], [], scene)}

    def _images(self, ids: list[int], highlight: list[int], secondary: list[int], scene: int) -> list[dict[str, Any]]:
        """The first image whole (the zoom window outlined), then every image zoomed on the ROIs."""
        if not ids:
            return []
        box = self.d.roi_box(scene, highlight + secondary)
        window = self.d.zoom_window(ids[0], box)
        roi = highlight[0] if highlight else None
        out = [{"uri": self.d.draw(ids[0], highlight=highlight, secondary=secondary, outline=window),
                "caption": self.d.caption(ids[0], roi)}]
        for i in (ids if window is not None else ids[1:]):
            out.append({"uri": self.d.draw(i, highlight=highlight, secondary=secondary, window=window),
                        "caption": self.d.caption(i, roi, zoom=window is not None)})
        return out

    def flip(self, ex: Mapping[str, Any]) -> dict[str, Any]:
        """The image with ROI r whole (zoom window outlined), then without and with r, zoomed."""
        o, r, scene = int(ex["target_roi"]), int(ex["other_roi"]), int(ex["scene_id"])
        without, with_r = int(ex["image_without"]), int(ex["image_with"])
        window = self.d.zoom_window(with_r, self.d.roi_box(scene, [o, r]))
        images = []
        if window is not None:
            images.append({"uri": self.d.draw(with_r, highlight=[o], secondary=[r], outline=window),
                           "caption": self.d.caption(with_r, o)})
        for i in (without, with_r):
            images.append({"uri": self.d.draw(i, highlight=[o], secondary=[r], window=window),
                           "caption": self.d.caption(i, o, zoom=window is not None)})
        return {"title": f"scene {scene} · {ex['variant']} · {ex['mode']}: ROI {o} without / with ROI {r}",
                "images": images}


# ----------------------------------------------------------------------------- report


def _load_trace(res: Path, trace: Mapping[str, Any] | None, options: Mapping[str, Any] | None,
                suite_dir: Path | None, notes: list[str]) -> tuple[dict[str, Any] | None, str]:
    from oddsuite.trace import TRACE_DIR, TRACE_JSON, load_trace, trace_results

    if trace is not None:
        return dict(trace), "given"
    saved = res / TRACE_DIR / TRACE_JSON
    outcomes = res / "outcomes.parquet"
    if not outcomes.is_file():
        notes.append("outcomes.parquet not found: no failure trace")
        return None, "none"
    if saved.is_file() and not options:
        if saved.stat().st_mtime >= outcomes.stat().st_mtime:
            return load_trace(saved), f"{TRACE_DIR}/{TRACE_JSON}"
        notes.append(f"{TRACE_DIR}/{TRACE_JSON} is older than outcomes.parquet: failures traced again for this "
                     f"report (run `oddsuite trace` to update the saved trace)")
    t = trace_results(res, suite_dir=suite_dir, write=False, **dict(options or {}))
    return t.data, "computed for this report (not saved; run `oddsuite trace` to save it)"


@dataclass
class _Inputs:
    """What a report is built from: the results folder's files, the suite's (when found) and
    the trace; ``notes`` collects what is missing, for the report to say so."""

    res: Path
    notes: list[str]
    metrics: dict[str, Any]
    run: dict[str, Any]
    suite: Path | None
    trace: dict[str, Any] | None
    trace_source: str
    conf: float
    iou: float
    manifest: dict[str, Any] = field(default_factory=dict)
    gt: dict[str, Any] | None = None
    drawer: ImageDrawer | None = None
    examples: _Examples | None = None


def _read_inputs(res: Path, suite_dir: str | Path | None, trace: Mapping[str, Any] | None,
                 trace_options: Mapping[str, Any] | None, image_width: int | None) -> _Inputs:
    from oddsuite.trace import find_suite

    if not res.is_dir():
        raise OddsuiteError(f"{res}: not a results folder")
    if not any((res / name).is_file() for name in ("metrics.json", "outcomes.parquet")):
        what = "a suite" if (res / MANIFEST).is_file() and (res / ANNOTATIONS).is_file() else "no results folder"
        raise OddsuiteError(f"{res}: {what}: a report needs a results folder with metrics.json or outcomes.parquet "
                            f"(run `oddsuite evaluate SUITE --model M --out RES` or `oddsuite score` first)")
    notes: list[str] = []
    metrics = _read_json(res / "metrics.json", "scores", notes) or {}
    run = _read_json(res / "run.json", "run details", notes) or {}
    suite = find_suite(res, suite_dir)
    if suite is None:
        notes.append(f"suite folder not found ({_get(run, 'suite', 'path') or 'run.json has no suite path'}; "
                     f"pass --suite DIR): no images, suite summary from run.json only")
    outcomes = None
    if (res / "outcomes.parquet").is_file():
        outcomes = pd.read_parquet(res / "outcomes.parquet")
    else:
        notes.append("outcomes.parquet not found: no failure trace or example images")
    trace_data, trace_source = _load_trace(res, trace, trace_options, Path(suite) if suite else None, notes)
    inp = _Inputs(res, notes, metrics, run, Path(suite) if suite else None, trace_data, trace_source,
                  conf=float(_get(metrics, "settings", "conf", default=None) or _get(run, "settings", "conf", default=0.25)),
                  iou=float(_get(metrics, "settings", "iou", default=None) or _get(run, "settings", "iou", default=0.5)))
    if inp.suite is not None:
        _read_suite(inp, outcomes, image_width)
    return inp


def _read_suite(inp: _Inputs, outcomes: pd.DataFrame | None, image_width: int | None) -> None:
    """The suite's manifest and ground truth, the predictions, and the image drawer."""
    if (inp.suite / MANIFEST).is_file():
        try:
            inp.manifest = read_manifest(inp.suite)
        except SuiteError as e:
            inp.notes.append(str(e))
    inp.gt = read_annotations(inp.suite)
    preds: list[Any] = []
    ppath = inp.res / "predictions.json"
    if ppath.is_file():
        preds = json.loads(ppath.read_text(encoding="utf-8"))
    else:
        inp.notes.append("predictions.json not found: images show ground truth only")
    if outcomes is not None:
        kw = {"width": image_width} if image_width else {}
        inp.drawer = ImageDrawer(inp.suite, inp.gt, preds, outcomes, conf=inp.conf, **kw)
        inp.examples = _Examples(inp.drawer, outcomes)


def _summary_section(inp: _Inputs) -> dict[str, Any]:
    """Suite and run: the spec, seed, sizes, variants, masking modes, detector, hashes, counts."""
    manifest, gt, run, metrics = inp.manifest, inp.gt, inp.run, inp.metrics
    modes = (["full"] + list(_get(manifest, "plan", "modes", default=[]) or [])) if manifest else []
    if not modes and gt is not None:
        modes = sorted({str(im["mode"]) for im in gt["images"]}, key=lambda m: (m != "full", m))
    variants = manifest.get("variants") or (sorted({str(im["variant"]) for im in gt["images"]}) if gt else [])
    return {
        "spec": _get(manifest, "spec", "name"), "spec_sha256": _get(manifest, "spec", "sha256"),
        "seed": manifest.get("seed", _get(gt, "info", "suite_seed") if gt else None),
        "scenes": manifest.get("scenes", len({im["scene_id"] for im in gt["images"]}) if gt else None),
        "images": manifest.get("images", _get(run, "suite", "n_images")),
        "variants": variants, "modes": modes, "plan": _get(manifest, "plan", "plan"),
        "categories": manifest.get("categories") or ([c["name"] for c in gt["categories"]] if gt else []),
        "manifest_sha256": _get(run, "suite", "manifest_sha256"),
        "suite_identity": _get(run, "suite", "identity") or _get(metrics, "evidence", "suite_identity"),
        "suite_path": str(inp.suite) if inp.suite else _get(run, "suite", "path"),
        "detector": _get(run, "detector", "name"), "model_sha256": _get(run, "detector", "model_sha256"),
        "detector_classes": list((_get(run, "detector", "classes") or {}).values()),
        "predictions_sha256": run.get("predictions_sha256"), "iou": inp.iou, "conf": inp.conf,
        "predictions_source": run.get("predictions_source"),
        "engine": " ".join(str(v) for v in (run.get("engine") or {}).values()) or None,
        "counts": metrics.get("counts") or {}, "versions": run.get("versions") or {},
        "dropped": metrics.get("dropped_classes"), "results_path": str(inp.res.resolve()),
    }


def _sample_images(inp: _Inputs) -> list[dict[str, Any]]:
    """The first scene's full images and a few of its permutations, one per masking mode first."""
    drawer, gt = inp.drawer, inp.gt
    if drawer is None or gt is None or not gt["images"]:
        return []
    first = min(int(im["scene_id"]) for im in gt["images"])
    ims = [im for im in gt["images"] if int(im["scene_id"]) == first]
    fulls = [im for im in ims if im["mode"] == "full"][:4]
    v0 = fulls[0]["variant"] if fulls else ims[0]["variant"]
    perms = sorted((im for im in ims if im["mode"] != "full" and im["variant"] == v0),
                   key=lambda im: (len(im["subset"]), MODE_ORDER.get(im["mode"], 9), im["id"]))
    seen_modes: set[str] = set()
    picked = []
    for im in perms:
        if im["mode"] not in seen_modes:
            seen_modes.add(im["mode"])
            picked.append(im)
    for im in perms:
        if len(picked) >= 4:
            break
        if im not in picked and len(im["subset"]) > 1:
            picked.append(im)
    return [{"uri": drawer.draw(int(im["id"])), "caption": drawer.caption(int(im["id"]))} for im in fulls + picked[:4]]


def _map_section(metrics: Mapping[str, Any]) -> dict[str, Any]:
    m = metrics.get("map") or {}
    return {
        "headline": [
            ("full-scene images", m.get("full")), ("permutation images", m.get("permutation")),
            ("isolated ROIs (subset size 1)", m.get("isolated")),
        ],
        "per_class": [{"name": k, **v} for k, v in (_get(m, "full", "per_class") or {}).items()],
        "full_by_variant": _map_rows(m.get("full_by_variant")),
        "by_subset_size": _map_rows(m.get("permutation_by_subset_size")),
        "by_variant": _map_rows(m.get("permutation_by_variant")),
        "by_mode": _map_rows(m.get("permutation_by_mode")),
        "rpc": metrics.get("rpc") or {},
    }


def _context_section(metrics: Mapping[str, Any]) -> dict[str, Any]:
    ca = metrics.get("context_accuracy") or {}
    return {"overall": ca.get("overall"), "tables": [
        ("class", _acc_rows(ca.get("by_class"))), ("variant", _acc_rows(ca.get("by_variant"))),
        ("subset size", _acc_rows(ca.get("by_subset_size"))), ("masking mode", _acc_rows(ca.get("by_mode")))]}


def _context_fp_example(cfp: Mapping[str, Any], drawer: ImageDrawer | None) -> dict[str, Any] | None:
    """The image with the most context-induced false positives, drawn."""
    worst = sorted(cfp.get("by_image") or [], key=lambda r: (-int(r.get("n_context_fp", 0)), int(r.get("image_id", 0))))
    if drawer is None or not worst:
        return None
    i = int(worst[0]["image_id"])
    return {"uri": drawer.draw(i, fp=True), "caption": drawer.caption(i), "n": int(worst[0]["n_context_fp"])}


def _trace_examples(trace_data: Mapping[str, Any], examples: _Examples, n_examples: int,
                    n_example_slices: int) -> dict[str, list[dict[str, Any]]]:
    """Example images of the top failing slices, rules and ROI influences; a failing ROI is
    shown once in the report."""
    shown: set[tuple[int, str, int]] = set()

    def fresh(exs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Up to n_examples groups of failing ROIs not shown above."""
        out = []
        for e in exs:
            key = (int(e["scene_id"]), str(e["variant"]), int(e["roi_id"]))
            if key in shown or len(out) >= n_examples or e.get("inference", "reference") != "reference":
                # (a failure under another inference condition: drawn in the reduced-context section)
                continue
            shown.add(key)
            out.append(examples.group(e))
        return out

    slice_examples, rule_examples, influence_examples = [], [], []
    for s in (trace_data.get("slices") or [])[:n_example_slices]:
        if s.get("diff") is None or s["diff"] <= 0 or not s.get("examples"):
            continue
        slice_examples.append({"condition": s["condition"], "rate": s["rate"], "n": s["n"],
                               "significant": s.get("score") is not None and s["score"] > 0,
                               "groups": fresh(s["examples"])})
    for r in [r for r in trace_data.get("rules") or [] if r.get("above_overall")][:n_example_slices]:
        if r.get("examples"):
            rule_examples.append({"text": r["text"], "rate": r["rate"], "n": r["n"], "groups": fresh(r["examples"])})
    for c in _get(trace_data, "influence", "by_target_class", default=[]) or []:
        for row in c.get("rows", []):
            if row.get("example"):
                g = examples.flip(row["example"])
                g["title"] = f"{c['target_category']} with a {row['other_category']} ({row['relation']}): " + g["title"]
                influence_examples.append(g)
                break
        if len(influence_examples) >= 4:
            break
    return {"slice_examples": slice_examples, "rule_examples": rule_examples, "influence_examples": influence_examples}


def _extras(res: Path, compare: Sequence[str | Path] | None,
            faults: Sequence[str | Path] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The consistency (compare) and fault-injection folders: their tables and embedded plots."""
    res_compare = [Path(p) for p in compare] if compare else find_extra_dirs(res, "compare")
    res_faults = [Path(p) for p in faults] if faults else find_extra_dirs(res, "fault")
    compare_data = []
    for p in res_compare:
        e = read_extra(p, "compare")
        e["summaries"] = [{"name": j["name"], **s} for j in e["json"]
                          if (s := consistency_summary(j["data"])) is not None]
        compare_data.append(e)
    faults_data = [{**read_extra(p, "faults"), "findings": faults_findings(p)} for p in res_faults]
    for e in compare_data + faults_data:
        for j in e["json"]:
            j.pop("data", None)
        for p in e["png"]:
            p["uri"] = png_data_uri(p.pop("png"))
    return compare_data, faults_data


def report_context(results_dir: str | Path, *, suite_dir: str | Path | None = None,
                   compare: Sequence[str | Path] | None = None, faults: Sequence[str | Path] | None = None,
                   trace: Mapping[str, Any] | None = None, trace_options: Mapping[str, Any] | None = None,
                   n_examples: int = 2, n_example_slices: int = 3, image_width: int | None = None,
                   lockstep: Sequence[str | Path] | None = None,
                   latency: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain values (see ``build_report``), one builder per section."""
    from oddsuite.trace.figures import trace_figures

    for d in list(compare or []) + list(faults or []) + list(lockstep or []) + list(latency or []):
        if not Path(d).is_dir():
            raise OddsuiteError(f"{d}: not a folder")
    inp = _read_inputs(Path(results_dir), suite_dir, trace, trace_options, image_width)
    summary = _summary_section(inp)
    samples = _sample_images(inp)
    maps = _map_section(inp.metrics)
    context = _context_section(inp.metrics)
    cfp = inp.metrics.get("context_fp") or {}
    cfp_example = _context_fp_example(cfp, inp.drawer)
    figs: dict[str, str] = {}
    trace_ex: dict[str, list[dict[str, Any]]] = {"slice_examples": [], "rule_examples": [], "influence_examples": []}
    if inp.trace is not None:
        figs = {k: png_data_uri(v) for k, v in trace_figures(inp.trace).items()}
        if inp.examples is not None:
            trace_ex = _trace_examples(inp.trace, inp.examples, n_examples, n_example_slices)
    compare_data, faults_data = _extras(inp.res, compare, faults)
    title_bits = [b for b in (summary["detector"], summary["spec"]) if b]
    return {
        "title": "oddsuite validation report" + (f": {' on '.join(title_bits)}" if title_bits else ""),
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "sections": SECTIONS, "notes": inp.notes, "glance": _at_a_glance(maps, context, inp.trace),
        "summary": summary, "samples": samples, "map": maps,
        "outcomes": inp.metrics.get("outcomes") or {}, "context": context, "context_fp": cfp,
        "context_fp_example": cfp_example, "full_fp": full_fp_section(inp.metrics, inp.drawer),
        "tide": tide_section(inp.metrics), "trace": inp.trace,
        "trace_source": inp.trace_source, "figs": figs, **trace_ex,
        "compare": compare_data, "faults": faults_data,
        "reduced_context": reduced_context_section(inp.metrics, inp.res, inp.suite, inp.gt, inp.conf,
                                                   **({"width": image_width} if image_width else {})),
        "search": search_section(inp.suite, inp.trace, summary["model_sha256"]),
        "lockstep": lockstep_sections(inp.res, lockstep), "latency": latency_sections(inp.res, latency),
        "colours": {k: "rgb%s" % (v,) for k, v in {**OUTCOME_COLOURS, "prediction": PRED_COLOUR,
                                                   "unmatched": FP_COLOUR}.items()},
        "has_images": inp.drawer is not None,
        "preface": preface(inp.res, inp.metrics, inp.suite),  # verdicts, GSN argument, ODD coverage (#18)
    }


def _summary(text: str, rec: Mapping[str, Any]) -> str:
    from oddsuite.trace.core import _summary as summary

    return summary(text, rec)


def _at_a_glance(maps: Mapping[str, Any], context: Mapping[str, Any],
                 trace: Mapping[str, Any] | None) -> list[str]:
    """A few headline lines, each with its interval and count, pointing to the sections."""
    out = []
    full = dict(maps["headline"]).get("full-scene images")
    if full:
        out.append(f"Full-scene mAP {fmt_num(full.get('map'))}, AP50 {fmt_num(full.get('ap50'))} "
                   f"(n = {full.get('n_images')} images, {full.get('n_gt')} boxes).")
    if trace:
        ov = trace["overall"]
        out.append(f"Failure rate (miss or mislabel) of ROIs in {trace['settings']['image_set_text']}: "
                   f"{fmt_rate(ov['rate'])}, n = {ov['n']}.")
        bad = [s for s in trace.get("slices") or [] if s.get("score") is not None and s["score"] > 0]
        if bad:
            out.append(f"Most clearly failing condition: {bad[0].get('summary') or _summary(bad[0]['condition'], bad[0])}.")
        rules = [r for r in trace.get("rules") or [] if r.get("above_overall") and r.get("conditions")]
        if rules:
            out.append(f"Top failure rule: {rules[0].get('summary') or _summary(rules[0]['text'], rules[0])}.")
        best = None
        for c in (trace.get("influence") or {}).get("by_target_class") or []:
            for r in c.get("rows") or []:
                if (r.get("influence") or 0) > 0 and r["n_pairs"] >= trace["influence"].get("min_pairs", 1):
                    if best is None or r["influence"] > best["influence"]:
                        best = r
        if best is not None:
            out.append(f"Most harmful co-present ROI: a {best['other_category']} ({best['relation']}) lowers the "
                       f"hit rate of a {best['target_category']} by {best['influence']:.2f} "
                       f"(n = {best['n_pairs']} image pairs over {best.get('n_roi_pairs', '?')} ROI pair(s)).")
        out += _presence_glance(trace)
    ca = context.get("overall")
    if ca:
        out.append(f"Context accuracy {fmt_rate(ca)}, n = {ca.get('n', 0)} ROIs.")
    return out


def _presence_glance(trace: Mapping[str, Any]) -> list[str]:
    """The top class-presence cause and what the suite's plan could not separate (trace.presence)."""
    from oddsuite.trace.presence import presence_summary
    from oddsuite.trace.summary import top_causes, unseparated

    top = top_causes(trace)["presence"]
    out = [f"Top class-presence cause: {presence_summary(top)}."] if top is not None else []
    hidden = unseparated(trace)
    if hidden:
        out.append(f"Not separable by this suite's plan: {len(hidden)} (target class, class) pair(s), e.g. "
                   f"{hidden[0]['other_category']} → {hidden[0]['target_category']}; "
                   f"{trace['presence']['separating_plans']} would separate them.")
    return out


def _environment() -> Any:
    import jinja2

    here = Path(__file__).parent / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(here)),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt_num, rate=fmt_rate, pct=fmt_pct, signed=fmt_signed, value=fmt_value)
    return env


def render_report(results_dir: str | Path, **options: Any) -> str:
    """The report's HTML text (options as ``build_report``)."""
    ctx = report_context(results_dir, **options)
    return _environment().get_template("report.html").render(**ctx)


def build_report(results_dir: str | Path, out: str | Path | None = None, **options: Any) -> Path:
    """Write the report of a results folder to ``out`` (default RESULTS_DIR/report.html).

    options: ``suite_dir`` (default: run.json's suite path), ``compare`` / ``faults`` /
    ``lockstep`` / ``latency`` (folders; default: RESULTS_DIR/compare*, RESULTS_DIR/fault*,
    RESULTS_DIR/lockstep*, RESULTS_DIR/latency*), ``trace`` (a trace.json
    dict; default: RESULTS_DIR/trace/trace.json, else computed without saving),
    ``trace_options`` (``trace_outcomes`` options; given, the trace is recomputed),
    ``n_examples`` (example scenes per slice or rule), ``n_example_slices``, ``image_width``.
    """
    from oddsuite.fileio import atomic_write_bytes as write_bytes_atomic

    html = render_report(results_dir, **options)
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    write_bytes_atomic(path, html.encode("utf-8"))
    return path


def section_ids() -> list[str]:
    return [s for s, _ in SECTIONS]


__all__ = ["build_report", "render_report", "report_context", "section_ids", "SECTIONS"]

"""Verdicts of a spec's acceptance criteria (``odd.acceptance``) on one results folder.

**Which images.** A criterion is judged on the images *inside the ODD*: those whose value
of every dimension lies in one of its levels (``odd.coverage``) and keeps the spec's
rules. An image a variant pushes beyond the sampled domains (``fog_150m`` in a spec whose
fog is fixed at 10 km) is a stress test, counted but never part of a verdict. Full-scene
images give the hit and failure rates, mAP, AP50 and FP per image; permutation images
give context accuracy and the context-induced FP rate. ``variant:`` keeps one variant's
images; ``per:`` judges every level of a dimension (``odd.coverage``'s levels, the same
as trace's and the coverage table's) or every variant, and lists every slice (a variant
that sets a value beyond the spec's domains is listed as not judged).

**Judged at the pessimistic end** (``judge``). With the figure's 95% interval [lo, hi]
and a threshold ``min: t``: PASS when lo ≥ t, FAIL when hi < t, INCONCLUSIVE otherwise
(``max: t``: PASS when hi ≤ t, FAIL when lo > t). The intervals:

- rates (hit rate, failure rate, context-induced FP rate): Wilson score interval;
- mAP and AP50: hotcoco's bootstrap over the images (``hotcoco.compare`` against a
  detector with no detections, whose AP is 0 in every resample, so the interval of the
  difference is the interval of the mAP; ``BOOTSTRAP_RESAMPLES`` resamples, seed
  ``BOOTSTRAP_SEED``);
- FP per image: a seeded percentile bootstrap of the mean over images
  (``metrics.stats.bootstrap_mean``); context accuracy: its own bootstrap over ROI units;
- coverage (of the full-scene images inside the ODD, as metrics.json counts it) is a fact
  of the suite, not a sample estimate: compared as it is (point).

A slice with nothing to judge (n = 0) is INCONCLUSIVE. A criterion over slices fails when
one slice fails, else is inconclusive when one slice is, else passes; so is the whole.

**More data** (``more_needed``). For an inconclusive rate at the observed value p, the
Wilson interval excludes t exactly when n > z²·t(1−t)/(p−t)² (z = 1.96: the interval is
the set of rates q with (p−q)² ≤ z²·q(1−q)/n), so the smallest total count is
n* = ⌈z²·t(1−t)/(p−t)²⌉ (one more when the verdict it leads to is a failure, which needs
the interval strictly past t); ``n* − n`` more units are needed, and, where the units are
ROIs, ``⌈(n* − n) · images / ROIs⌉`` more images at the slice's ROIs per image. For a
bootstrap interval, whose width shrinks as 1/√n, n* = ⌈n·(h/|v−t|)²⌉ with h the half-width
on the side of t (an estimate, stated as such). Whether more data would lead to a pass or
a failure follows from the side of t the observed value lies on.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.evaluate.loop import METRICS, OUTCOMES, PREDICTIONS, RUN
from oddsuite.suite.layout import ANNOTATIONS, MANIFEST, SCENES
from oddsuite.errors import OddsuiteError
from oddsuite.evaluate.coverage import FULL_MODE, SPEC_FILE, suite_spec
from oddsuite.fileio import sha256_file
from oddsuite.metrics.context import context_accuracy, context_false_positives
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, image_table, outcome_tables
from oddsuite.metrics.stats import Z95, bootstrap_mean, json_clean, rate, wilson_interval
from oddsuite.odd import OddSpec, load_spec
from oddsuite.odd.acceptance import PER_VARIANT, Criterion, as_dict, describe
from oddsuite.odd.coverage import OddCoverage, odd_coverage

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: ``oddsuite check``'s exit code per overall verdict (2 is every CLI's input error)
EXIT_CODES = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}
#: mAP bootstrap: resamples of the images and the seed (the same results give the same interval)
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
#: the results files a verdict rests on (docs/FORMAT.md)
RESULT_FILES = (METRICS, OUTCOMES, PREDICTIONS, RUN)


# ----------------------------------------------------------------------------- judging one figure

def wilson_n_needed(p: float, t: float, *, to_fail: bool = False, z: float = Z95) -> int | None:
    """The smallest count n at which the Wilson interval of an observed rate ``p`` clears
    ``t`` (lower end ≥ t when p > t, upper end ≤ t when p < t; strictly past t with
    ``to_fail``): ⌈z²·t(1−t)/(p−t)²⌉, or one more than its floor with ``to_fail``. None
    when p == t (no count separates them). Source: the Wilson interval is
    {q : (p−q)² ≤ z²·q(1−q)/n} (Wilson 1927)."""
    if p == t or not (0.0 < t < 1.0):
        return None
    x = z * z * t * (1.0 - t) / (p - t) ** 2
    n = math.floor(x) + 1 if to_fail else max(1, math.ceil(x))
    for _ in range(64):  # guard against rounding at the boundary: check with the interval itself
        lo, hi = wilson_interval(p * n, n, z)  # type: ignore[misc]
        ok = (lo > t if p > t else hi < t) if to_fail else (lo >= t if p > t else hi <= t)
        if ok:
            return n
        n += 1
    return n


def judge(figure: Mapping[str, Any], key: str, threshold: float, kind: str) -> dict[str, Any]:
    """The verdict of one figure (``value``, ``ci95``, ``n`` units, ``n_images``) against
    ``min`` or ``max`` (``key``) ``threshold``, judged as ``kind`` (rate, bootstrap, point):
    ``{"status", "reason", "more"}``, ``more`` = ``{"units", "images", "towards"}`` for an
    inconclusive figure when a count can be given (see the module doc)."""
    v, ci, n = figure.get("value"), figure.get("ci95"), int(figure.get("n") or 0)
    t = float(threshold)
    want_low = key == "min"
    if v is None or n == 0:
        return {"status": INCONCLUSIVE, "reason": "nothing to judge here (n = 0)", "more": None}
    v = float(v)
    if kind == "point":
        ok = v >= t if want_low else v <= t
        return {"status": PASS if ok else FAIL, "reason": "compared as it is (a fact of the suite, no interval)",
                "more": None}
    if not ci:
        return {"status": INCONCLUSIVE, "reason": f"no interval from n = {n} (one unit shows no spread)",
                "more": None}
    lo, hi = float(ci[0]), float(ci[1])
    if want_low:
        if lo >= t:
            return {"status": PASS, "reason": f"lower end {lo:.3f} ≥ {t:g}", "more": None}
        if hi < t:
            return {"status": FAIL, "reason": f"upper end {hi:.3f} < {t:g}", "more": None}
    else:
        if hi <= t:
            return {"status": PASS, "reason": f"upper end {hi:.3f} ≤ {t:g}", "more": None}
        if lo > t:
            return {"status": FAIL, "reason": f"lower end {lo:.3f} > {t:g}", "more": None}
    return {"status": INCONCLUSIVE, "reason": f"the interval [{lo:.3f}, {hi:.3f}] holds {t:g}",
            "more": more_needed(figure, key, t, kind)}


def more_needed(figure: Mapping[str, Any], key: str, t: float, kind: str) -> dict[str, Any] | None:
    """How many more units (and images) would settle an inconclusive figure at its observed
    value, and towards which verdict (see the module doc); None when v == t."""
    v, n = float(figure["value"]), int(figure["n"])
    if v == t:
        return None
    towards = PASS if (v > t) == (key == "min") else FAIL
    if kind == "rate":
        total = wilson_n_needed(v, t, to_fail=towards == FAIL)
        if total is None:
            return None
        method = "Wilson: n* = ⌈1.96²·t(1−t)/(p−t)²⌉"
    else:
        lo, hi = (float(x) for x in figure["ci95"])
        h = (v - lo) if t < v else (hi - v)
        total = math.ceil(n * (h / abs(v - t)) ** 2)
        method = "bootstrap width ∝ 1/√n: n* ≈ n·(h/|v−t|)² (an estimate)"
    units = max(1, total - n)
    n_img = int(figure.get("n_images") or 0)
    unit = figure.get("unit", "images")
    images = units if unit == "images" or n == 0 else math.ceil(units * n_img / n)
    return {"units": int(units), "unit": unit, "images": int(images), "towards": towards, "method": method}


def combine(statuses: Sequence[str]) -> str:
    """A failure wins over an inconclusive figure, which wins over a pass."""
    if FAIL in statuses:
        return FAIL
    if INCONCLUSIVE in statuses or not statuses:
        return INCONCLUSIVE
    return PASS


# ----------------------------------------------------------------------------- inputs

def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise OddsuiteError(f"{path}: missing (docs/FORMAT.md lists the results files)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OddsuiteError(f"{path}: not valid JSON ({e})") from e


@dataclass
class Inputs:
    """Everything the verdicts rest on: the results folder, its suite, the spec."""

    results: Path
    suite: Path
    spec: OddSpec
    spec_path: Path

    @classmethod
    def load(cls, results_dir: str | Path, *, suite_dir: str | Path | None = None,
             spec_path: str | Path | None = None) -> "Inputs":
        """Raises OddsuiteError naming what is missing (the suite, its spec, a results file)."""
        from oddsuite.trace.core import find_suite, recorded_suite

        res = Path(results_dir)
        if not res.is_dir():
            raise OddsuiteError(f"{res}: not a results folder")
        suite = find_suite(res, suite_dir)
        if suite is None:
            raise OddsuiteError(f"{res}: its suite was not found ({recorded_suite(res)[1]}); pass --suite DIR")
        if spec_path is not None:
            spec, sp = load_spec(spec_path), Path(spec_path)
        else:
            spec, sp = suite_spec(suite), Path(suite) / SPEC_FILE
            if spec is None:
                raise OddsuiteError(f"{suite}: keeps no {SPEC_FILE}; give the spec with --spec FILE")
        return cls(res, Path(suite), spec, sp)

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return _read_json(self.results / METRICS)

    @cached_property
    def run(self) -> dict[str, Any]:
        return _read_json(self.results / RUN) if (self.results / RUN).is_file() else {}

    @property
    def iou(self) -> float:
        return float((self.metrics.get("settings") or {}).get("iou") or DEFAULT_IOU)

    @property
    def conf(self) -> float:
        return float((self.metrics.get("settings") or {}).get("conf") or DEFAULT_CONF)

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        path = self.results / OUTCOMES
        if not path.is_file():
            raise OddsuiteError(f"{path}: missing; run `oddsuite evaluate` or `oddsuite score` first")
        return pd.read_parquet(path)

    @cached_property
    def scenes(self) -> pd.DataFrame:
        return pd.read_parquet(self.suite / SCENES)

    @cached_property
    def gt(self) -> dict[str, Any]:
        return _read_json(self.suite / ANNOTATIONS)

    @cached_property
    def predictions(self) -> list[dict[str, Any]]:
        return _read_json(self.results / PREDICTIONS)

    @cached_property
    def odd(self) -> OddCoverage:
        return odd_coverage(self.spec)

    @cached_property
    def codes(self) -> np.ndarray:
        """Level index of every image (scenes.parquet rows) on every ODD axis."""
        return self.odd.codes(self.scenes)

    @cached_property
    def in_odd(self) -> np.ndarray:
        """Per image: every value inside a level of the ODD and every rule kept."""
        return self.odd.inside(self.scenes, self.codes)

    @cached_property
    def detections(self) -> pd.DataFrame:
        cats = None
        rois_path = self.suite / "rois.parquet"
        if rois_path.is_file():
            rois = pd.read_parquet(rois_path)
            cats = {(int(s), int(r)): int(c) for s, r, c in rois[["scene_id", "roi_id", "category_id"]].itertuples(index=False)}
        return outcome_tables(self.gt, self.predictions, iou=self.iou, conf=self.conf, roi_categories=cats)[1]

    @cached_property
    def coco(self) -> Any:
        """The hotcoco ground truth and detections of the suite (``metrics.coco.SliceEvaluator``)."""
        from oddsuite.metrics.coco import SliceEvaluator

        return SliceEvaluator(self.gt, self.predictions)

    @cached_property
    def context_fp(self) -> pd.DataFrame:
        """Per multi-ROI image: its context-induced false positives (``metrics.context``)."""
        return context_false_positives(self.detections, self.images, iou=self.iou)[1]

    @cached_property
    def images(self) -> pd.DataFrame:
        return image_table(self.gt)

    @cached_property
    def category_ids(self) -> dict[str, int]:
        return {str(c["name"]): int(c["id"]) for c in self.gt["categories"]}

    def sources(self) -> dict[str, Any]:
        """Every file the verdicts rest on, with its SHA-256 (the links of the evidence)."""
        def entry(path: Path) -> dict[str, Any]:
            return {"path": str(path.resolve()), "sha256": sha256_file(path) if path.is_file() else None}

        det = self.run.get("detector") or {}
        return {
            "spec": {"name": self.spec.name, **entry(self.spec_path)},
            "suite": {"path": str(self.suite.resolve()), "manifest": entry(self.suite / MANIFEST)},
            "model": {"name": det.get("name"), "sha256": det.get("model_sha256"),
                      "predictions_source": (self.run.get("predictions_source") or {}).get("sha256")},
            "results": {"path": str(self.results.resolve()),
                        **{name: entry(self.results / name)["sha256"] for name in RESULT_FILES}},
        }


# ----------------------------------------------------------------------------- figures

def map_interval(ev: Any, annotations: Sequence[Mapping[str, Any]], ids: Sequence[int], cat: int | None,
                 stat: str) -> tuple[float | None, list[float] | None, int]:
    """(value, ci95, n_gt) of COCO mAP (``stat`` 'AP') or AP50 ('AP50') over the images
    ``ids`` (one category with ``cat``): hotcoco's value and its bootstrap over the images
    (``hotcoco.compare`` of the detections against none at all, whose AP is 0 in every
    resample: the interval of the difference is the interval of the mAP). ev: a
    ``metrics.coco.SliceEvaluator``; annotations: the suite's, for the count of boxes.
    value and ci95 are None when the images hold no ground truth."""
    import hotcoco

    keep = set(int(i) for i in ids)
    n_gt = sum(1 for a in annotations if int(a["image_id"]) in keep and not a.get("iscrowd", 0)
               and (cat is None or int(a["category_id"]) == cat))
    if not ids or n_gt == 0:
        return None, None, n_gt

    def evaluated(dt: Any) -> Any:
        e = hotcoco.COCOeval(ev.coco_gt, dt, "bbox")
        p = e.params
        p.img_ids = list(ids)
        if cat is not None:
            p.cat_ids = [cat]
        e.params = p
        e.evaluate()
        return e

    with contextlib.redirect_stdout(io.StringIO()):
        got = hotcoco.compare(evaluated(ev.coco_gt.load_res([])), evaluated(ev.coco_dt),
                              n_bootstrap=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    value = float(got["metrics_b"][stat])
    ci = got.get("ci") or {}
    if value < 0:
        return None, None, n_gt
    bounds = ci.get(stat)
    return value, ([float(bounds["lower"]), float(bounds["upper"])] if bounds else None), n_gt


def figure_of(c: Criterion, inp: Inputs, full_ids: list[int], perm_ids: list[int]) -> dict[str, Any]:
    """The figure of criterion ``c`` over the given full-scene and permutation images:
    ``{"value", "ci95", "n", "unit", "n_images", "method", ...counts}``."""
    cat = inp.category_ids.get(c.class_) if c.class_ else None
    m = c.metric
    if m in ("hit_rate", "failure_rate"):
        o = inp.outcomes
        rows = o.loc[o["image_id"].isin(full_ids) & ~o["ignore"].astype(bool) & ~o["not_visible"].astype(bool)]
        if c.class_:
            rows = rows.loc[rows["category"] == c.class_]
        hits = int((rows["outcome"] == "hit").sum())
        k = hits if m == "hit_rate" else len(rows) - hits
        r = rate(k, len(rows))
        return {**r, "unit": "ROIs", "n_images": len(full_ids), "method": "Wilson 95%"}
    if m in ("map", "ap50"):
        value, ci, n_gt = map_interval(inp.coco, inp.gt["annotations"], full_ids, cat, "AP" if m == "map" else "AP50")
        return {"value": value, "ci95": ci, "n": len(full_ids) if value is not None else 0, "unit": "images",
                "n_images": len(full_ids), "n_gt": n_gt,
                "method": f"hotcoco bootstrap over images, 95%, {BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}"}
    if m == "context_accuracy":
        o = inp.outcomes
        rows = o.loc[o["image_id"].isin(perm_ids)]
        if c.class_:
            rows = rows.loc[rows["category"] == c.class_]
        f = context_accuracy(rows)
        return {**f, "unit": "ROIs", "n_images": len(perm_ids), "method": "bootstrap over ROI units, 95% (seed 0)"}
    if m == "context_fp_rate":
        table = inp.context_fp
        scored = table.loc[table["scored"].astype(bool) & table["image_id"].isin(perm_ids)]
        r = rate(int((scored["n_context_fp"].astype(int) > 0).sum()), len(scored))
        return {**r, "unit": "images", "n_images": len(scored), "method": "Wilson 95%"}
    if m == "fp_per_image":
        d = inp.detections
        fp = d.loc[d["background"].astype(bool) & d["image_id"].isin(full_ids)]
        if cat is not None:
            fp = fp.loc[fp["category_id"] == cat]
        per = fp.groupby("image_id").size()
        counts = [int(per.get(i, 0)) for i in full_ids]
        f = bootstrap_mean(counts, n_fp=sum(counts))
        return {**f, "unit": "images", "n_images": len(full_ids),
                "method": "percentile bootstrap of the mean over images, 95% (seed 0)"}
    if m == "coverage":  # over the full-scene images inside the ODD, as metrics.json's coverage
        full = (inp.scenes["mode"].to_numpy() == FULL_MODE) & inp.in_odd
        tuples = inp.odd.tuples(c.ways)
        hit = tuples.counts(inp.codes[full]) >= c.k
        n_allowed = int(tuples.allowed.sum())
        n_cov = int((hit & tuples.allowed).sum())
        return {"value": (n_cov / n_allowed) if n_allowed else None, "ci95": None, "n": n_allowed,
                "n_covered": n_cov, "unit": "tuples", "n_images": int(full.sum()), "method": "point"}
    raise OddsuiteError(f"unknown metric {m!r}")  # the spec's checks make this unreachable


# ----------------------------------------------------------------------------- criteria

def _slices(c: Criterion, inp: Inputs, base: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, image mask) of every slice of a criterion (one, unnamed, without ``per``)."""
    if c.per is None:
        return [("all", base)]
    if c.per == PER_VARIANT:  # the variants that can show the ODD (the others are listed as not judged)
        v = inp.scenes["variant"].astype(str).to_numpy()
        return [(x.name, base & (v == x.name)) for x in inp.spec.variants if not inp.odd.beyond(x)]
    a = inp.odd.index[c.per]
    col = inp.codes[:, a]
    return [(lv.label, base & (col == j)) for j, lv in enumerate(inp.odd.axes[a].levels)]


def judge_criterion(c: Criterion, inp: Inputs) -> dict[str, Any]:
    """One criterion's verdict with every slice's figure and verdict (see the module doc)."""
    key, thr = c.threshold
    info = c.info
    mode = inp.scenes["mode"].astype(str).to_numpy()
    ids = inp.scenes["image_id"].astype(int).to_numpy()
    base = inp.in_odd.copy()
    if c.variant is not None:
        base &= inp.scenes["variant"].astype(str).to_numpy() == c.variant
    slices = []
    for label, mask in _slices(c, inp, base):
        full_ids = ids[mask & (mode == FULL_MODE)].tolist()
        perm_ids = ids[mask & (mode != FULL_MODE)].tolist()
        fig = figure_of(c, inp, full_ids, perm_ids)
        verdict = judge(fig, key, thr, info.kind)
        if not full_ids and not perm_ids and c.metric != "coverage":
            verdict["reason"] = "not tested: no image of the ODD in this slice"
        elif not fig.get("n"):
            verdict["reason"] = f"nothing to judge: no {fig.get('unit', 'unit')} here"
        slices.append({"level": label, "figure": fig, **verdict})
    outside = int(((~inp.in_odd) & (mode == FULL_MODE)).sum())
    not_judged = [{"level": v.name, "reason": f"sets {', '.join(b)}: every image lies outside the ODD"}
                  for v in inp.spec.variants if c.per == PER_VARIANT and (b := inp.odd.beyond(v))]
    return json_clean({
        "id": c.id, "text": c.text, "metric": c.metric, "statement": describe(c), "criterion": as_dict(c),
        "threshold": {key: thr}, "kind": info.kind, "per": c.per,
        "status": combine([s["status"] for s in slices]),
        "n_full_images_outside_odd": outside,
        "slices": slices, "not_judged": not_judged,
    })


def evaluate_acceptance(results_dir: str | Path, *, suite_dir: str | Path | None = None,
                        spec_path: str | Path | None = None) -> dict[str, Any]:
    """The verdicts of every acceptance criterion of the suite's spec (or ``spec_path``) on
    a results folder: ``{"status", "criteria": [...], "sources": {...}, "spec": name}``.
    ``status`` is ``none`` when the spec has no criteria. Raises OddsuiteError when an
    input is missing."""
    inp = Inputs.load(results_dir, suite_dir=suite_dir, spec_path=spec_path)
    crits = [judge_criterion(c, inp) for c in inp.spec.acceptance]
    status = combine([c["status"] for c in crits]) if crits else "none"
    full = inp.scenes["mode"].to_numpy() == FULL_MODE
    return {"status": status, "spec": inp.spec.name, "criteria": crits, "sources": inp.sources(),
            "n_full_images": int(full.sum()), "n_full_images_outside_odd": int((full & ~inp.in_odd).sum()),
            "settings": {"iou": inp.iou, "conf": inp.conf, "z": Z95, "map_bootstrap": {
                "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED}}}


def verdict_lines(doc: Mapping[str, Any]) -> list[str]:
    """The verdicts as text lines (what ``oddsuite check`` prints): one line per criterion,
    one indented line per slice of a criterion over slices."""
    from oddsuite.report.evidence import figure_text, more_text

    def row(status: str, head: str, fig: Mapping[str, Any], more: Any, reason: str, indent: str = "") -> str:
        tail = f"; {more_text(more)}" if more else ("" if status != INCONCLUSIVE else f" ({reason})")
        return f"{indent}{status.upper():<13} {head}: {figure_text(fig)}{tail}"

    out = []
    for c in doc.get("criteria") or []:
        slices = c.get("slices") or []
        if c.get("per"):
            out.append(f"{c['status'].upper():<13} {c['id']}  {c['statement']}")
            for s in slices:
                out.append(row(s["status"], s["level"], s["figure"], s.get("more"), s.get("reason", ""), "  "))
            for s in c.get("not_judged") or []:
                out.append(f"  {'NOT JUDGED':<13} {s['level']}: {s['reason']}")
        else:
            s = slices[0]
            out.append(row(s["status"], f"{c['id']}  {c['statement']}", s["figure"], s.get("more"),
                           s.get("reason", "")))
    n_out, n_all = doc.get("n_full_images_outside_odd") or 0, doc.get("n_full_images") or 0
    if n_out:
        out.append(f"({n_out} of {n_all} full-scene images lie outside the ODD, e.g. a variant beyond the sampled "
                   f"domains, and are not judged)")
    return out

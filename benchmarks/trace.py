"""Planted-defect recovery: does `oddsuite trace` name the cause of a failure planted on purpose?

The default detector (``models/default``, loaded with ``oddsuite.models.load_detector``) is
wrapped by detectors made here, each a real ``Detector`` (name, classes, predict) that runs
the real detector and post-filters its outputs:

1. ``fog``: a scene-condition defect. It returns nothing on images under fog below 200 m.
2. ``person|car``: a ROI-presence defect with REDUNDANT ROIs of the influencing class. It
   drops every person box when it detected a car (score >= 0.25) in the same image. The
   suite has two or three cars per scene, so leaving one car out leaves another.
3. ``dusk×person``: a conjunction (a condition × a class). It drops person boxes at dusk
   (sun elevation below 6°).

How the wrappers know the conditions: a detector sees only pixels. The ``person|car``
wrapper uses nothing but its own detections (what a deployed detector could do). The
``fog`` and ``dusk×person`` wrappers are given the suite's per-image conditions by the
benchmark: a lookup from the SHA-256 of the image's decoded RGB pixels (as the
evaluation loop hands them to ``predict``) to its environment variant, and the variant's
environment from the benchmark's spec. An image missing from the lookup is an error.

The suite: a benchmark spec at 320×240 (the detector's input size), one person (nearer
than the cars, so that no car hides it: the control has no natural car → person effect),
two or three cars and a traffic cone per scene, variants base / dusk (sun 3°) / fog_150m, the
``ablation`` plan (the default of new specs) in ``remove`` mode with the composite renderer.
The real detector runs once per image (its outputs are cached by pixel hash and shared by
every wrapper); ``evaluate_suite`` and ``trace_results`` (``image_set="all"``: full scenes
and permutations, so that the rule tree's leaves of at least 20 rows can hold the persons at
dusk of a few scenes) run once per wrapper and once on the unmodified detector (the control).

Printed: per planted cause, the rank at which trace names it in the list of its kind
(a condition or a conjunction: the conditionally ranked slices, whose conjunctions are the
cells of the heatmap pairs; class presence: the presence rows), under its own defect and under the control, with its score; ``—``
when it is not named with a positive score. Goal: every planted cause ranked 1 under its
defect, none of them ranked 1 under the control. Also printed: what instance-level
leave-one-out (§5) says about car → person under the ``person|car`` defect.

Usage: nice python benchmarks/trace.py [--scenes 10] [--seed 5] [--work DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONF = 0.25  # the operating threshold (metrics.md)

SPEC = """\
name: trace_benchmark
description: Planted-defect recovery for trace (benchmarks/trace.py).
sampler: halton
scenery:
  road_type: urban
  lanes: 2
  road_surface: {choices: {dry: 3, wet: 1}}
  clutter: [0.3, 0.8]
environment:
  sun_elevation_deg: [25, 65]
  fog_visibility_m: 10000
  rain_mm_h: 0
  snow_mm_h: 0
camera: {height_m: 1.4, pitch_deg: -2, fov_deg: 60, width: 320, height: 240}
objects:
  person: {count: 1, distance_m: [6, 10], lateral_m: [-3, 3]}
  car: {count: [2, 3], distance_m: [13, 28], lateral_m: [-6, 6], heading_deg: {choices: [0, 180]}}
  traffic cone: {count: 1, distance_m: [6, 12], lateral_m: {choices: {-5.5: 1, 5.5: 1}}}
rules:
  - exclude: {environment.rain_mm_h: {gt: 0}, scenery.road_surface: dry}
permutations:
  plan: ablation
  modes: [remove]
  renderer: composite
variants:
  - name: base
  - name: dusk
    sun_elevation_deg: 3
  - name: fog_150m
    fog_visibility_m: 150
"""
#: the environment each variant fixes (as in SPEC)
VARIANT_ENV = {"base": {}, "dusk": {"sun_elevation_deg": 3.0}, "fog_150m": {"fog_visibility_m": 150.0}}


def pixel_key(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


class CachedDetector:
    """The real detector, run once per distinct image (by pixel hash); the control."""

    def __init__(self, real: Any):
        self.real, self.name, self.classes = real, "control (models/default)", dict(real.classes)
        self.cache: dict[str, Any] = {}

    def predict(self, images: Sequence[np.ndarray], conf: float = 0.001) -> list[Any]:
        keys = [pixel_key(im) for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            for i, det in zip(todo, self.real.predict([images[i] for i in todo], conf=conf)):
                self.cache[keys[i]] = det
        return [self.cache[k] for k in keys]


class PlantedDefect:
    """A real Detector: the cached real detector's outputs, with the boxes ``drop`` marks
    removed. ``drop(detections, environment, class names) -> bool mask``; ``environment``
    is the image's variant environment from the lookup (None for pixel-only defects)."""

    def __init__(self, base: CachedDetector, name: str, drop: Callable[..., np.ndarray],
                 conditions: Mapping[str, Mapping[str, float]] | None):
        self.base, self.name, self.classes, self.drop, self.conditions = base, name, base.classes, drop, conditions

    def predict(self, images: Sequence[np.ndarray], conf: float = 0.001) -> list[Any]:
        from oddsuite.models.base import Detections

        out = []
        for im, det in zip(images, self.base.predict(images, conf=conf)):
            env = None
            if self.conditions is not None:
                key = pixel_key(im)
                if key not in self.conditions:
                    raise KeyError(f"{self.name}: image with pixel hash {key[:12]} not in the condition lookup")
                env = self.conditions[key]
            names = np.array([self.classes[int(c)] for c in det.class_ids], dtype=object)
            keep = ~self.drop(det, env, names)
            out.append(Detections(det.boxes[keep], det.scores[keep], det.class_ids[keep]))
        return out


def drop_all_in_fog(det: Any, env: Mapping[str, float], names: np.ndarray) -> np.ndarray:
    return np.full(len(names), env.get("fog_visibility_m", 1e9) < 200)


def drop_persons_with_a_car(det: Any, env: Any, names: np.ndarray) -> np.ndarray:
    car_seen = bool(np.any((names == "car") & (det.scores >= CONF)))
    return (names == "person") & car_seen


def drop_persons_at_dusk(det: Any, env: Mapping[str, float], names: np.ndarray) -> np.ndarray:
    return (names == "person") & (env.get("sun_elevation_deg", 90.0) < 6)


def condition_lookup(suite: Path) -> dict[str, dict[str, float]]:
    """Pixel hash -> the environment its variant fixes, for every image of the suite."""
    from PIL import Image

    gt = json.loads((suite / "annotations.json").read_text())
    out: dict[str, dict[str, float]] = {}
    for im in gt["images"]:
        with Image.open(suite / im["file_name"]) as f:
            key = pixel_key(np.asarray(f.convert("RGB"), dtype=np.uint8))
        env = VARIANT_ENV[im["variant"]]
        if out.setdefault(key, env) != env:
            raise ValueError(f"{im['file_name']}: same pixels as an image of another variant")
    return out


# ---- what names each planted cause, in the list of its kind ------------------------------

def _fog_slice(s: Mapping[str, Any]) -> bool:
    texts = [s["condition"]] + list(s.get("same_rows") or [])
    return any(("fog_visibility_m" in t and "< 200" in t) or t == "variant = fog_150m" for t in texts)


def _dusk(text: str) -> bool:
    return ("sun_elevation_deg" in text and ("< 6" in text or "< 20" in text)) or text in (
        "variant = dusk", "illumination = dusk", "illumination = twilight")


def _dusk_person_slice(s: Mapping[str, Any]) -> bool:
    texts = [s["condition"]] + list(s.get("same_rows") or [])
    return any(" and " in t and "class = person" in t.split(" and ") and any(_dusk(x) for x in t.split(" and "))
               for t in texts)


def rank_of(data: Mapping[str, Any], cause: str) -> tuple[int | None, float | None]:
    """(rank, score) of the first entry naming ``cause`` with a positive score, else (None, best score).
    Conditions and conjunctions: the conditionally ranked slices (their conditional score);
    class presence: the presence rows."""
    if cause in ("fog", "dusk×person"):
        items = [(s, (s.get("conditional") or {}).get("score")) for s in data["slices"]]
        match = _fog_slice if cause == "fog" else _dusk_person_slice
    else:
        items = [(r, r.get("score")) for r in data["presence"]["rows"]]
        match = lambda r: (r["target_category"], r["other_category"]) == ("person", "car")  # noqa: E731
    best = None
    for i, (item, score) in enumerate(items, 1):
        if match(item):
            if score is not None and score > 0:
                return i, score
            best = score if best is None else max(best, score)
    return None, best


def loo_says(data: Mapping[str, Any]) -> str:
    """What §5's instance influence says about car → person."""
    rows = [r for c in data["influence"]["by_target_class"] if c["target_category"] == "person"
            for r in c["rows"] if r["other_category"] == "car"]
    if not rows:
        return "no row"
    n = sum(r["n_pairs"] for r in rows)
    if not any(r.get("identifiable", True) for r in rows):
        vals = {round(r["influence_additional"], 2) for r in rows if r["influence_additional"] is not None}
        return (f"not identifiable: all {n} image pairs add a car beside another car (effect of one more car, "
                f"per relation: {sorted(vals)})")
    vals = [r["influence"] for r in rows if r["influence"] is not None]
    return f"influence up to {max(vals):+.2f} over {n} pairs"


def run_all(suite: Path, work: Path, tag: str) -> tuple[dict[str, dict[str, Any]], float]:
    """Evaluate and trace the control and every planted defect; (trace.json dicts, seconds)."""
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import load_detector
    from oddsuite.trace import trace_results

    base = CachedDetector(load_detector(ROOT / "models" / "default"))
    lookup = condition_lookup(suite)
    detectors = {
        "control": base,
        "fog": PlantedDefect(base, "planted: nothing under fog < 200 m", drop_all_in_fog, lookup),
        "person|car": PlantedDefect(base, "planted: no person when a car is detected", drop_persons_with_a_car,
                                    None),
        "dusk×person": PlantedDefect(base, "planted: no person at dusk", drop_persons_at_dusk, lookup),
    }
    traces, t1 = {}, time.perf_counter()
    for key, det in detectors.items():
        res = work / f"results-{tag}-{key.replace('|', '_').replace('×', 'x')}"
        evaluate_suite(suite, det, res, progress=False)
        traces[key] = trace_results(res, suite_dir=suite, image_set="all").data
    return traces, time.perf_counter() - t1


def _fmt(r: int | None, s: float | None) -> str:
    return f"{r} ({s:+.2f})" if r else (f"— (best {s:+.2f})" if s is not None else "—")


def print_recovery(traces: Mapping[str, Mapping[str, Any]]) -> bool:
    """The recovery table and what each trace put first; True when the goal is met."""
    kinds = {"fog": "slices (condition)", "person|car": "class presence", "dusk×person": "slices (conjunction)"}
    print("| planted cause | named in | rank under its defect (score) | rank under the control (score) |")
    print("|---|---|---|---|")
    ok = True
    for cause, kind in kinds.items():
        r, s = rank_of(traces[cause], cause)
        rc, sc = rank_of(traces["control"], cause)
        ok &= r == 1 and rc != 1
        print(f"| {cause} | {kind} | {_fmt(r, s)} | {_fmt(rc, sc)} |")
    print()
    for key in ("control", "person|car"):
        print(f"instance-level leave-one-out (§5) for car → person under {key}: {loo_says(traces[key])}")
    for key, data in traces.items():
        top = data["slices"][0]["condition"] if data["slices"] else "—"
        pres = next((f"{r['other_category']} → {r['target_category']}" for r in data["presence"]["rows"]
                     if (r.get("score") or 0) > 0), "—")
        rules = [r for r in data["rules"] if r.get("above_overall") and r.get("conditions")]
        print(f"{key:12s} top slice: {top}; top rule: {rules[0]['text'] if rules else '—'}; top presence: {pres}")
    print()
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "oddsuite_trace_benchmark",
                    help="folder for the suite and results (a finished suite is reused)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from oddsuite.suite import generate_suite

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "trace_benchmark.yaml"
    spec.write_text(SPEC)
    t0 = time.perf_counter()
    suite = work / f"suite-{args.scenes}-{args.seed}"
    generate_suite(spec, suite, scenes=args.scenes, seed=args.seed, workers=1)  # resumes a finished suite
    t_gen = time.perf_counter() - t0
    n_images = len(json.loads((suite / "annotations.json").read_text())["images"])
    traces, t_eval = run_all(suite, work, f"{args.scenes}-{args.seed}")
    print(f"suite: {args.scenes} scenes, {n_images} images ({t_gen:.0f} s to render); evaluate + trace of 4 "
          f"detectors: {t_eval:.0f} s; plan {traces['control']['settings']['plan']!r}")
    print()
    ok = print_recovery(traces)
    print("goal met: every planted cause ranked 1, none of them 1 under the control" if ok else "goal NOT met")
    return 0  # a benchmark reports its figures; an unmet goal is printed, not an error that stops `make bench`


if __name__ == "__main__":
    sys.exit(main())

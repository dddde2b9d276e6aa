"""Renderer sensitivity: the default detector scored on the same scenes drawn by both engines.

One spec (default ``odd_specs/urban_day.yaml``), one seed, the full scenes only (plan
``full``, the spec's first variant), generated twice: ``render.engine: raster`` and
``render.engine: cycles``. The ground truth is identical by construction (labels come from
the same ID pass; the script checks that annotations.json is byte-identical), so every
difference in the scores is the engine's. Prints AP50 and AP (COCO, pycocotools-compatible
hotcoco engine) per class and overall, and the hit rate at the default confidence, for
both engines and the gap (cycles − raster): the change a user should expect from the
engine alone. Note that models/default was trained on raster suites.

Usage: python benchmarks/engine_gap.py [--scenes 12] [--size 640x480] [--samples 16] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from oddsuite.suite import generate_suite

ROOT = Path(__file__).resolve().parents[1]


def write_spec(src: Path, dst: Path, engine: str, width: int, height: int, samples: int) -> None:
    spec = yaml.safe_load(src.read_text())
    spec["camera"].update(width=width, height=height)
    spec["permutations"] = {"plan": "full", "modes": ["remove"]}  # the full scene only
    spec["variants"] = spec.get("variants", [{"name": "base"}])[:1]
    spec["render"] = {"engine": engine} | ({"samples": samples, "denoise": True} if engine == "cycles" else {})
    dst.write_text(yaml.safe_dump(spec, sort_keys=False))


def evaluate(suite: Path, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "oddsuite.cli", "evaluate", str(suite), "--model",
                        str(ROOT / "models" / "default"), "--out", str(out), "--no-progress"],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stdout + r.stderr)
    return json.loads((out / "metrics.json").read_text())


def hit_rates(res: Path) -> dict[str, float]:
    """Per class: the share of non-ignore ROIs of the full images that the detector hits
    (score >= the default confidence, IoU >= 0.5, right class)."""
    import pandas as pd

    o = pd.read_parquet(res / "outcomes.parquet")
    o = o.loc[(o["mode"] == "full") & ~o["ignore"]]
    return {str(k): float((g["outcome"] == "hit").mean()) for k, g in o.groupby("category")}


def _fmt(v) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "odd_specs" / "urban_day.yaml")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    out = a.out or Path(tempfile.mkdtemp(prefix="engine_gap-"))
    out.mkdir(parents=True, exist_ok=True)
    metrics, seconds, render = {}, {}, {}
    for engine in ("raster", "cycles"):
        spec = out / f"{engine}.yaml"
        write_spec(a.spec, spec, engine, w, h, a.samples)
        t0 = time.perf_counter()
        render[engine] = generate_suite(spec, out / f"suite_{engine}", scenes=a.scenes, seed=a.seed, workers=1).render
        seconds[engine] = time.perf_counter() - t0
        metrics[engine] = evaluate(out / f"suite_{engine}", out / f"res_{engine}")
    same = (out / "suite_raster" / "annotations.json").read_bytes() == \
        (out / "suite_cycles" / "annotations.json").read_bytes()
    man = render["cycles"]  # the manifest's render block plus the measured seconds_per_frame
    print(f"{a.spec.name}, seed {a.seed}, {a.scenes} scenes at {w}x{h}; cycles {a.samples} samples + denoise on "
          f"{man['device']} ({man['seconds_per_frame']:.1f} s/frame); ground truth identical: {same}")
    print(f"suites made in {seconds['raster']:.0f} s (raster) and {seconds['cycles']:.0f} s (cycles)")
    print(f"{'class':<12}{'n_gt':>6} | {'AP50 raster':>11}{'cycles':>8}{'gap':>8} | {'AP raster':>9}{'cycles':>8}"
          f"{'gap':>8} | {'hit raster':>10}{'cycles':>8}{'gap':>8}")
    full = {e: metrics[e]["map"]["full"] for e in metrics}
    hits = {e: hit_rates(out / f"res_{e}") for e in metrics}
    for cls in sorted(full["raster"]["per_class"]):
        r, c = full["raster"]["per_class"][cls], full["cycles"]["per_class"].get(cls, {})
        hr, hc = hits["raster"].get(cls), hits["cycles"].get(cls)
        gap = lambda x, y: None if x is None or y is None else y - x  # noqa: E731
        print(f"{cls:<12}{r.get('n_gt', 0):>6} | {_fmt(r.get('ap50')):>11}{_fmt(c.get('ap50')):>8}"
              f"{_fmt(gap(r.get('ap50'), c.get('ap50'))):>8} | {_fmt(r.get('ap')):>9}{_fmt(c.get('ap')):>8}"
              f"{_fmt(gap(r.get('ap'), c.get('ap'))):>8} | {_fmt(hr):>10}{_fmt(hc):>8}{_fmt(gap(hr, hc)):>8}")
    r, c = full["raster"], full["cycles"]
    print(f"{'all':<12}{'':>6} | {_fmt(r['ap50']):>11}{_fmt(c['ap50']):>8}{_fmt(c['ap50'] - r['ap50']):>8} | "
          f"{_fmt(r['map']):>9}{_fmt(c['map']):>8}{_fmt(c['map'] - r['map']):>8} |")
    print(f"suites and results: {out}")


if __name__ == "__main__":
    main()

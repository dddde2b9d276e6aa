"""Scenes needed to reach 100% t-way coverage of the ODD (metrics.md §8) with the
``covering`` sampler against ``halton`` and ``random``, on every shipped spec, measured
side by side in one run. Sampling only: no scene is built or rendered.

For each spec and sampler, scenes 0, 1, 2, … of a suite are sampled (``sample_scene``,
the spec's rules enforced as in ``generate``) for several suite seeds; the count is the
number of the first scene after which every t-tuple of levels the rules allow has been
hit at least once (``OddCoverage``, the levels and rules of ``odd.coverage``). A sampler
that has not reached 100% after ``--max-scenes`` scenes is reported as ``> max``.
The goal (issue #18): covering needs at least 5x fewer scenes than halton at t = 2.

    python benchmarks/coverage.py [--t 2] [--seeds 5] [--max-scenes 20000]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from oddsuite.odd import load_spec, sample_scene
from oddsuite.odd.coverage import odd_coverage

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ("covering", "halton", "random")


def scenes_to_cover(spec, seed: int, t: int, max_scenes: int) -> int | None:
    """Scenes of a suite (spec, seed) until every allowed t-tuple is hit; None past max_scenes."""
    cov = odd_coverage(spec)
    tuples = cov.tuples(t)
    rows: list[list[int]] = []
    n = 0
    chunk = 64
    while n < max_scenes:
        m = min(chunk, max_scenes - n)
        for i in range(n, n + m):
            flat = sample_scene(spec, seed, i).flat()
            rows.append([axis.index(flat[axis.path]) for axis in cov.axes])
        n += m
        first = tuples.first_hits(np.asarray(rows, dtype=np.int64))
        if (first[tuples.allowed] >= 0).all():
            return int(first[tuples.allowed].max()) + 1
        chunk *= 2
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--t", type=int, default=2, help="coverage strength (default 2)")
    ap.add_argument("--seeds", type=int, default=5, help="suite seeds per sampler (default 5)")
    ap.add_argument("--max-scenes", type=int, default=20000, help="give up after this many scenes")
    args = ap.parse_args()
    print(f"scenes to reach 100% {args.t}-way coverage (median over seeds 0..{args.seeds - 1}; min-max)")
    print(f"{'spec':<12} {'tuples':>7} " + " ".join(f"{s:>18}" for s in SAMPLERS)
          + f" {'halton/covering':>16} {'random/covering':>16}")
    for path in sorted((ROOT / "odd_specs").glob("*.yaml")):
        base = load_spec(path)
        tuples = odd_coverage(base).tuples(args.t)
        med: dict[str, float] = {}
        cells = []
        t0 = time.perf_counter()
        for name in SAMPLERS:
            spec = base.model_copy(update={"sampler": name, "strength": max(2, min(3, args.t))})
            got = [scenes_to_cover(spec, seed, args.t, args.max_scenes) for seed in range(args.seeds)]
            vals = [g if g is not None else float("inf") for g in got]
            med[name] = statistics.median(vals)
            shown = lambda v: f"> {args.max_scenes}" if v == float("inf") else f"{v:g}"  # noqa: E731
            cells.append(f"{shown(med[name])} ({shown(min(vals))}-{shown(max(vals))})")
        ratio = lambda a: f"{med[a] / med['covering']:.1f}x"  # noqa: E731
        print(f"{base.name:<12} {int(tuples.allowed.sum()):>7} " + " ".join(f"{c:>18}" for c in cells)
              + f" {ratio('halton'):>16} {ratio('random'):>16}   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

"""Scenes per second with 1 and 2 workers on each executor (local pool, Ray), measured in one
run on the same small suite; prints the ratios. Executor start-up is timed separately."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

SPEC = """\
name: scale
camera: {width: 320, height: 240}
scenery: {road_type: urban}
objects:
  car: {count: [1, 3], distance_m: [8, 30], lateral_m: [-4, 4]}
  person: {count: [0, 2], distance_m: [6, 20], lateral_m: [-6, 6]}
permutations: {plan: ablation, modes: [remove]}
"""


def run(executor, spec: Path, scenes: int) -> float:
    from oddsuite.suite import generate_suite

    out = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        generate_suite(spec, out / "s", scenes=scenes, seed=0, executor=executor)
        return scenes / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(scenes: int = 8) -> None:
    import ray

    from oddsuite.run import LocalExecutor
    from oddsuite.run.ray_executor import RayExecutor

    tmp = Path(tempfile.mkdtemp())
    spec = tmp / "scale.yaml"
    spec.write_text(SPEC)
    res = {}
    for w in (1, 2):
        res[("local", w)] = run(LocalExecutor(w), spec, scenes)
    for w in (1, 2):
        t0 = time.perf_counter()
        ex = RayExecutor(workers=w)
        start = time.perf_counter() - t0
        run(ex, spec, 2)  # warm the workers (EGL context, imports)
        res[("ray", w)] = run(ex, spec, scenes)
        ex.shutdown()
        print(f"ray start-up with {w} CPU(s): {start:.1f} s (not counted below)")
    assert not ray.is_initialized()
    print(f"{scenes} scenes at 320x240, ablation plan:")
    for ex in ("local", "ray"):
        print(f"  {ex:5s}: 1 worker {res[(ex, 1)]:.3f} scenes/s, 2 workers {res[(ex, 2)]:.3f} scenes/s, "
              f"ratio {res[(ex, 2)] / res[(ex, 1)]:.2f}x")
    print(f"  ray vs local at 2 workers: {res[('ray', 2)] / res[('local', 2)]:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

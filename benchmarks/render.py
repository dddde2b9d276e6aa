"""Frames per second of the offscreen renderer at 640x480, with and without directional
shadows, measured side by side in one run (this machine is shared: read the ratio)."""
from __future__ import annotations

import time
from pathlib import Path

from oddsuite.odd import load_spec, sample_scene
from oddsuite.permute import environment_of
from oddsuite.render import get_renderer
from oddsuite.scenes import build_scene

ROOT = Path(__file__).resolve().parents[1]


def main(n_scenes: int = 4, reps: int = 3) -> None:
    spec = load_spec(ROOT / "odd_specs" / "urban_day.yaml")
    r = get_renderer(640, 480)
    scenes = [build_scene(spec, sample_scene(spec, 0, i)) for i in range(n_scenes)]
    for sc in scenes:  # upload + warm caches
        r.render(sc, environment_of(sc), rng=sc.params.rng("weather:base"))
    t = {True: 0.0, False: 0.0}
    for _ in range(reps):
        for sc in scenes:
            for shadows in (True, False):  # interleaved, so noise hits both alike
                env = environment_of(sc) | {"shadows": shadows}
                t0 = time.perf_counter()
                r.render(sc, env, rng=sc.params.rng("weather:base"))
                t[shadows] += time.perf_counter() - t0
    n = reps * n_scenes
    fps_s, fps_n = n / t[True], n / t[False]
    print(f"render 640x480 (rgb + instance ids + per-ROI stats), {n} frames each:")
    print(f"  with shadows:    {fps_s:6.2f} frames/s")
    print(f"  without shadows: {fps_n:6.2f} frames/s")
    print(f"  shadows cost:    {fps_n / fps_s:6.2f}x")


if __name__ == "__main__":
    main()

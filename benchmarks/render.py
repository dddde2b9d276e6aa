"""Frames per second at 640x480 of every engine setting, measured side by side in one run
(this machine is shared: read the ratios), and what supersampling buys.

- raster, without supersampling: with and without directional shadows;
- raster with k x k supersampling (k = 2, 3), with shadows;
- Cycles (CPU unless the worker finds a GPU): the first frame of a scene (load, sky, BVH)
  and a further frame of the same scene (a permutation), at the spec default of 32 samples
  and at 16, with denoising;
- anti-aliasing: PSNR of each raster setting against a 4x4 supersampled reference.

Usage: python benchmarks/render.py [--scenes N] [--reps R] [--no-cycles]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from oddsuite.odd import load_spec, sample_scene
from oddsuite.odd.spec import Render
from oddsuite.permute import environment_of
from oddsuite.render import get_engine
from oddsuite.scenes import build_scene

ROOT = Path(__file__).resolve().parents[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def main(n_scenes: int = 4, reps: int = 3, cycles: bool = True) -> None:
    spec = load_spec(ROOT / "odd_specs" / "urban_day.yaml")
    scenes = [build_scene(spec, sample_scene(spec, 0, i)) for i in range(n_scenes)]
    settings = {"k=1": Render(), "k=2": Render(supersample=2), "k=3": Render(supersample=3)}
    engines = {name: get_engine(r, 640, 480) for name, r in settings.items()}
    for sc in scenes:  # upload + warm caches
        for e in engines.values():
            e.render(sc, environment_of(sc), rng=sc.params.rng("weather:base"))
    t = {(name, sh): 0.0 for name in engines for sh in (True, False)}
    for _ in range(reps):
        for sc in scenes:
            for name, e in engines.items():  # interleaved, so noise hits all alike
                for shadows in ((True, False) if name == "k=1" else (True,)):
                    env = environment_of(sc) | {"shadows": shadows}
                    t0 = time.perf_counter()
                    e.render(sc, env, rng=sc.params.rng("weather:base"))
                    t[(name, shadows)] += time.perf_counter() - t0
    n = reps * n_scenes
    fps = {k: n / v for k, v in t.items() if v > 0}
    print(f"raster 640x480 (rgb + instance ids + per-ROI stats), {n} frames each:")
    print(f"  no supersampling, with shadows:    {fps[('k=1', True)]:7.2f} frames/s")
    print(f"  no supersampling, without shadows: {fps[('k=1', False)]:7.2f} frames/s "
          f"(shadows cost {fps[('k=1', False)] / fps[('k=1', True)]:.2f}x)")
    for k in ("k=2", "k=3"):
        print(f"  supersampling {k}, with shadows:   {fps[(k, True)]:7.2f} frames/s "
              f"({fps[('k=1', True)] / fps[(k, True)]:.2f}x the cost of k=1)")

    ref_engine = get_engine(Render(supersample=4), 640, 480)
    gains = {k: [] for k in engines}
    for sc in scenes:
        env = environment_of(sc) | {"fog_visibility_m": 10000.0, "rain_mm_h": 0.0}
        ref = ref_engine.render(sc, env, rng=sc.params.rng("weather:base")).rgb
        for name, e in engines.items():
            gains[name].append(psnr(e.render(sc, env, rng=sc.params.rng("weather:base")).rgb, ref))
    print("anti-aliasing: PSNR against a 4x4 supersampled reference (mean over scenes, clean renders):")
    for name in engines:
        print(f"  {name}: {np.mean(gains[name]):6.2f} dB")

    if not cycles:
        return
    from oddsuite.render.cycles import cycles_unavailable

    why = cycles_unavailable()
    if why:
        print(f"cycles: skipped ({why})")
        return
    for spp in (32, 16):
        cy = get_engine(Render(engine="cycles", samples=spp, denoise=True), 640, 480)
        first, again = [], []
        for sc in scenes[:2]:
            env = environment_of(sc)
            t0 = time.perf_counter()
            cy.render(sc, env, rng=sc.params.rng("weather:base"))
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cy.render(sc, env, rois=[o.roi_id for o in sc.objects][:1], rng=sc.params.rng("weather:base"))
            again.append(time.perf_counter() - t0)
        d = cy.describe()
        f1, f2 = 1 / np.mean(first), 1 / np.mean(again)
        print(f"cycles {spp} samples + denoise on {d['device']} ({d['settings']['threads']} threads), Blender "
              f"{d['version']}, {len(first)} scenes:")
        print(f"  first frame of a scene: {f1:7.4f} frames/s ({np.mean(first):6.1f} s/frame)")
        print(f"  next frame of a scene:  {f2:7.4f} frames/s ({np.mean(again):6.1f} s/frame); "
              f"raster k=1 is {fps[('k=1', True)] / f2:,.0f}x faster")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-cycles", action="store_true")
    a = ap.parse_args()
    main(a.scenes, a.reps, not a.no_cycles)

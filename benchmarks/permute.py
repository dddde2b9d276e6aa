"""Composite vs exact `remove` rendering of every ROI subset of a scene with n = 6 ROIs:
time (ratio measured in one run) and PSNR, over all pixels and outside shadow overlaps."""
from __future__ import annotations

import math
import time

import numpy as np

from oddsuite.odd import parse_spec, sample_scene
from oddsuite.permute import CompositeRenderer, environment_of, subsets
from oddsuite.render import get_renderer
from oddsuite.scenes import build_scene

SPEC = """\
name: bench6
camera: {width: 640, height: 480, fov_deg: 60}
environment: {sun_elevation_deg: 35, sun_azimuth_deg: 120, cloud_cover: 0.1}
scenery: {road_type: urban, lanes: 4}
objects:
  car: {count: 3, distance_m: [10, 35], lateral_m: [-6, 6], heading_deg: {choices: [0, 180]}}
  person: {count: 2, distance_m: [8, 20], lateral_m: [-6, 6]}
  stop sign: {count: 1, distance_m: [10, 25], lateral_m: {choices: [-7, 7]}, heading_deg: 180}
"""


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(float) - b.astype(float)) ** 2
    mse = float(d[mask].mean() if mask is not None else d.mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    spec = parse_spec(SPEC)
    sc = build_scene(spec, sample_scene(spec, 3, 0))
    ids = [o.roi_id for o in sc.objects]
    subs = subsets("exhaustive", ids)
    r = get_renderer(640, 480)
    env = environment_of(sc)
    r.render(sc, env)  # upload
    t0 = time.perf_counter()
    exact = {s: r.render(sc, env, rois=s) for s in subs}
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    comp = CompositeRenderer(r, sc, env)
    fast = {s: comp.frame(s) for s in subs}
    t_comp = time.perf_counter() - t0
    p_all, p_out, same_gt = [], [], 0
    for s in subs:
        overlap = sum(comp.shadow_mask(i).astype(int) for i in s) >= 2
        p_all.append(psnr(exact[s].rgb, fast[s].rgb))
        p_out.append(psnr(exact[s].rgb, fast[s].rgb, ~overlap))
        same_gt += all(exact[s].objects[i].visible_box == fast[s].objects[i].visible_box for i in s)
    print(f"n = {len(ids)} ROIs, {len(subs)} subsets, 640x480, remove mode")
    print(f"  exact re-render: {t_exact:7.2f} s   composite: {t_comp:7.2f} s   speed-up {t_exact / t_comp:5.1f}x")
    print(f"  PSNR all pixels:             median {np.median(p_all):5.1f} dB, min {min(p_all):5.1f} dB")
    print(f"  PSNR outside shadow overlaps: median {np.median(p_out):5.1f} dB, min {min(p_out):5.1f} dB")
    print(f"  identical visible boxes (ground truth) in {same_gt}/{len(subs)} subsets")


if __name__ == "__main__":
    main()

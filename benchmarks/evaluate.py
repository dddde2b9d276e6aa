"""Per-slice COCO mAP: one evaluate() + accumulate per slice, vs a full COCOeval per slice.

A: SliceEvaluator (one evaluate, the vectorised accumulate per slice); B: the same with
pycocotools' own accumulate per slice; C: a complete COCOeval per slice.

Synthetic but suite-shaped data: 200 scenes x 10 images (full scene + ROI subsets, under
5 environment variants and 3 masking modes), 3 classes, noisy detections with false
positives and misses. About 50 slices (variant, mode, subset size, variant x mode, scene
groups, full / permutation / isolated). Both ways run in this one process, side by side;
the figures are checked to be identical. Usage: python benchmarks/evaluate.py [--scenes N]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time
from itertools import combinations

import numpy as np
from pycocotools.cocoeval import COCOeval

from oddsuite.metrics.coco import STAT_NAMES, SliceEvaluator, dt_coco, gt_coco

VARIANTS = ["clear", "fog", "rain", "night", "snow"]
MODES = ["remove", "isolate", "cutout"]


def make(n_scenes: int, seed: int = 0) -> tuple[dict, list[dict], dict[str, list[int]]]:
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    meta: list[tuple[int, str, str, int]] = []  # scene, variant, mode, subset size
    for s in range(n_scenes):
        n = int(rng.integers(4, 7))
        boxes = [(rng.uniform(0, 1100), rng.uniform(100, 600), *rng.uniform(8, 220, 2)) for _ in range(n)]
        cats = rng.integers(1, 4, n)
        variant = VARIANTS[s % len(VARIANTS)]
        plans = [(tuple(range(n)), "full")]
        subsets = [c for k in range(1, n) for c in combinations(range(n), k)]
        for idx in rng.choice(len(subsets), size=9, replace=False):
            plans.append((subsets[idx], MODES[int(rng.integers(0, 3))]))
        for subset, mode in plans:
            image_id = len(images) + 1
            images.append({"id": image_id, "width": 1280, "height": 720, "file_name": f"{image_id}.png"})
            meta.append((s, variant, mode, len(subset)))
            miss_p = 0.15 + 0.1 * (variant in ("fog", "night")) + 0.05 * len(subset) / n
            for r in subset:
                x, y, w, h = boxes[r]
                vis = rng.uniform(0.02, 1.0) if len(subset) > 1 else 1.0
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(cats[r]),
                             "bbox": [x, y, w, h], "area": w * h * vis, "iscrowd": int(vis < 0.1)})
                if rng.random() > miss_p:
                    j = rng.normal(0, 0.06, 4) * [w, h, w, h]
                    c = int(cats[r]) if rng.random() > 0.07 else int(rng.integers(1, 4))
                    dets.append({"image_id": image_id, "category_id": c,
                                 "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                                 "score": float(rng.beta(5, 2))})
            for _ in range(int(rng.poisson(2.0))):
                dets.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)),
                             "bbox": [float(rng.uniform(0, 1200)), float(rng.uniform(0, 650)),
                                      float(rng.uniform(8, 80)), float(rng.uniform(8, 80))],
                             "score": float(rng.beta(1.5, 5))})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "pedestrian"}, {"id": 3, "name": "cyclist"}]}

    slices: dict[str, list[int]] = {}

    def add(name: str, keep) -> None:
        slices[name] = [i + 1 for i, m in enumerate(meta) if keep(m)]

    add("full", lambda m: m[2] == "full")
    add("permutation", lambda m: m[2] != "full")
    add("isolated", lambda m: m[2] != "full" and m[3] == 1)
    for v in VARIANTS:
        add(f"variant={v}", lambda m, v=v: m[1] == v)
    for mo in MODES:
        add(f"mode={mo}", lambda m, mo=mo: m[2] == mo)
    for k in range(1, 5):
        add(f"size={k}", lambda m, k=k: m[2] != "full" and m[3] == k)
    for v in VARIANTS:
        for mo in MODES:
            add(f"{v}/{mo}", lambda m, v=v, mo=mo: m[1] == v and m[2] == mo)
    groups = 20
    for g in range(groups):
        add(f"scenes[{g}]", lambda m, g=g: m[0] * groups // n_scenes == g)
    return gt, dets, slices


def per_slice_cocoeval(gt: dict, dets: list[dict], slices: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """The baseline: a complete COCOeval (evaluate, accumulate, summarize) for every slice,
    sharing the loaded COCO objects."""
    coco = gt_coco(gt)
    res = dt_coco(coco, dets)
    out = {}
    for name, ids in slices.items():
        ev = COCOeval(coco, res, "bbox")
        ev.params.imgIds = ids
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out[name] = ev.stats
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=200, help="scenes (10 images each; default 200)")
    args = ap.parse_args()
    gt, dets, slices = make(args.scenes)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} boxes, {len(dets)} detections, "
          f"{len(slices)} slices")

    t0 = time.perf_counter()
    ev = SliceEvaluator(gt, dets)
    t1 = time.perf_counter()
    ours = ev.slices(slices)
    t2 = time.perf_counter()
    ref = per_slice_cocoeval(gt, dets, slices)
    t3 = time.perf_counter()
    ev_orig = SliceEvaluator(gt, dets, method="pycocotools")
    orig = ev_orig.slices(slices)
    t4 = time.perf_counter()

    for name, stats in ref.items():
        for k, stat in enumerate(STAT_NAMES):
            want = None if stats[k] < 0 else float(stats[k])
            for label, got in (("fast", ours), ("pycocotools accumulate", orig)):
                if got[name][stat] != want:
                    raise SystemExit(f"MISMATCH ({label}) {name} {stat}: {got[name][stat]} != {want}")
    once, per, once_orig = t2 - t0, t3 - t2, t4 - t3
    print(f"A. one evaluate() + fast accumulate per slice:        {once:7.2f} s  "
          f"(evaluate {t1 - t0:.2f} s, {len(slices)} accumulates {t2 - t1:.2f} s)")
    print(f"B. one evaluate() + pycocotools accumulate per slice: {once_orig:7.2f} s")
    print(f"C. COCOeval re-run per slice (baseline):              {per:7.2f} s")
    print(f"speed-up C/A: {per / once:.1f}x   C/B: {per / once_orig:.1f}x   "
          f"(all {len(slices)} x {len(STAT_NAMES)} figures identical in A, B and C)")

if __name__ == "__main__":
    main()

"""Per-slice COCO mAP: the project's path against pycocotools, faster-coco-eval and hotcoco.

Four ways to compute the 12 COCO figures of every slice, in this one process, side by side,
on the same data:

A. the project's path: ``metrics.coco.SliceEvaluator`` (hotcoco: one ``evaluate()``, then
   one ``COCOeval.slice_by`` pass over all slices);
B. hotcoco, a complete ``COCOeval`` (evaluate, accumulate, summarize) per slice;
C. faster-coco-eval, a complete ``COCOeval_faster`` per slice;
D. pycocotools, a complete ``COCOeval`` per slice (the reference and the baseline).

Every figure of A, B and C is checked to EQUAL D's (==); a mismatch stops the script. The
ratios are D's time over each way's (the machine is shared: read the ratios, not the
seconds). Loading the data into each library counts in its time.

Synthetic but suite-shaped data: 200 scenes x 10 images (full scene + ROI subsets, under
5 environment variants and 3 masking modes), 3 classes, noisy detections with false
positives and misses. About 50 slices (variant, mode, subset size, variant x mode, scene
groups, full / permutation / isolated). Usage: python benchmarks/evaluate.py [--scenes N]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import time
from itertools import combinations

import numpy as np

from oddsuite.metrics.coco import STAT_NAMES, SliceEvaluator

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


def _kept(dets: list[dict]) -> list[dict]:
    return [copy.deepcopy(d) for d in dets if d["score"] >= 0.001]


def per_slice(lib: str, gt: dict, dets: list[dict], slices: dict[str, list[int]]) -> dict[str, list[float]]:
    """A complete COCOeval of library ``lib`` (evaluate, accumulate, summarize) for every
    slice, sharing the loaded ground truth and detections; returns COCO's 12 numbers."""
    if lib == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    elif lib == "faster-coco-eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
    else:
        from hotcoco import COCO, COCOeval as Eval
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        if lib == "hotcoco":
            coco = COCO(gt)
            res = coco.load_res(_kept(dets))
        else:
            coco = COCO()
            coco.dataset = gt
            coco.createIndex()
            res = coco.loadRes(_kept(dets))
        for name, ids in slices.items():
            ev = Eval(coco, res, iouType="bbox")
            if lib == "hotcoco":
                p = ev.params
                p.img_ids = list(ids)
                ev.params = p
            else:
                ev.params.imgIds = list(ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[name] = [float(v) for v in ev.stats]
    return out


def project(gt: dict, dets: list[dict], slices: dict[str, list[int]]) -> dict[str, list[float]]:
    """The project's path; None (undefined) written back as COCO's -1 for the comparison."""
    got = SliceEvaluator(gt, dets).slices(slices)
    return {name: [-1.0 if got[name][s] is None else got[name][s] for s in STAT_NAMES] for name in slices}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=200, help="scenes (10 images each; default 200)")
    args = ap.parse_args()
    gt, dets, slices = make(args.scenes)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} boxes, {len(dets)} detections, "
          f"{len(slices)} slices")
    ways = [("A. project: SliceEvaluator (hotcoco slice_by)", lambda: project(gt, dets, slices)),
            ("B. hotcoco COCOeval per slice", lambda: per_slice("hotcoco", gt, dets, slices)),
            ("C. faster-coco-eval per slice", lambda: per_slice("faster-coco-eval", gt, dets, slices)),
            ("D. pycocotools per slice (reference)", lambda: per_slice("pycocotools", gt, dets, slices))]
    times, results = {}, {}
    for label, fn in ways:
        t0 = time.perf_counter()
        results[label] = fn()
        times[label] = time.perf_counter() - t0
    ref_label = ways[-1][0]
    ref = results[ref_label]
    for label, got in results.items():
        for name in slices:
            for k, stat in enumerate(STAT_NAMES):
                if got[name][k] != ref[name][k]:
                    raise SystemExit(f"MISMATCH ({label}) {name} {stat}: {got[name][k]} != {ref[name][k]}")
    for label, _ in ways:
        print(f"{label:<46} {times[label]:7.2f} s   {times[ref_label] / times[label]:6.1f}x pycocotools")
    print(f"all {len(slices)} x {len(STAT_NAMES)} figures of A, B and C identical to pycocotools (==)")


if __name__ == "__main__":
    main()

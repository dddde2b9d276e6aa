"""A tiny hand-made 'suite' of flat shapes, for testing and benchmarking the detector tooling
without the renderer.

It follows docs/FORMAT.md for ``annotations.json`` and the ``images/SSSSSS/NAME.png`` layout
(categories ``box`` and ``disc``; per scene one full image and one with ROI 0 removed; a
shape that is too small is marked ``iscrowd`` = ignore). It has no manifest or parquet
files: it is not a suite to verify or evaluate, only input for export / training tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from oddsuite.fileio import atomic_write_bytes, write_json
from oddsuite.suite.io import png_bytes
from oddsuite.suite.layout import ANNOTATIONS, scene_folder

TOY_CLASSES = ("box", "disc")


def _draw(shape_list, h: int, w: int, bg: np.ndarray, rng_noise: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    img = np.clip(img.astype(np.int16) + rng_noise, 0, 255).astype(np.uint8)
    for s in shape_list:
        img[s["mask"](yy, xx)] = s["color"]
    return img


def _place_shapes(rng: np.random.Generator, h: int, w: int, objects: tuple[int, int]) -> list[dict]:
    """One scene's boxes and discs, 2 px apart, drawn from ``rng`` (class, size, place, colour)."""
    shapes: list[dict] = []
    n = int(rng.integers(objects[0], objects[1] + 1))
    tries = 0
    while len(shapes) < n and tries < 200:
        tries += 1
        cls = int(rng.integers(0, len(TOY_CLASSES)))
        bw, bh = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3))
        if cls == 1:
            bw = bh = min(bw, bh)
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = (x0, y0, x0 + bw, y0 + bh)
        if any(not (box[2] + 2 <= s["box"][0] or s["box"][2] + 2 <= box[0] or box[3] + 2 <= s["box"][1]
                    or s["box"][3] + 2 <= box[1]) for s in shapes):
            continue
        color = rng.integers(0, 256, 3)
        if cls == 0:
            mask = (lambda b: lambda yy, xx: (xx >= b[0]) & (xx < b[2]) & (yy >= b[1]) & (yy < b[3]))(box)
        else:
            cx, cy, r = x0 + bw / 2 - 0.5, y0 + bh / 2 - 0.5, bw / 2
            mask = (lambda cx, cy, r: lambda yy, xx: (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)(cx, cy, r)
        shapes.append({"cls": cls, "box": box, "color": color, "mask": mask, "roi": len(shapes)})
    return shapes


def make_toy_suite(out_dir: str | Path, scenes: int = 4, size: tuple[int, int] = (96, 128), seed: int = 0,
                   objects: tuple[int, int] = (1, 3)) -> Path:
    """Write ``scenes`` scenes of ``size`` (h, w) with 1..3 non-overlapping boxes and discs; returns the suite dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h, w = size
    images, anns = [], []
    img_id = ann_id = 0
    for sid in range(scenes):
        rng = np.random.default_rng(np.random.SeedSequence([seed, sid]))
        bg = rng.integers(60, 200, 3)
        noise = rng.integers(-8, 9, (h, w, 3)).astype(np.int16)
        shapes = _place_shapes(rng, h, w, objects)
        all_rois = [s["roi"] for s in shapes]
        variants = [("full", all_rois)] + ([("remove", all_rois[1:])] if len(all_rois) > 1 else [])
        for mode, subset in variants:
            img_id += 1
            sub_shapes = [s for s in shapes if s["roi"] in subset]
            img = _draw(sub_shapes, h, w, bg, noise)
            name = f"{scene_folder(sid)}/s{'-'.join(map(str, subset))}_clear_{mode}.png"
            atomic_write_bytes(out / name, png_bytes(img))
            images.append({"id": img_id, "file_name": name, "width": w, "height": h, "scene_id": sid,
                           "subset": subset, "n_rois": len(shapes), "variant": "clear", "mode": mode,
                           "is_full": subset == all_rois})
            yy, xx = np.mgrid[0:h, 0:w]
            for s in sub_shapes:
                m = s["mask"](yy, xx)
                ys, xs = np.nonzero(m)
                bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
                ann_id += 1
                anns.append({"id": ann_id, "image_id": img_id, "category_id": s["cls"] + 1, "bbox": bbox,
                             "area": float(m.sum()), "iscrowd": int(m.sum() < 40), "roi_id": s["roi"],
                             "visible_fraction": 1.0, "truncation": 0.0, "full_bbox": list(bbox)})
    coco = {
        "info": {"min_visible": 0.1, "suite_seed": seed, "description": "oddsuite toy shapes"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(TOY_CLASSES)],
    }
    write_json(out / ANNOTATIONS, coco)
    return out


def lively_random_model(nc: int, images, imgsz: int = 160, seed: int = 0, arch: str = "yolov8n.yaml"):
    """A random-weight YOLO whose outputs vary with the input, for tests and benchmarks.

    A freshly initialised yolov8n outputs nearly the same score and one huge box everywhere
    (activations vanish through the untrained BatchNorm layers and the head's biases favour
    wide boxes). Here the BatchNorm statistics are set from ``images`` (a data-dependent init)
    and the head's final convolutions are rescaled so that boxes are of varied, moderate size
    and scores spread over (0, 1). It detects nothing meaningful.
    """
    import torch

    from oddsuite.models.common import preprocess
    from oddsuite.models.yolo import random_model

    model = random_model(nc=nc, arch=arch, seed=seed)
    batch, _ = preprocess([np.asarray(im) for im in images], (imgsz, imgsz))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one pass sets the statistics of this batch
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch))
    model.eval()
    for bn in bns:
        bn.momentum = 0.03
    head = model.model[-1]
    g = torch.Generator().manual_seed(seed)
    reg_max = int(getattr(head, "reg_max", 16))
    with torch.no_grad():
        for seq in head.cv2:
            conv = seq[-1]
            conv.weight.mul_(4)
            ramp = (-0.6 * torch.arange(float(reg_max))).repeat(4)
            conv.bias.copy_(ramp + torch.randn(conv.bias.shape, generator=g))
        for seq in head.cv3:
            seq[-1].weight.mul_(4)
    return model

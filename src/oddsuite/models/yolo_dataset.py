"""Export a suite as an ultralytics (YOLO txt) detection data set.

::

    OUT/
      data.yaml            path, train, val, nc, names (suite category order: ids 1.. -> 0..)
      export.json          where it came from: suite, annotations.json SHA-256, selection,
                           split, and each exported file's suite image id
      images/train/NNNNNN_NAME.png   symlinks to (or copies of) the suite images
      labels/train/NNNNNN_NAME.txt   "class cx cy w h", normalised, one line per box
      images/val/...  labels/val/...

Boxes are the annotations' visible ``bbox`` clipped to the image; ``iscrowd`` (ignore) boxes
are left out. The split is by scene, so no scene is in both train and val.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence, Literal

import numpy as np

from oddsuite.errors import SuiteError
from oddsuite.fileio import sha256_file, write_json
from oddsuite.suite.layout import ANNOTATIONS
from oddsuite.suite.reader import read_annotations

log = logging.getLogger(__name__)

EXPORT_CARD = "export.json"


def _is_full_scene(im: dict) -> bool:
    """The whole scene as rendered: every ROI, no masking (mode 'full'), under any variant."""
    return bool(im.get("is_full", True)) and im.get("mode", "full") == "full"


def _yaml_names(names: dict[int, str]) -> str:
    return "".join(f"  {i}: {json.dumps(n)}\n" for i, n in names.items())


def export_yolo(suite_dir: str | Path, out_dir: str | Path, *, images: Literal["full", "all"] = "full",
                link: bool = True, val_fraction: float = 0.2, seed: int = 0,
                classes: Sequence[str] | None = None) -> Path:
    """Write an ultralytics data set from a suite; returns the path of its data.yaml.

    images: ``"full"`` exports only full-scene images (``is_full`` and mode ``full``), ``"all"`` every image of the
    suite (ROI subsets and masking modes included). link: symlink the images (default) or copy
    them. val_fraction: share of scenes held out for validation (at least one when there are two
    or more scenes; with 0, or a single scene, val is the train set). seed: the split's seed.
    classes: the data set's class names in label order (default: the suite's categories); give
    one list to several exports so their labels agree (every suite category must be in it).
    """
    suite = Path(suite_dir)
    out = Path(out_dir)
    if images not in ("full", "all"):
        raise ValueError(f"images must be 'full' or 'all', got {images!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    coco = read_annotations(suite)
    ann_path = suite / ANNOTATIONS

    cats = sorted(coco["categories"], key=lambda c: c["id"])
    if classes is None:
        cat_index = {c["id"]: i for i, c in enumerate(cats)}
        names = {i: c["name"] for i, c in enumerate(cats)}
    else:
        missing = [c["name"] for c in cats if c["name"] not in list(classes)]
        if missing:
            raise SuiteError(f"{ann_path}: categories {missing} are not in the given class list {list(classes)}")
        cat_index = {c["id"]: list(classes).index(c["name"]) for c in cats}
        names = dict(enumerate(classes))

    sel = [im for im in coco["images"] if images == "all" or _is_full_scene(im)]
    if not sel:
        raise SuiteError(f"{ann_path}: no {'full-scene ' if images == 'full' else ''}images to export")
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)

    scenes = sorted({im.get("scene_id", im["id"]) for im in sel})
    n_val = 0
    if val_fraction > 0 and len(scenes) >= 2:
        n_val = min(len(scenes) - 1, max(1, int(round(len(scenes) * val_fraction))))
    rng = np.random.default_rng(seed)
    val_scenes = set(np.asarray(scenes, dtype=object)[rng.permutation(len(scenes))[:n_val]].tolist()) if n_val else set()

    if out.exists():
        if any(out.iterdir()) and not (out / EXPORT_CARD).is_file():
            raise SuiteError(f"{out}: exists and is not an oddsuite YOLO export; choose an empty or new directory")
        for sub in ("images", "labels"):
            shutil.rmtree(out / sub, ignore_errors=True)
    splits = ("train", "val") if n_val else ("train",)
    for s in splits:
        (out / "images" / s).mkdir(parents=True, exist_ok=True)
        (out / "labels" / s).mkdir(parents=True, exist_ok=True)

    files: list[dict] = []
    n_boxes = n_ignored = n_dropped = 0
    for im in sel:
        split = "val" if im.get("scene_id", im["id"]) in val_scenes else "train"
        src = suite / im["file_name"]
        if not src.is_file():
            raise SuiteError(f"{ann_path}: image {im['id']} file {im['file_name']!r} is missing")
        stem = f"{int(im['id']):06d}_{Path(im['file_name']).stem}"
        dst = out / "images" / split / f"{stem}{src.suffix}"
        if link:
            os.symlink(src.resolve(), dst)
        else:
            shutil.copy2(src, dst)
        W, H = float(im["width"]), float(im["height"])
        lines = []
        for a in by_image.get(im["id"], []):
            if a.get("iscrowd", 0) or a.get("ignore", 0):
                n_ignored += 1
                continue
            if a["category_id"] not in cat_index:
                raise SuiteError(f"{ann_path}: annotation {a.get('id')} has unknown category_id {a['category_id']}")
            x, y, w, h = (float(v) for v in a["bbox"])
            x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(W, x + w), min(H, y + h)
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                n_dropped += 1
                continue
            lines.append(f"{cat_index[a['category_id']]} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} "
                         f"{(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}\n")
            n_boxes += 1
        (out / "labels" / split / f"{stem}.txt").write_text("".join(lines))
        files.append({"file": str(dst.relative_to(out)), "image_id": im["id"], "split": split})

    val_dir = "images/val" if n_val else "images/train"
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        f"# written by oddsuite export from {suite.resolve()}\n"
        f"path: {json.dumps(str(out.resolve()))}\n"
        f"train: images/train\n"
        f"val: {val_dir}\n"
        f"nc: {len(names)}\n"
        f"names:\n{_yaml_names(names)}"
    )
    card = {
        "format": "oddsuite-yolo-export/1",
        "suite": str(suite.resolve()),
        "annotations_sha256": sha256_file(ann_path),
        "images": images,
        "link": link,
        "val_fraction": val_fraction,
        "seed": seed,
        "names": {str(k): v for k, v in names.items()},
        "category_ids": {str(cat_index[c["id"]]): c["id"] for c in cats},
        "counts": {"images": len(files), "boxes": n_boxes, "ignored": n_ignored, "empty_dropped": n_dropped,
                   "train": sum(f["split"] == "train" for f in files), "val": sum(f["split"] == "val" for f in files)},
        "val_scenes": sorted(val_scenes, key=str),
        "files": files,
    }
    write_json(out / EXPORT_CARD, card, sort_keys=False)
    log.info("exported %d images (%d boxes, %d ignore boxes left out) to %s", len(files), n_boxes, n_ignored, out)
    return data_yaml

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
from oddsuite.fileio import atomic_write_text, sha256_file, write_json
from oddsuite.suite.layout import ANNOTATIONS, MANIFEST
from oddsuite.suite.reader import read_annotations

log = logging.getLogger(__name__)

EXPORT_CARD = "export.json"


def _is_full_scene(im: dict) -> bool:
    """The whole scene as rendered: every ROI, no masking (mode 'full'), under any variant."""
    return bool(im.get("is_full", True)) and im.get("mode", "full") == "full"


def _yaml_names(names: dict[int, str]) -> str:
    return "".join(f"  {i}: {json.dumps(n)}\n" for i, n in names.items())


def _label_index(cats: list[dict], classes: Sequence[str] | None, ann_path: Path) -> tuple[dict[int, int], dict[int, str]]:
    """Suite category id -> label index, and label index -> name (the suite's order, or ``classes``)."""
    if classes is None:
        return {c["id"]: i for i, c in enumerate(cats)}, {i: c["name"] for i, c in enumerate(cats)}
    missing = [c["name"] for c in cats if c["name"] not in list(classes)]
    if missing:
        raise SuiteError(f"{ann_path}: categories {missing} are not in the given class list {list(classes)}")
    return {c["id"]: list(classes).index(c["name"]) for c in cats}, dict(enumerate(classes))


def _val_scenes(sel: list[dict], val_fraction: float, seed: int) -> set:
    """The scenes held out for validation: a seeded share of the selected images' scenes (at
    least one when there are two or more scenes, never all)."""
    scenes = sorted({im.get("scene_id", im["id"]) for im in sel})
    n_val = 0
    if val_fraction > 0 and len(scenes) >= 2:
        n_val = min(len(scenes) - 1, max(1, int(round(len(scenes) * val_fraction))))
    if not n_val:
        return set()
    rng = np.random.default_rng(seed)
    return set(np.asarray(scenes, dtype=object)[rng.permutation(len(scenes))[:n_val]].tolist())


def _prepare_out(out: Path, splits: Sequence[str]) -> None:
    if out.exists():
        if any(out.iterdir()) and not (out / EXPORT_CARD).is_file():
            raise SuiteError(f"{out}: exists and is not an oddsuite YOLO export; choose an empty or new directory")
        for sub in ("images", "labels"):
            shutil.rmtree(out / sub, ignore_errors=True)
    for s in splits:
        (out / "images" / s).mkdir(parents=True, exist_ok=True)
        (out / "labels" / s).mkdir(parents=True, exist_ok=True)


def _label_lines(im: dict, anns: list[dict], cat_index: dict[int, int], ann_path: Path, counts: dict[str, int]) -> str:
    """One image's YOLO label text: ``class cx cy w h`` per visible box, clipped to the image,
    normalised; ignore boxes and boxes with no area left are counted, not written."""
    W, H = float(im["width"]), float(im["height"])
    lines = []
    for a in anns:
        if a.get("iscrowd", 0) or a.get("ignore", 0):
            counts["ignored"] += 1
            continue
        if a["category_id"] not in cat_index:
            raise SuiteError(f"{ann_path}: annotation {a.get('id')} has unknown category_id {a['category_id']}")
        x, y, w, h = (float(v) for v in a["bbox"])
        x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(W, x + w), min(H, y + h)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            counts["empty_dropped"] += 1
            continue
        lines.append(f"{cat_index[a['category_id']]} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} "
                     f"{(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}\n")
        counts["boxes"] += 1
    return "".join(lines)


def _export_image(suite: Path, out: Path, im: dict, split: str, link: bool, labels: str, ann_path: Path) -> dict:
    """Link (or copy) one image into ``images/SPLIT/`` and write its label file; its export.json entry."""
    src = suite / im["file_name"]
    if not src.is_file():
        raise SuiteError(f"{ann_path}: image {im['id']} file {im['file_name']!r} is missing")
    stem = f"{int(im['id']):06d}_{Path(im['file_name']).stem}"
    dst = out / "images" / split / f"{stem}{src.suffix}"
    if link:
        os.symlink(src.resolve(), dst)
    else:
        shutil.copy2(src, dst)
    atomic_write_text(out / "labels" / split / f"{stem}.txt", labels)  # never a half-written label file
    return {"file": str(dst.relative_to(out)), "image_id": im["id"], "split": split}


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
    cat_index, names = _label_index(cats, classes, ann_path)

    sel = [im for im in coco["images"] if images == "all" or _is_full_scene(im)]
    if not sel:
        raise SuiteError(f"{ann_path}: no {'full-scene ' if images == 'full' else ''}images to export")
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    val_scenes = _val_scenes(sel, val_fraction, seed)
    _prepare_out(out, ("train", "val") if val_scenes else ("train",))

    counts = {"boxes": 0, "ignored": 0, "empty_dropped": 0}
    files = [_export_image(suite, out, im, "val" if im.get("scene_id", im["id"]) in val_scenes else "train", link,
                           _label_lines(im, by_image.get(im["id"], []), cat_index, ann_path, counts), ann_path)
             for im in sel]

    data_yaml = out / "data.yaml"
    atomic_write_text(data_yaml,
                      f"# written by oddsuite export from {suite.resolve()}\n"
                      f"path: {json.dumps(str(out.resolve()))}\n"
                      f"train: images/train\n"
                      f"val: {'images/val' if val_scenes else 'images/train'}\n"
                      f"nc: {len(names)}\n"
                      f"names:\n{_yaml_names(names)}")
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
        "counts": {"images": len(files), **counts,
                   "train": sum(f["split"] == "train" for f in files), "val": sum(f["split"] == "val" for f in files)},
        "val_scenes": sorted(val_scenes, key=str),
        "files": files,
    }
    write_json(out / EXPORT_CARD, card, sort_keys=False)
    log.info("exported %d images (%d boxes, %d ignore boxes left out) to %s", len(files), counts["boxes"],
             counts["ignored"], out)
    return data_yaml


def exported_from(data_yaml: str | Path, suite_dir: str | Path) -> list[str]:
    """Why the data set of ``data_yaml`` looks exported from ``suite_dir`` (empty when it does
    not): its export card(s) (``export.json`` next to the data yaml or in its sub-folders, as
    ``oddsuite train`` writes them) name the same suite folder, or a suite with the same
    manifest.json or annotations.json. FAP+T should not fine-tune on the suite it is scored on."""
    def digest(p: Path) -> str | None:
        try:
            return sha256_file(p)
        except OSError:
            return None

    data_yaml, suite = Path(data_yaml), Path(suite_dir).resolve()
    ours = {MANIFEST: digest(suite / MANIFEST), ANNOTATIONS: digest(suite / ANNOTATIONS)}
    cards = [data_yaml.parent / EXPORT_CARD] + sorted(data_yaml.parent.glob(f"*/{EXPORT_CARD}"))
    out = []
    for card_path in cards:
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError):
            continue
        if not str(card.get("suite", "")):
            continue
        src = Path(str(card["suite"]))
        if src.resolve() == suite:
            out.append(f"was exported from {suite}")
        elif ours[MANIFEST] and digest(src / MANIFEST) == ours[MANIFEST]:
            out.append(f"was exported from {src}, whose manifest.json equals the evaluated suite's")
        elif ours[ANNOTATIONS] and card.get("annotations_sha256") == ours[ANNOTATIONS]:
            out.append(f"was exported from {src}, whose annotations.json equals the evaluated suite's")
    return out

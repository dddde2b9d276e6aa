"""The one reader of a suite: annotations.json, scenes.parquet, rois.parquet, the images
and the manifest's identity (docs/FORMAT.md).

Reads only the on-disk contract. Every problem raises ``SuiteError`` naming the file and
the field. Every stage that opens a suite image does it through :func:`read_image`.
Imports ``fileio``, ``errors`` and the ``suite`` modules ``layout`` and ``manifest``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from oddsuite.errors import SuiteError
from oddsuite.suite.layout import ANNOTATIONS, MANIFEST, ROIS, SCENES
from oddsuite.suite.manifest import check_relative_path, identity_of

log = logging.getLogger(__name__)

SCENES_REQUIRED = ["image_id", "scene_id", "subset", "subset_size", "variant", "mode", "is_full"]
ROIS_REQUIRED = ["scene_id", "roi_id", "category", "category_id"]


@dataclass(frozen=True)
class Suite:
    """A suite read from disk. ``gt`` is the annotations.json dict (validated);
    ``manifest_sha256`` the SHA-256 of manifest.json's bytes and ``identity`` that of its
    canonical form (equal for a suite ``generate`` wrote; None without a manifest)."""

    root: Path
    gt: dict[str, Any]
    scenes: pd.DataFrame
    rois: pd.DataFrame
    manifest_sha256: str | None
    identity: str | None = None

    @property
    def categories(self) -> dict[int, str]:
        return {int(c["id"]): str(c["name"]) for c in self.gt["categories"]}

    @property
    def image_ids(self) -> list[int]:
        return [int(im["id"]) for im in self.gt["images"]]

    def image_path(self, image: Mapping[str, Any]) -> Path:
        return self.root / str(image["file_name"])

    def read_image(self, image: Mapping[str, Any]) -> np.ndarray:
        """One image of annotations.json as RGB uint8 (H, W, 3), checked against its width and height."""
        return read_image(self.image_path(image), size=(int(image["width"]), int(image["height"])),
                          what=f"{ANNOTATIONS} images id {image['id']}")


def read_image(path: str | Path, *, size: tuple[int, int] | None = None, what: str = "") -> np.ndarray:
    """A suite image as RGB uint8, shape (H, W, 3). ``size``: the (width, height) it must
    have; ``what``: where it is listed, for messages. SuiteError naming the file when it is
    missing, unreadable or of another size."""
    from PIL import Image

    path = Path(path)
    listed = f" ({what})" if what else ""
    if not path.is_file():
        raise SuiteError(f"{path}: image file missing{listed}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise SuiteError(f"{path}: not a readable image{listed} ({e})") from e
    if size is not None and (arr.shape[1], arr.shape[0]) != (size[0], size[1]):
        raise SuiteError(f"{path}: is {arr.shape[1]}x{arr.shape[0]} but {what or 'the suite'} says width "
                         f"{size[0]}, height {size[1]}")
    return arr


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(float(v))


def _need(cond: bool, where: str, what: str, value: Any) -> None:
    if not cond:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise SuiteError(f"{where}: expected {what}, got {shown}")


def validate_annotations(gt: Any, path: Path) -> None:
    """Check the fields evaluation uses (FORMAT.md, annotations.json)."""
    _need(isinstance(gt, dict), f"{path}", "a JSON object", type(gt).__name__)
    for key in ("images", "annotations", "categories"):
        _need(isinstance(gt.get(key), list), f"{path}: {key}", "a list", gt.get(key))
    cat_ids: set[int] = set()
    names: set[str] = set()
    for i, c in enumerate(gt["categories"]):
        where = f"{path}: categories[{i}]"
        _need(isinstance(c, dict), where, "an object", c)
        _need(_is_int(c.get("id")) and c["id"] not in cat_ids, f"{where}.id", "a unique integer", c.get("id"))
        _need(isinstance(c.get("name"), str) and c["name"] not in names, f"{where}.name", "a unique string",
              c.get("name"))
        cat_ids.add(int(c["id"]))
        names.add(c["name"])
    subsets: dict[int, set[int]] = {}
    for i, im in enumerate(gt["images"]):
        where = f"{path}: images[{i}]"
        _need(isinstance(im, dict), where, "an object", im)
        _need(_is_int(im.get("id")) and int(im["id"]) not in subsets, f"{where}.id", "a unique integer", im.get("id"))
        _need(isinstance(im.get("file_name"), str) and im["file_name"] != "", f"{where}.file_name",
              "a path relative to the suite", im.get("file_name"))
        check_relative_path(im["file_name"], f"{where}.file_name")
        for key in ("width", "height"):
            _need(_is_int(im.get(key)) and im[key] > 0, f"{where}.{key}", "a positive integer", im.get(key))
        _need(_is_int(im.get("scene_id")), f"{where}.scene_id", "an integer", im.get("scene_id"))
        sub = im.get("subset")
        _need(isinstance(sub, list) and all(_is_int(r) for r in sub) and len(set(sub)) == len(sub),
              f"{where}.subset", "a list of distinct integer ROI ids", sub)
        for key in ("variant", "mode"):
            _need(isinstance(im.get(key), str), f"{where}.{key}", "a string", im.get(key))
        _need(isinstance(im.get("is_full"), bool), f"{where}.is_full", "true or false", im.get("is_full"))
        if "n_rois" in im:
            _need(_is_int(im["n_rois"]), f"{where}.n_rois", "an integer", im["n_rois"])
        subsets[int(im["id"])] = {int(r) for r in sub}
    ann_ids: set[int] = set()
    seen_roi: set[tuple[int, int]] = set()
    for i, a in enumerate(gt["annotations"]):
        where = f"{path}: annotations[{i}]"
        _need(isinstance(a, dict), where, "an object", a)
        _need(_is_int(a.get("id")) and int(a["id"]) not in ann_ids, f"{where}.id", "a unique integer", a.get("id"))
        ann_ids.add(int(a["id"]))
        _need(_is_int(a.get("image_id")) and int(a["image_id"]) in subsets, f"{where}.image_id",
              "the id of an image in 'images'", a.get("image_id"))
        _need(_is_int(a.get("category_id")) and int(a["category_id"]) in cat_ids, f"{where}.category_id",
              "the id of a category in 'categories'", a.get("category_id"))
        bb = a.get("bbox")
        _need(isinstance(bb, list) and len(bb) == 4 and all(_is_num(v) for v in bb) and bb[2] >= 0 and bb[3] >= 0,
              f"{where}.bbox", "[x, y, w, h], finite numbers, w and h >= 0", bb)
        _need(_is_num(a.get("area")) and a["area"] >= 0, f"{where}.area", "a number >= 0", a.get("area"))
        _need(_is_int(a.get("iscrowd")) and a["iscrowd"] in (0, 1), f"{where}.iscrowd", "0 or 1",
              a.get("iscrowd"))
        roi = a.get("roi_id")
        _need(_is_int(roi) and int(roi) in subsets[int(a["image_id"])], f"{where}.roi_id",
              f"a ROI id in the subset of image {a['image_id']}", roi)
        key = (int(a["image_id"]), int(roi))
        _need(key not in seen_roi, f"{where}.roi_id", f"one annotation per ROI of image {a['image_id']}", roi)
        seen_roi.add(key)
        _need(_is_num(a.get("visible_fraction")), f"{where}.visible_fraction", "a number",
              a.get("visible_fraction"))


def _read_parquet(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise SuiteError(f"{path}: missing (every suite has it; see docs/FORMAT.md)")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise SuiteError(f"{path}: not a readable parquet file ({e})") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SuiteError(f"{path}: missing column(s) {missing}")
    return df


def read_annotations(suite_dir: str | Path) -> dict[str, Any]:
    """annotations.json of a suite folder, checked (:func:`validate_annotations`)."""
    root = Path(suite_dir)
    if not root.is_dir():
        raise SuiteError(f"{root}: not a suite folder (no {ANNOTATIONS})")
    ann_path = root / ANNOTATIONS
    if not ann_path.is_file():
        raise SuiteError(f"{ann_path}: missing (every suite has it; see docs/FORMAT.md)")
    try:
        gt = json.loads(ann_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SuiteError(f"{ann_path}: not valid JSON ({e})") from e
    validate_annotations(gt, ann_path)
    return gt


def manifest_digests(suite_dir: str | Path) -> tuple[str | None, str | None]:
    """(SHA-256 of manifest.json's bytes, identity) of a folder; (None, None) without a
    manifest, (sha, None) when it is not a JSON object (``oddsuite verify`` says why)."""
    path = Path(suite_dir) / MANIFEST
    if not path.is_file():
        return None, None
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        man = json.loads(data.decode("utf-8"))
        return digest, identity_of(man) if isinstance(man, dict) else None
    except (ValueError, TypeError, RecursionError):  # not UTF-8 / JSON, or NaN in it
        log.warning("%s: not a valid manifest; the suite has no identity (run `oddsuite verify`)", path)
        return digest, None


def load_suite(suite_dir: str | Path) -> Suite:
    """Read and check a suite folder (annotations.json, scenes.parquet, rois.parquet)."""
    root = Path(suite_dir)
    gt = read_annotations(root)

    scenes_path = root / SCENES
    scenes = _read_parquet(scenes_path, SCENES_REQUIRED)
    ids = [int(im["id"]) for im in gt["images"]]
    s_ids = scenes["image_id"].astype("int64").tolist()
    if sorted(s_ids) != sorted(ids) or len(set(s_ids)) != len(s_ids):
        extra = sorted(set(s_ids) - set(ids))[:5]
        lacking = sorted(set(ids) - set(s_ids))[:5]
        raise SuiteError(f"{scenes_path}: image_id: rows do not match the images of annotations.json "
                         f"(not in annotations.json: {extra}, missing here: {lacking}, duplicated: "
                         f"{len(s_ids) - len(set(s_ids))})")
    scene_of = {int(im["id"]): int(im["scene_id"]) for im in gt["images"]}
    bad = [i for i, s in zip(s_ids, scenes["scene_id"].astype("int64").tolist()) if scene_of[i] != s]
    if bad:
        raise SuiteError(f"{scenes_path}: scene_id: differs from annotations.json for image_id {bad[:5]}")

    rois_path = root / ROIS
    rois = _read_parquet(rois_path, ROIS_REQUIRED)
    keys = list(zip(rois["scene_id"].astype("int64").tolist(), rois["roi_id"].astype("int64").tolist()))
    if len(set(keys)) != len(keys):
        raise SuiteError(f"{rois_path}: (scene_id, roi_id): duplicated rows")
    cat_ids = {int(c["id"]) for c in gt["categories"]}
    bad_cat = sorted(set(rois["category_id"].astype("int64").tolist()) - cat_ids)
    if bad_cat:
        raise SuiteError(f"{rois_path}: category_id: {bad_cat[:5]} are not categories of annotations.json")
    known = set(keys)
    for im in gt["images"]:
        for r in im["subset"]:
            if (int(im["scene_id"]), int(r)) not in known:
                raise SuiteError(f"{rois_path}: no row for scene_id {im['scene_id']}, roi_id {r} "
                                 f"(in the subset of image {im['id']})")
    ann_cat = {(scene_of[int(a["image_id"])], int(a["roi_id"])): int(a["category_id"]) for a in gt["annotations"]}
    roi_cat = dict(zip(keys, rois["category_id"].astype("int64").tolist()))
    for key, c in ann_cat.items():
        if roi_cat[key] != c:
            raise SuiteError(f"{rois_path}: category_id: scene {key[0]} roi {key[1]} is {roi_cat[key]} here "
                             f"but {c} in annotations.json")

    digest, identity = manifest_digests(root)
    if digest is None:
        log.warning("%s: missing; run.json will record no suite hash", root / MANIFEST)
    return Suite(root, gt, scenes, rois, digest, identity)

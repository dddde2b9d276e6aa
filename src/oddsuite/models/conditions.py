"""Inference conditions of reduced context (metrics.md §7): how a frame is fed to a detector.

Seed 003: context accuracy "is especially important when large images are processed in
tiles or at significantly reduced resolution". Each condition is a Detector around another
(:meth:`InferenceCondition.wrap`), so the prediction loop, resume and the executors run it
unchanged; its ``info.recipe`` wraps the inner detector's recipe, so a worker re-creates it.

===================  ========================================================================
condition (text)     what the detector is given
===================  ========================================================================
``reference``        the whole frame (the detector fits it to its input size, as always)
``scale:F``          the frame downscaled by ``F`` (0 < F < 1, OpenCV ``INTER_AREA``); boxes
                     mapped back by ``1 / F``. Reduces detail only where ``F`` times the frame
                     is smaller than the detector's input
``tiles:CxR[:O]``    ``C`` columns x ``R`` rows of overlapping tiles (overlap ratio ``O``,
                     default 0.2), each through the detector at its input size; detections
                     shifted back to frame pixels and merged (below)
``crop:F``           the centred crop keeping fraction ``F`` of each side (reduced field of
                     view); boxes shifted back to frame pixels. The ground truth is clipped to
                     the crop by the scorer (``metrics.reduced_context.clip_ground_truth``)
===================  ========================================================================

Tile geometry is sahi's (``sahi.slicing.get_slice_bboxes``): tiles of
``ceil(W / (C - (C - 1) O))`` x ``ceil(H / (R - (R - 1) O))`` pixels, stepping by the tile
size less ``int(O * size)``; the last tile of a row or column is moved back to end at the
frame's edge. A crop keeps ``round(F W)`` x ``round(F H)`` pixels from
``((W - round(F W)) // 2, (H - round(F H)) // 2)``.

Merging tiles is sahi's greedy non-maximum merging (GREEDYNMM, ``sahi.postprocess.combine.
batched_greedy_nmm``: per class, intersection over the smaller box >= 0.5, best score first;
a merged box is the union of the boxes, with the best score), run as a deployed sliced
pipeline runs it: on the detections at or above the operating threshold ``merge_conf``. The
detections below it, which only the mAP's ranking tail uses, are merged the same way among
themselves, so a low-score box never widens a confident one. The selection is sahi's numpy
backend (the same on every machine; numba would compile in every worker, torchvision order
ties otherwise); the union step follows sahi's ``_apply_merge`` on arrays, since its
``ObjectPrediction`` path costs about 0.4 s per 1,200 boxes and mutates its input list.

This module imports only numpy, OpenCV, sahi and ``models.base``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

import numpy as np

from oddsuite.models.base import MAP_CONF_FLOOR, Detections, Detector, model_info

KINDS = ("reference", "scale", "tiles", "crop")
REFERENCE = "reference"
#: tile overlap ratio when the text gives none (sahi's default)
DEFAULT_OVERLAP = 0.2
#: merging of tiles: sahi's GREEDYNMM, intersection over the smaller box >= 0.5 (sahi's defaults)
MERGE_METRIC = "IOS"
MERGE_THRESHOLD = 0.5
#: the operating threshold tiles are merged at unless told (metrics.matching.DEFAULT_CONF)
DEFAULT_MERGE_CONF = 0.25
#: how tiles are merged, in words (metrics.json and the report repeat it)
MERGE_TEXT = (f"sahi GREEDYNMM per class (intersection over the smaller box >= {MERGE_THRESHOLD}; a merged box is "
              "the union, with the best score), among the detections at or above the operating threshold, and "
              "among those below it apart")
#: the most tiles per side
MAX_TILES = 8

_SYNTAX = "reference, scale:F, tiles:CxR[:OVERLAP] or crop:F (e.g. scale:0.5, tiles:2x2:0.2, crop:0.6)"


@dataclass(frozen=True)
class View:
    """One part of a frame that goes through the detector: the window ``x0, y0, x1, y1``
    (frame pixels, ``x1``/``y1`` exclusive) resized by ``scale`` (1 = as is)."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float = 1.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


def _num(x: float) -> str:
    """0.5 -> '0.5', 0.25 -> '0.25', 1.0 -> '1'."""
    return format(float(x), "g")


@dataclass(frozen=True)
class InferenceCondition:
    """One inference condition (see the module doc). ``factor``: the scale or the kept
    fraction of each side (``scale``, ``crop``); ``cols``/``rows``/``overlap``: the tile grid.
    Build it with :func:`parse_condition`."""

    kind: str = REFERENCE
    factor: float = 1.0
    cols: int = 1
    rows: int = 1
    overlap: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"inference condition kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind in ("scale", "crop") and not (0.0 < self.factor < 1.0):
            raise ValueError(f"{self.kind}: factor must be in (0, 1), got {self.factor}")
        if self.kind == "tiles":
            if not (1 <= self.cols <= MAX_TILES and 1 <= self.rows <= MAX_TILES) or self.cols * self.rows < 2:
                raise ValueError(f"tiles: expected 1..{MAX_TILES} columns and rows, at least 2 tiles, got "
                                 f"{self.cols}x{self.rows}")
            if not (0.0 <= self.overlap < 0.5):
                raise ValueError(f"tiles: overlap ratio must be in [0, 0.5), got {self.overlap}")

    @property
    def name(self) -> str:
        """The condition as it is written: ``reference``, ``scale:0.5``, ``tiles:2x2:0.2``, ``crop:0.6``."""
        if self.kind == "tiles":
            return f"tiles:{self.cols}x{self.rows}:{_num(self.overlap)}"
        if self.kind in ("scale", "crop"):
            return f"{self.kind}:{_num(self.factor)}"
        return REFERENCE

    @property
    def folder(self) -> str:
        """Its results folder inside the reference's: ``inference/tiles-2x2-0.2`` ('.' for the reference)."""
        return "." if self.kind == REFERENCE else "inference/" + self.name.replace(":", "-")

    def describe(self) -> str:
        if self.kind == "scale":
            return f"the frame downscaled by {_num(self.factor)} before the detector"
        if self.kind == "tiles":
            return (f"{self.cols} x {self.rows} tiles, overlap {_num(self.overlap)}, each through the detector, "
                    f"merged (sahi GREEDYNMM, IOS >= {MERGE_THRESHOLD})")
        if self.kind == "crop":
            return f"the centred crop keeping {_num(self.factor)} of each side (reduced field of view)"
        return "the whole frame at the detector's input size"

    def views(self, height: int, width: int) -> list[View]:
        """The parts of a ``height`` x ``width`` frame the detector is given, in order."""
        h, w = int(height), int(width)
        if self.kind == "scale":
            return [View(0, 0, w, h, float(self.factor))]
        if self.kind == "crop":
            return [View(*self.window(h, w))]
        if self.kind == "tiles":
            return [View(*b) for b in tile_windows(h, w, self.cols, self.rows, self.overlap)]
        return [View(0, 0, w, h)]

    def window(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The part of the frame in the detector's field of view, ``(x0, y0, x1, y1)``: the
        centred crop, or the whole frame."""
        h, w = int(height), int(width)
        if self.kind != "crop":
            return (0, 0, w, h)
        cw, ch = max(1, round(self.factor * w)), max(1, round(self.factor * h))
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return (x0, y0, x0 + cw, y0 + ch)

    def wrap(self, detector: Detector, merge_conf: float = DEFAULT_MERGE_CONF) -> Detector:
        """``detector`` under this condition (the reference returns it unchanged)."""
        if self.kind == REFERENCE:
            return detector
        return ConditionDetector(detector, self, merge_conf)


def tile_windows(height: int, width: int, cols: int, rows: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """``cols`` x ``rows`` tiles ``(x0, y0, x1, y1)`` of a frame, row by row (sahi's
    ``get_slice_bboxes``; tile size in the module doc). ValueError when the frame is too
    small to hold that many distinct tiles."""
    from sahi.slicing import get_slice_bboxes

    tw = math.ceil(width / (cols - (cols - 1) * overlap))
    th = math.ceil(height / (rows - (rows - 1) * overlap))
    boxes = get_slice_bboxes(int(height), int(width), slice_height=th, slice_width=tw, auto_slice_resolution=False,
                             overlap_height_ratio=overlap, overlap_width_ratio=overlap)
    out = [tuple(int(v) for v in b) for b in boxes]
    if len(out) != cols * rows or len(set(out)) != len(out):
        raise ValueError(f"tiles:{cols}x{rows}:{_num(overlap)}: a {width}x{height} frame gives {len(set(out))} "
                         f"distinct tiles, not {cols * rows}")
    return out  # type: ignore[return-value]


def parse_condition(text: str) -> InferenceCondition:
    """``"tiles:2x2:0.2"`` -> InferenceCondition; ValueError naming the text and what was expected."""
    t = str(text).strip().lower()
    try:
        if t in (REFERENCE, "ref"):
            return InferenceCondition()
        m = re.fullmatch(r"(scale|crop):([0-9.]+)", t)
        if m:
            return InferenceCondition(m.group(1), factor=float(m.group(2)))
        m = re.fullmatch(r"tiles:(\d+)x(\d+)(?::([0-9.]+))?", t)
        if m:
            ov = float(m.group(3)) if m.group(3) is not None else DEFAULT_OVERLAP
            return InferenceCondition("tiles", cols=int(m.group(1)), rows=int(m.group(2)), overlap=ov)
    except ValueError as e:
        raise ValueError(f"inference condition {text!r}: {e}") from e
    raise ValueError(f"inference condition {text!r}: expected {_SYNTAX}")


def parse_conditions(spec: str | Iterable[str | InferenceCondition]) -> list[InferenceCondition]:
    """A comma-separated list (or a sequence) of conditions, the reference first (added when
    not given: context retention is measured against it). ValueError on a bad or repeated one."""
    items = [s for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[InferenceCondition] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise ValueError(f"inference conditions {spec!r}: an empty entry; expected {_SYNTAX}, comma-separated")
        c = item if isinstance(item, InferenceCondition) else parse_condition(item)
        if c in out:
            raise ValueError(f"inference condition {c.name!r} is given twice")
        out.append(c)
    ref = InferenceCondition()
    return [ref] + [c for c in out if c != ref]


# ----------------------------------------------------------------------------- merging


def _ios(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box of ``box`` (4,) with each of ``others`` (N, 4), xyxy."""
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    smaller = np.minimum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(smaller > 0, iw * ih / smaller, 0.0)


def greedy_merge(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> Detections:
    """sahi's GREEDYNMM of one image's detections (xyxy frame pixels), per class: sahi's
    ``batched_greedy_nmm`` picks each kept box and the boxes it may absorb; each of those,
    in sahi's order, is merged when its IOS with the (growing) kept box is still >= 0.5
    (sahi's ``_apply_merge``): the kept box becomes the union, its score the higher one.
    Output: the kept boxes, best score first (ties by input order)."""
    from sahi.postprocess.backends import get_postprocess_backend, set_postprocess_backend
    from sahi.postprocess.combine import batched_greedy_nmm

    n = len(scores)
    if n == 0:
        return Detections.empty()
    if get_postprocess_backend() != "numpy":
        set_postprocess_backend("numpy")
    preds = np.concatenate([boxes.astype(np.float32), scores.astype(np.float32)[:, None],
                            class_ids.astype(np.float32)[:, None]], axis=1)
    keep_to_merge = batched_greedy_nmm(preds, MERGE_METRIC, MERGE_THRESHOLD)
    out_b, out_s, out_c = [], [], []
    for keep, merged in keep_to_merge.items():
        box = boxes[keep].astype(np.float64).copy()
        score = float(scores[keep])
        for j in merged:
            if _ios(box, boxes[j:j + 1].astype(np.float64))[0] >= MERGE_THRESHOLD:
                box[:2] = np.minimum(box[:2], boxes[j, :2])
                box[2:] = np.maximum(box[2:], boxes[j, 2:])
                score = max(score, float(scores[j]))
        out_b.append(box)
        out_s.append(score)
        out_c.append(int(class_ids[keep]))
    order = np.argsort(-np.asarray(out_s), kind="mergesort")
    return Detections(np.asarray(out_b)[order].reshape(-1, 4), np.asarray(out_s)[order], np.asarray(out_c)[order])


def merge_tiles(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, merge_conf: float) -> Detections:
    """The tiles' detections of one frame merged as the module doc says: the detections with
    score >= ``merge_conf`` among themselves, then those below it among themselves."""
    high = scores >= merge_conf
    parts = [greedy_merge(boxes[m], scores[m], class_ids[m]) for m in (high, ~high)]
    return Detections(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                      np.concatenate([p.class_ids for p in parts]))


# ----------------------------------------------------------------------------- the wrapper


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class ConditionRecipe:
    """Re-creates a :class:`ConditionDetector` in a worker: the inner detector's recipe, the
    condition and the merge threshold (picklable and hashable as the inner recipe is)."""

    inner: Any
    condition: InferenceCondition
    merge_conf: float = DEFAULT_MERGE_CONF

    def load(self) -> Detector:
        return self.condition.wrap(self.inner.load(), self.merge_conf)


class ConditionDetector:
    """A Detector that feeds each frame to ``inner`` under ``condition`` and returns boxes in
    the frame's pixels (see the module doc). ``name``: ``"<inner name>@<condition>"``;
    ``classes``: the inner detector's; ``info``: the inner ``ModelInfo`` (pin, files, class
    map, input size) with a :class:`ConditionRecipe` around the inner recipe (None when the
    inner detector has none)."""

    def __init__(self, inner: Detector, condition: InferenceCondition, merge_conf: float = DEFAULT_MERGE_CONF):
        if condition.kind == REFERENCE:
            raise ValueError("the reference condition is the detector itself; use condition.wrap(detector)")
        self.inner, self.condition, self.merge_conf = inner, condition, float(merge_conf)
        self.name = f"{inner.name}@{condition.name}"
        self.classes = dict(inner.classes)
        base = model_info(inner)
        recipe = ConditionRecipe(base.recipe, condition, self.merge_conf) if base.recipe is not None else None
        self.info = replace(base, recipe=recipe)

    def predict_views(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        """The detections of every view of each frame, shifted and scaled back to frame pixels
        and concatenated view by view, not merged. Every view of every frame goes to the inner
        detector in one ``predict`` call."""
        views: list[tuple[int, View]] = []
        inputs: list[np.ndarray] = []
        for i, img in enumerate(images):
            for v in self.condition.views(img.shape[0], img.shape[1]):
                part = img[v.y0:v.y1, v.x0:v.x1]
                inputs.append(_resize(part, v.scale) if v.scale != 1.0 else part)
                views.append((i, v))
        raw = self.inner.predict(inputs, conf=conf) if inputs else []
        if len(raw) != len(inputs):
            raise ValueError(f"detector {self.inner.name!r}: predict() on {len(inputs)} images returned {len(raw)}")
        per_frame: list[list[Detections]] = [[] for _ in images]
        for (i, v), det, part in zip(views, raw, inputs):
            b = det.boxes.astype(np.float64)
            sx, sy = part.shape[1] / (v.x1 - v.x0), part.shape[0] / (v.y1 - v.y0)
            mapped = np.stack([b[:, 0] / sx + v.x0, b[:, 1] / sy + v.y0, b[:, 2] / sx + v.x0, b[:, 3] / sy + v.y0],
                              axis=1) if len(b) else b.reshape(0, 4)
            per_frame[i].append(Detections(mapped, det.scores, det.class_ids))
        return [Detections(np.concatenate([d.boxes for d in parts]), np.concatenate([d.scores for d in parts]),
                           np.concatenate([d.class_ids for d in parts])) for parts in per_frame]

    def predict(self, images: Sequence[np.ndarray], conf: float = MAP_CONF_FLOOR) -> list[Detections]:
        """images: HxWx3 uint8 RGB frames; one Detections per frame, boxes in frame pixels
        (:meth:`predict_views`, then, for tiles, :func:`merge_tiles` at ``merge_conf``)."""
        out = self.predict_views(images, conf)
        if self.condition.kind != "tiles":
            return out
        return [merge_tiles(d.boxes, d.scores, d.class_ids, self.merge_conf) for d in out]

    def __repr__(self) -> str:
        return f"ConditionDetector({self.inner!r}, {self.condition.name!r})"

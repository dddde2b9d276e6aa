"""Suite images with ground truth and predictions drawn, as base64 PNG for the report.

Colours (the report's legend repeats them): ground-truth boxes by the ROI's outcome in the
image, green = hit, red = miss, orange = mislabel, grey = ignore region; predictions with
score ≥ conf in blue with their class and score; detections matching no ground truth in
magenta. The ROI an example is about is drawn thicker and labelled.
"""
from __future__ import annotations

import base64
import io
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

log = logging.getLogger(__name__)

OUTCOME_COLOURS = {"hit": (39, 174, 96), "miss": (231, 76, 60), "mislabel": (243, 156, 18), "ignore": (149, 165, 166)}
PRED_COLOUR = (52, 120, 246)
FP_COLOUR = (214, 48, 200)
#: predictions drawn per image at most (the best scores); the caption says when there are more
MAX_BOXES = 12
#: images are drawn this wide (small renders are scaled up so boxes and labels stay legible)
WIDTH = 300


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font only
        return ImageFont.load_default()


class ImageDrawer:
    """Draws suite images with their boxes. ``gt``: annotations.json; ``predictions``: the
    COCO results list; ``outcomes``: outcomes.parquet (outcome per image and ROI)."""

    def __init__(self, suite_dir: Path, gt: Mapping[str, Any], predictions: Iterable[Mapping[str, Any]],
                 outcomes: pd.DataFrame, *, conf: float, width: int = WIDTH, max_boxes: int = MAX_BOXES):
        self.root = Path(suite_dir)
        self.images = {int(im["id"]): im for im in gt["images"]}
        self.cats = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
        self.anns: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
        for a in gt["annotations"]:
            self.anns[int(a["image_id"])].append(a)
        self.preds: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
        for d in predictions:
            if float(d["score"]) >= conf:
                self.preds[int(d["image_id"])].append(d)
        cols = ["image_id", "roi_id", "outcome", "ignore"]
        self.outcome: dict[tuple[int, int], str] = {}
        for r in outcomes[cols].itertuples(index=False):
            self.outcome[(int(r.image_id), int(r.roi_id))] = "ignore" if bool(r.ignore) else str(r.outcome)
        self.conf = conf
        self.width = width
        self.max_boxes = int(max_boxes)
        self.font = _font(11)
        self._cache: dict[tuple, str | None] = {}
        self.by_key: dict[tuple[int, str, str, str], int] = {}
        for im in gt["images"]:
            sub = ",".join(str(int(r)) for r in sorted(im["subset"]))
            self.by_key[(int(im["scene_id"]), str(im["variant"]), str(im["mode"]), sub)] = int(im["id"])

    def image_id(self, scene: int, variant: str, mode: str, subset: Iterable[int]) -> int | None:
        sub = ",".join(str(int(r)) for r in sorted(subset))
        return self.by_key.get((int(scene), str(variant), str(mode), sub))

    def caption(self, image_id: int, roi: int | None = None, zoom: bool = False) -> str:
        im = self.images.get(int(image_id))
        if im is None:
            return f"image {image_id}"
        sub = "{" + ", ".join(str(r) for r in sorted(im["subset"])) + "}"
        what = "full scene" if im.get("mode") == "full" else f"{im['mode']}, ROIs {sub}"
        text = f"scene {im['scene_id']} · {im['variant']} · {what}"
        if roi is not None:
            o = self.outcome.get((int(image_id), int(roi)))
            if o is not None:
                text += f" · ROI {roi}: {o}"
        if zoom:
            text += " (zoomed)"
        n = len(self.preds.get(int(image_id), []))
        if n > self.max_boxes:
            text += f" · best {self.max_boxes} of {n} detections drawn"
        return text

    def shown_predictions(self, image_id: int) -> list[Mapping[str, Any]]:
        """The predictions drawn: the ``max_boxes`` best of those at the operating threshold."""
        preds = self.preds.get(int(image_id), [])
        return sorted(preds, key=lambda p: -float(p["score"]))[:self.max_boxes]

    def roi_box(self, scene: int, rois: Iterable[int]) -> tuple[float, float, float, float] | None:
        """The union (xywh) of the ROIs' full boxes in the scene's images, None if none is annotated."""
        want = {int(r) for r in rois}
        xs: list[float] = []
        ys: list[float] = []
        for image_id, im in self.images.items():
            if int(im["scene_id"]) != int(scene):
                continue
            for a in self.anns.get(image_id, []):
                if int(a["roi_id"]) in want:
                    x, y, w, h = (float(v) for v in (a.get("full_bbox") or a["bbox"]))
                    xs += [x, x + w]
                    ys += [y, y + h]
            if xs and im.get("mode") == "full":
                break
        if not xs:
            return None
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    def zoom_window(self, image_id: int, box: tuple[float, float, float, float] | None,
                    factor: float = 3.0, min_frac: float = 0.35) -> tuple[float, float, float, float] | None:
        """A window (x0, y0, x1, y1) of the image's aspect ratio, ``factor`` times the box and at
        least ``min_frac`` of the image wide, centred on the box and kept inside the image."""
        im = self.images.get(int(image_id))
        if im is None or box is None:
            return None
        W, H = float(im["width"]), float(im["height"])
        x, y, w, h = box
        ww = min(W, max(factor * w, factor * h * W / H, min_frac * W))
        wh = ww * H / W
        cx, cy = x + w / 2, y + h / 2
        x0 = min(max(0.0, cx - ww / 2), W - ww)
        y0 = min(max(0.0, cy - wh / 2), H - wh)
        if ww >= W * 0.98:
            return None
        return (x0, y0, x0 + ww, y0 + wh)

    def draw(self, image_id: int, *, highlight: Iterable[int] = (), secondary: Iterable[int] = (),
             fp: bool = False, window: tuple[float, float, float, float] | None = None,
             outline: tuple[float, float, float, float] | None = None) -> str | None:
        """The image as a data URI, or None when its file is not readable. ``window``: show
        only this part (x0, y0, x1, y1, pixels), scaled up; ``outline``: draw this window."""
        key = (int(image_id), tuple(sorted(highlight)), tuple(sorted(secondary)), fp, window, outline)
        if key not in self._cache:
            self._cache[key] = self._draw(int(image_id), set(highlight), set(secondary), fp, window, outline)
        return self._cache[key]

    def _draw(self, image_id: int, highlight: set[int], secondary: set[int], fp: bool,
              window: tuple[float, float, float, float] | None,
              outline: tuple[float, float, float, float] | None) -> str | None:
        from PIL import Image, ImageDraw

        from oddsuite.errors import SuiteError
        from oddsuite.suite import read_image

        im = self.images.get(image_id)
        if im is None:
            return None
        try:
            img = Image.fromarray(read_image(self.root / str(im["file_name"])))
        except SuiteError as e:
            log.warning("%s", e)
            return None
        ox = oy = 0.0
        if window is not None:
            ox, oy = window[0], window[1]
            img = img.crop(tuple(int(round(v)) for v in window))
        s = self.width / img.width
        img = img.resize((self.width, max(1, round(img.height * s))), Image.BICUBIC if window else Image.BILINEAR)
        d = ImageDraw.Draw(img)
        if outline is not None:
            x0, y0, x1, y1 = ((outline[0] - ox) * s, (outline[1] - oy) * s, (outline[2] - ox) * s, (outline[3] - oy) * s)
            d.rectangle([x0, y0, x1, y1], outline=(255, 255, 255), width=1)
            d.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline=(0, 0, 0), width=1)

        def box(b, colour, w, label=None):
            x, y, bw, bh = float(b[0]) - ox, float(b[1]) - oy, float(b[2]), float(b[3])
            x, y, bw, bh = x * s, y * s, bw * s, bh * s
            d.rectangle([x, y, x + bw, y + bh], outline=colour, width=w)
            if label:
                tw = d.textlength(label, font=self.font)
                ty = y - 13 if y >= 13 else y + bh + 1
                d.rectangle([x, ty, x + tw + 4, ty + 12], fill=colour)
                d.text((x + 2, ty), label, fill=(255, 255, 255), font=self.font)

        gt_boxes = []
        for a in self.anns.get(image_id, []):
            roi = int(a["roi_id"])
            o = self.outcome.get((image_id, roi), "ignore" if a.get("iscrowd") else "miss")
            gt_boxes.append(a["bbox"])
            if roi in highlight:
                continue
            box(a["bbox"], OUTCOME_COLOURS.get(o, OUTCOME_COLOURS["ignore"]), 3 if roi in secondary else 1,
                f"ROI {roi}" if roi in secondary else None)
        for p in self.shown_predictions(image_id):
            colour = PRED_COLOUR
            if fp and not any(_iou(p["bbox"], g) >= 0.5 for g in gt_boxes):
                colour = FP_COLOUR
            box(p["bbox"], colour, 1, f"{self.cats.get(int(p['category_id']), '?')} {float(p['score']):.2f}")
        for a in self.anns.get(image_id, []):  # the highlighted ROI last, on top
            roi = int(a["roi_id"])
            if roi in highlight:
                o = self.outcome.get((image_id, roi), "miss")
                box(a["bbox"], OUTCOME_COLOURS.get(o, OUTCOME_COLOURS["ignore"]), 3,
                    f"ROI {roi} {self.cats.get(int(a['category_id']), '')}: {o}")
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return png_data_uri(buf.getvalue())


def _iou(a, b) -> float:
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0

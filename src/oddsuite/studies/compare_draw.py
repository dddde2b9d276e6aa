"""Side-by-side pictures of one image under detectors A and B (the images with the most flips)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: colours (RGB)
GT_HIT = (40, 220, 70)
GT_MISS = (255, 60, 60)
GT_IGNORE = (150, 150, 150)
DET = (255, 200, 0)
TEXT_BG = (20, 20, 20)
#: smallest width a panel is drawn at (small suite images are upscaled, nearest neighbour)
MIN_PANEL_W = 480
#: above this many detections in a panel, only their boxes are drawn
MAX_LABELLED = 40


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _label(draw, xy: tuple[float, float], text: str, colour, font) -> None:
    x, y = xy
    l, t, r, b = draw.textbbox((x, y), text, font=font)
    draw.rectangle((l - 1, t - 1, r + 1, b + 1), fill=TEXT_BG)
    draw.text((x, y), text, fill=colour, font=font)


def _panel(rgb: np.ndarray, scale: int, rois: Sequence[Mapping[str, Any]], outcome_key: str,
           dets: Sequence[Mapping[str, Any]], cat_names: Mapping[int, str], header: str, font, small):
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb).resize((w * scale, h * scale), Image.NEAREST) if scale > 1 else Image.fromarray(rgb)
    head_h = 22
    canvas = Image.new("RGB", (img.width, img.height + head_h), TEXT_BG)
    canvas.paste(img, (0, head_h))
    d = ImageDraw.Draw(canvas)
    d.text((4, 4), header, fill=(255, 255, 255), font=font)

    def box(b):
        x, y, bw, bh = (float(v) * scale for v in b)
        return x, y + head_h, x + bw, y + bh + head_h

    for det in dets:
        x1, y1, x2, y2 = box(det["bbox"])
        d.rectangle((x1, y1, x2, y2), outline=DET, width=1)
        if len(dets) <= MAX_LABELLED:
            _label(d, (x1, max(head_h, y1 - 12)), f"{cat_names.get(int(det['category_id']), det['category_id'])} "
                                                 f"{float(det['score']):.2f}", DET, small)
    for r in rois:
        if r.get("bbox") is None:
            continue
        x1, y1, x2, y2 = box(r["bbox"])
        if r.get("ignore"):
            colour, width = GT_IGNORE, 1
        else:
            colour, width = (GT_HIT if r[outcome_key] == "hit" else GT_MISS), 2
        if r.get("flipped"):
            width = 4
        d.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        tag = f"r{r['roi_id']} {r[outcome_key]}" + (" (ignore)" if r.get("ignore") else "") + (" FLIP" if r.get("flipped") else "")
        _label(d, (x1, max(head_h, y2 + 1)), tag, colour, small)
    return canvas


def draw_pair(image_path: Path, out_path: Path, *, rois: Sequence[Mapping[str, Any]],
              dets_a: Sequence[Mapping[str, Any]], dets_b: Sequence[Mapping[str, Any]], cat_names: Mapping[int, str],
              name_a: str, name_b: str, caption: str) -> Path:
    """A | B, each with the ground truth (green: hit, red: not hit, grey: ignore region; thick:
    flipped between A and B, labelled with the ROI id and outcome) and the detections with
    score >= conf (yellow, with class and score when there are few), under the ground truth. ``rois``: dicts with roi_id, bbox (xywh or None),
    ignore, outcome_a, outcome_b, flipped."""
    from PIL import Image, ImageDraw

    from oddsuite.fileio import atomic_write
    from oddsuite.suite import read_image

    rgb = read_image(image_path)
    scale = max(1, math.ceil(MIN_PANEL_W / rgb.shape[1]))
    font, small = _font(13), _font(11)
    left = _panel(rgb, scale, rois, "outcome_a", dets_a, cat_names, f"A: {name_a}  ({len(dets_a)} detections)",
                  font, small)
    right = _panel(rgb, scale, rois, "outcome_b", dets_b, cat_names, f"B: {name_b}  ({len(dets_b)} detections)",
                   font, small)
    gap, foot = 6, 22
    canvas = Image.new("RGB", (left.width + gap + right.width, left.height + foot), TEXT_BG)
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    ImageDraw.Draw(canvas).text((4, left.height + 4), caption, fill=(255, 255, 255), font=font)
    atomic_write(out_path, lambda f: canvas.save(f, format="PNG"))
    return out_path

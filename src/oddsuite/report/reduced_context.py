"""Report section of reduced context (metrics.md §7), built from metrics.json's
``reduced_context`` and the conditions' results folders: one row per inference condition
(its scores and its context retention against the reference), retention per class, and a
small-multiples figure: the same full scene under every condition, one panel each, with
that condition's predictions and outcomes drawn and the part of the frame the detector saw
outlined (tile borders, the crop window)."""
from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from oddsuite.metrics.reduced_context import REFERENCE, clip_ground_truth
from oddsuite.report.images import ImageDrawer, png_data_uri

log = logging.getLogger(__name__)

#: colours of the outlines: tile borders, the crop window
TILE_COLOUR = (255, 214, 0)
CROP_COLOUR = (0, 229, 255)


def _labels(outcomes: pd.DataFrame) -> dict[tuple[int, int], str]:
    """(image, ROI) -> outcome of the full-scene rows, 'ignore' when not scored."""
    full = outcomes.loc[outcomes["mode"] == "full"]
    out = {}
    for r in full[["image_id", "roi_id", "outcome", "ignore", "not_visible"]].itertuples(index=False):
        out[(int(r.image_id), int(r.roi_id))] = "ignore" if bool(r.ignore) or bool(r.not_visible) else str(r.outcome)
    return out


def pick_scene(tables: Sequence[pd.DataFrame]) -> int | None:
    """The full-scene image whose ROIs change outcome across the conditions most (then the one
    with most ROIs, then the lowest id); None without full-scene rows."""
    labels = [_labels(t) for t in tables]
    keys = sorted(set().union(*labels)) if labels else []
    score: dict[int, list[int]] = {}
    for image_id, roi_id in keys:
        seen = {lab.get((image_id, roi_id)) for lab in labels}
        s = score.setdefault(image_id, [0, 0])
        s[0] += int(len(seen) > 1)
        s[1] += 1
    if not score:
        return None
    return min(score, key=lambda i: (-score[i][0], -score[i][1], i))


def _outline(uri: str, boxes: Sequence[Sequence[float]], width: int, frame_width: int,
             colour: tuple[int, int, int]) -> str:
    """The drawn image (a PNG data URI ``width`` pixels wide) with frame-pixel windows outlined."""
    from PIL import Image, ImageDraw

    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    s = width / float(frame_width)
    d = ImageDraw.Draw(img)
    for x0, y0, x1, y1 in boxes:
        d.rectangle([x0 * s, y0 * s, x1 * s - 1, y1 * s - 1], outline=colour, width=1)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return png_data_uri(buf.getvalue())


def _read_folder(folder: Path) -> tuple[list[Any], pd.DataFrame] | None:
    p, o = folder / "predictions.json", folder / "outcomes.parquet"
    if not (p.is_file() and o.is_file()):
        return None
    return json.loads(p.read_text(encoding="utf-8")), pd.read_parquet(o)


def _panels(res: Path, suite: Path, gt: Mapping[str, Any], conditions: Sequence[Mapping[str, Any]], conf: float,
            width: int) -> tuple[list[dict[str, Any]], str | None]:
    """One panel per condition of the same full scene, and the scene's caption."""
    from oddsuite.models.conditions import parse_condition

    data = [_read_folder(res / str(c["folder"])) for c in conditions]
    if any(d is None for d in data):
        return [], None
    image_id = pick_scene([d[1] for d in data])  # type: ignore[index]
    if image_id is None:
        return [], None
    panels = []
    caption = None
    for c, (preds, outcomes) in zip(conditions, data):  # type: ignore[misc]
        cond = parse_condition(str(c["name"]))
        cgt = clip_ground_truth(gt, cond.window) if cond.kind == "crop" else gt
        drawer = ImageDrawer(suite, cgt, preds, outcomes, conf=conf, width=width)
        uri = drawer.draw(image_id)
        im = drawer.images[image_id]
        caption = caption or drawer.caption(image_id)
        h, w = int(im["height"]), int(im["width"])
        if uri is not None and cond.kind in ("tiles", "crop"):
            uri = _outline(uri, [v.box for v in cond.views(h, w)], width, w,
                           TILE_COLOUR if cond.kind == "tiles" else CROP_COLOUR)
        lab = {k[1]: v for k, v in _labels(outcomes).items() if k[0] == image_id}
        hits = sum(v == "hit" for v in lab.values())
        scored = sum(v != "ignore" for v in lab.values())
        seen = ""
        if cond.kind == "scale":
            seen = f"; the detector got {round(w * cond.factor)} × {round(h * cond.factor)} pixels"
        panels.append({"uri": uri, "caption": f"{c['name']}: {hits} of {scored} ROIs hit{seen}"})
    return panels, caption


def reduced_context_section(metrics: Mapping[str, Any], res: Path, suite: Path | None, gt: Mapping[str, Any] | None,
                            conf: float, width: int = 300) -> dict[str, Any] | None:
    """The section's values; None when metrics.json has no ``reduced_context`` (evaluated
    without ``--inference``)."""
    section = metrics.get("reduced_context")
    if not isinstance(section, Mapping):
        return None
    conditions = list(section.get("conditions") or [])
    classes = sorted({k for c in conditions for k in ((c.get("retention") or {}).get("by_class") or {})})
    by_class = [{"name": c["name"], "cells": [((c.get("retention") or {}).get("by_class") or {}).get(k)
                                              for k in classes]}
                for c in conditions if c.get("retention")]
    panels, caption = ([], None)
    if suite is not None and gt is not None:
        panels, caption = _panels(res, suite, gt, conditions, conf, width)
    return {"conditions": conditions, "merge": section.get("merge") or {}, "classes": classes, "by_class": by_class,
            "panels": panels, "scene": caption, "reference": section.get("reference", REFERENCE)}

"""Masking modes of ROI subsets.

- ``remove``: the scene re-rendered with only the subset's ROIs (scenery stays; shadows of
  removed objects go): ``Renderer.render(scene, env, rois=subset)`` or the composite fast path.
- ``isolate``: the subset's ROIs alone on a neutral background, no scenery (the seed's
  "noise-free masked ROI"): ``Renderer.render(scene, env, rois=subset, scenery=False)``.
- ``cutout``: image-space masking of the full render (below): occluders that are not in
  the subset stay as neutral pixels, so what they hid stays hidden.
"""
from __future__ import annotations

import numpy as np

from oddsuite.render import Frame

MODES = ("remove", "isolate", "cutout")
NEUTRAL_RGB = np.array([128, 128, 128], dtype=np.uint8)


def cutout(frame: Frame, subset: tuple[int, ...]) -> Frame:
    """Every pixel of the full render that is not of the subset's ROIs becomes neutral grey."""
    keep = np.isin(frame.ids, np.asarray(subset, dtype=np.int32))
    rgb = np.where(keep[..., None], frame.rgb, NEUTRAL_RGB)
    ids = np.where(keep, frame.ids, -1)
    objs = {k: v for k, v in frame.objects.items() if k in subset}
    return Frame(rgb, frame.depth, ids, objs)

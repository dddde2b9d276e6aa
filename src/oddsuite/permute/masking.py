"""Masking modes of ROI subsets, and their dispatch (``VariantFrames.frame``).

- ``remove``: the scene re-rendered with only the subset's ROIs (scenery stays; shadows of
  removed objects go): ``Renderer.render(scene, env, rois=subset)``, or the composite
  fast path (``permute.composite``) when the plan asks for it.
- ``isolate``: the subset's ROIs alone on a neutral background, no scenery (the seed's
  "noise-free masked ROI"): ``Renderer.render(scene, env, rois=subset, scenery=False)``.
- ``cutout``: image-space masking of the full render (below): occluders that are not in
  the subset stay as neutral pixels, so what they hid stays hidden.

A mode is one function ``(VariantFrames, subset) -> Frame`` in ``MODES``; a new mode is
one function and one registration line.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from oddsuite.errors import SpecError
from oddsuite.render import Frame, Renderer
from oddsuite.scenes import Scene

NEUTRAL_RGB = np.array([128, 128, 128], dtype=np.uint8)


def cutout(frame: Frame, subset: tuple[int, ...]) -> Frame:
    """Every pixel of the full render that is not of the subset's ROIs becomes neutral grey."""
    keep = np.isin(frame.ids, np.asarray(subset, dtype=np.int32))
    rgb = np.where(keep[..., None], frame.rgb, NEUTRAL_RGB)
    ids = np.where(keep, frame.ids, -1)
    objs = {k: v for k, v in frame.objects.items() if k in subset}
    return Frame(rgb, frame.depth, ids, objs)


class VariantFrames:
    """The frames of one scene under one variant's environment: the full render once,
    then any (mode, subset). ``weather_rng()`` gives a fresh copy of the scene's weather
    Generator for each frame, so every frame of a variant gets the same streaks and flakes.
    ``composite``: remove-mode subsets are composited (1 + n renders) instead of re-rendered."""

    def __init__(self, renderer: Renderer, scene: Scene, env: dict[str, Any],
                 weather_rng: Callable[[], np.random.Generator], composite: bool = False):
        self.renderer, self.scene, self.env, self.weather_rng = renderer, scene, env, weather_rng
        self.composite = composite
        self.all_ids = tuple(o.roi_id for o in scene.objects)
        self.full = renderer.render(scene, env, None, True, weather_rng())
        self._comp: Optional[Any] = None

    def frame(self, mode: str, subset: tuple[int, ...]) -> Frame:
        """The frame of ``subset`` under masking ``mode``. Raises SpecError for an unknown mode."""
        fn = MODES.get(mode)
        if fn is None:
            raise SpecError(f"unknown masking mode {mode!r}; expected one of: {', '.join(MODES)}")
        return fn(self, tuple(subset))

    def composite_renderer(self) -> Any:
        if self._comp is None:
            from oddsuite.permute.composite import CompositeRenderer

            self._comp = CompositeRenderer(self.renderer, self.scene, self.env)
        return self._comp


def _remove(v: VariantFrames, subset: tuple[int, ...]) -> Frame:
    if subset == v.all_ids:
        return v.full
    if v.composite:
        return v.composite_renderer().frame(subset, v.weather_rng())
    return v.renderer.render(v.scene, v.env, subset, True, v.weather_rng())


def _isolate(v: VariantFrames, subset: tuple[int, ...]) -> Frame:
    return v.renderer.render(v.scene, v.env, subset, False, v.weather_rng())


def _cutout(v: VariantFrames, subset: tuple[int, ...]) -> Frame:
    return cutout(v.full, subset)


#: masking mode → how its frame is made
MODES: dict[str, Callable[[VariantFrames, tuple[int, ...]], Frame]] = {}
MODES["remove"] = _remove
MODES["isolate"] = _isolate
MODES["cutout"] = _cutout

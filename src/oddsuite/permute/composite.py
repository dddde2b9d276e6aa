"""Composite rendering of ROI subsets: 1 + n renders instead of one per subset.

The background (scenery, no ROI) is rendered once, and each ROI once with the scenery
(its colour, depth and mask, and its shadow as a per-pixel ratio on the background).
Any subset is then built by multiplying the background by the subset's shadow ratios and
depth-compositing the subset's ROIs over it; weather is applied afterwards to the
composite, with the composite depth, exactly as the exact renderer does.

Where it differs from exact ``remove`` re-rendering (benchmarks/permute.py measures it):
- shadows an ROI casts on another ROI are missing (each ROI was lit without the others);
- where two ROIs' shadows overlap, multiplying ratios darkens more than one shadow does;
- anti-aliased ROI edges keep the scenery behind them from their own render, even where
  another ROI stands behind them in the composite (a one-pixel fringe).

It is an approximation of a local-lighting rasterizer only. Under global illumination
(the Cycles engine) an object also bounces light onto its surroundings, shows in
reflections (wet road, car paint, glass) and shades indirect light, none of which a
per-object layer can remove; engines whose ``supports_composite`` is false (Cycles) are
refused, and their ``remove`` subsets are always re-rendered exactly.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from oddsuite.render import Frame, Renderer, post_effects
from oddsuite.scenes.scene import Scene


class CompositeRenderer:
    """Per (scene, environment) layers; ``frame(subset)`` composites them."""

    def __init__(self, renderer: Renderer, scene: Scene, env: dict[str, Any]):
        if not getattr(renderer, "supports_composite", True):
            raise ValueError(f"layer compositing approximates the rasterizer only, not the {renderer.name} engine "
                             f"(global illumination); render remove subsets exactly")
        self.r, self.scene, self.env = renderer, scene, env
        bg = renderer.render(scene, env, rois=[], scenery=True, apply_weather=False)
        self.bg_rgb = bg.rgb.astype(np.float32)
        self.bg_depth = bg.depth
        self.layers: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        for o in scene.objects:
            f = renderer.render(scene, env, rois=[o.roi_id], scenery=True, apply_weather=False)
            mask = f.ids == o.roi_id
            ratio = np.ones_like(self.bg_rgb)
            shade = ~mask & (f.depth > 0)
            ratio[shade] = np.clip((f.rgb[shade].astype(np.float32) + 0.5) / (self.bg_rgb[shade] + 0.5), 0.0, 1.0)
            self.layers[o.roi_id] = (f.rgb, f.depth, mask, ratio)

    def shadow_mask(self, rid: int, threshold: float = 0.98) -> np.ndarray:
        """Pixels where ROI ``rid`` darkens the background (its shadow)."""
        return self.layers[rid][3].min(-1) < threshold

    def frame(self, rois: Iterable[int], rng: np.random.Generator | None = None, apply_weather: bool = True) -> Frame:
        """The frame of ROI subset ``rois``; ``rng``: the scene's weather Generator (needed when
        an image effect draws, e.g. rain)."""
        sub = sorted(rois)
        rgb = self.bg_rgb.copy()
        for rid in sub:
            rgb *= self.layers[rid][3]
        # each ROI's mask already excludes what scenery hides, so ROIs are depth-tested only
        # against each other
        zbuf = np.full(self.bg_depth.shape, np.inf, np.float32)
        ids = np.full(self.bg_depth.shape, -1, np.int32)
        for rid in sub:
            orgb, odepth, mask, _ = self.layers[rid]
            m = mask & (odepth < zbuf)
            rgb[m] = orgb[m]
            zbuf[m] = odepth[m]
            ids[m] = rid
        out = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
        depth = np.where(ids >= 0, zbuf, self.bg_depth).astype(np.float32)
        if apply_weather:
            out = post_effects(out, depth, self.env, self.scene.camera, rng)
        return Frame(out, depth, ids, self.r.stats(self.scene, ids, set(sub)))

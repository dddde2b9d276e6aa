"""``halton``: scene ``i`` is point ``i`` of scipy's scrambled Halton sequence (scrambled
with the suite seed) over the dimensions that are not fixed, which covers the ODD more
evenly than random draws for the same number of scenes. Fixed dimensions take their value."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from oddsuite.odd.samplers.base import UnitSampler


class HaltonSampler(UnitSampler):
    name = "halton"

    def unit(self, scene_id: int, rng: np.random.Generator) -> Sequence[float]:
        u = [0.5] * len(self.dims)  # a fixed domain gives its value at any u
        free = [i for i, (_, d) in enumerate(self.dims) if not d.is_fixed]
        if free:
            from scipy.stats import qmc  # scipy.stats takes seconds to import: only when used

            h = qmc.Halton(d=len(free), scramble=True, seed=np.random.default_rng(self.seed))
            if scene_id:
                h.fast_forward(scene_id)
            for i, ui in zip(free, h.random(1)[0]):
                u[i] = ui
        return u

"""``random``: every dimension drawn from the scene's Generator (``SeedSequence([seed, scene_id])``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from oddsuite.odd.samplers.base import UnitSampler


class RandomSampler(UnitSampler):
    name = "random"

    def unit(self, scene_id: int, rng: np.random.Generator) -> Sequence[float]:
        return rng.random(len(self.dims))

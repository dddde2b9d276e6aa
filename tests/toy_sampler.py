"""A toy sampler for the tests: ``corners`` puts every dimension at the low or the high end
of its domain, scene ``i`` taking bit ``j`` of ``i`` for dimension ``j`` (the corners of
the unit cube). Registering it is one line: ``register(CornerSampler)``."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from oddsuite.odd.samplers import UnitSampler

HIGH = math.nextafter(1.0, 0.0)


class CornerSampler(UnitSampler):
    name = "corners"

    def unit(self, scene_id: int, rng: np.random.Generator) -> Sequence[float]:
        return [HIGH if (scene_id >> j) & 1 else 0.0 for j in range(len(self.dims))]

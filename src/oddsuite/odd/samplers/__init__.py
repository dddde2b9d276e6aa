"""Samplers over a spec's global dimensions, one class per file (VerifAI's pattern), and
their registry. A new sampler is one file with a ``Sampler`` (or ``UnitSampler``)
subclass plus one ``register`` line below; a spec selects it by its ``name``."""
from __future__ import annotations

from oddsuite.odd.samplers.base import Sampler, UnitSampler
from oddsuite.odd.samplers.grid import GridSampler
from oddsuite.odd.samplers.halton import HaltonSampler
from oddsuite.odd.samplers.random import RandomSampler

#: every registered sampler by name
SAMPLERS: dict[str, type[Sampler]] = {}


def register(cls: type[Sampler]) -> type[Sampler]:
    """Make ``cls`` selectable as ``sampler: <cls.name>`` in a spec."""
    SAMPLERS[cls.name] = cls
    return cls


register(RandomSampler)
register(GridSampler)
register(HaltonSampler)

__all__ = ["Sampler", "UnitSampler", "SAMPLERS", "register", "RandomSampler", "GridSampler", "HaltonSampler"]

"""``grid``: scene ``i`` is cell ``i`` (mixed radix, first dimension fastest, wrapping) of
the cartesian grid of every global dimension (all choices, ``grid_levels`` points per
range), counting only the cells that keep the rules. The grid's size is bounded when the
spec loads (``MAX_GRID_CELLS``)."""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from oddsuite.errors import SpecError
from oddsuite.odd.rules import broken_rule
from oddsuite.odd.samplers.base import Sampler
from oddsuite.odd.spec import OddSpec

#: the grid sampler enumerates its cells; past this many the spec is refused at load
MAX_GRID_CELLS = 2_000_000


def grid_axes(spec: OddSpec) -> list[list[Any]]:
    """The grid points of every global dimension, in dimension order."""
    return [d.grid(spec.grid_levels) for _, d in spec.dimensions()]


class GridSampler(Sampler):
    name = "grid"

    def first(self, scene_id: int, rng: np.random.Generator) -> list[Any]:
        cells = _valid_cells(self.spec)
        return list(cells[scene_id % len(cells)])

    @classmethod
    def problems(cls, spec: OddSpec) -> list[tuple[tuple, str]]:
        total = 1
        for ax in grid_axes(spec):
            total *= len(ax)
        if total <= MAX_GRID_CELLS:
            return []
        return [(("sampler",), f"the grid has {total} cells (> {MAX_GRID_CELLS}); lower grid_levels or fix some "
                               f"dimensions, or use halton")]


_CACHE: dict[Any, list[tuple[Any, ...]]] = {}


def _valid_cells(spec: OddSpec) -> list[tuple[Any, ...]]:
    """Every grid cell that keeps the rules, in mixed-radix order (first dimension fastest)."""
    key = (spec.source_text, spec.grid_levels, spec.model_dump_json())
    if key in _CACHE:
        return _CACHE[key]
    paths = [p for p, _ in spec.dimensions()]
    cells = []
    for combo in itertools.product(*reversed(grid_axes(spec))):
        vals = tuple(reversed(combo))
        if broken_rule(spec.rules, dict(zip(paths, vals))) is None:
            cells.append(vals)
    if not cells:
        raise SpecError(f"{spec.source_path}: rules: no grid cell satisfies the rules")
    _CACHE.clear()
    _CACHE[key] = cells
    return cells

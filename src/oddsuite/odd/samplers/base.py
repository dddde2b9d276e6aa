"""The sampler protocol (VerifAI's pattern: a sampler over the unit cube).

A sampler chooses the values of a spec's global dimensions (``OddSpec.dimensions()``:
scenery, environment, camera, object counts) for one scene. It is built once per
(spec, suite seed) and asked for any scene id, in any order, on any worker: what it
returns for a scene must depend on (spec, seed, scene id) and the scene's Generator only.

- ``UnitSampler``: the common case. It gives a point ``u`` of the unit cube [0, 1)^d, and
  each dimension's ``Domain.at(u_i)`` turns it into a value (inverse CDF), so random,
  quasi-random and search samplers need not know what the dimensions are.
- ``Sampler``: the general case. ``first`` returns the values themselves; a sampler that
  enumerates cells of the whole ODD (grid, covering arrays) sees the spec's dimensions
  and its rules in ``__init__`` and indexes its cells by scene id.

``problems(spec)`` lets a sampler refuse a spec when it loads (the grid bounds its cell
count there). Rules are enforced after ``first`` by ``odd.sampling``: a point that breaks
one is redrawn at random from the scene's Generator.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np

from oddsuite.odd.domains import Domain
from oddsuite.odd.spec import OddSpec


class Sampler(ABC):
    """Values of the global dimensions for each scene of a suite (see the module doc)."""

    #: the name a spec selects it by (``sampler: NAME``)
    name: ClassVar[str]

    def __init__(self, spec: OddSpec, seed: int):
        self.spec, self.seed = spec, int(seed)
        self.dims: list[tuple[str, Domain]] = spec.dimensions()

    @abstractmethod
    def first(self, scene_id: int, rng: np.random.Generator) -> list[Any]:
        """One value per dimension (in ``self.dims`` order) for scene ``scene_id``.
        ``rng`` is the scene's own Generator (``SeedSequence([seed, scene_id])``)."""

    def placement(self, scene_id: int, key: str, slot: int) -> dict[str, Any] | None:
        """What the sampler fixes of object ``slot`` (0-based, in the order of its class)
        of class ``key`` in scene ``scene_id``: a dict of unit coordinates in [0, 1) for
        ``distance_m``, ``lateral_m``, ``heading_deg`` (each mapped by the class's
        domain) and the asset ``family`` (a name of ``odd.families.ASSET_FAMILIES[key]``),
        any of them absent; None (the default) when the scene's own Generators draw it
        all, as in every sampler but ``search``."""
        return None

    @classmethod
    def problems(cls, spec: OddSpec) -> list[tuple[tuple, str]]:
        """(YAML path, message) of what makes ``spec`` unusable with this sampler; checked at load."""
        return []


class UnitSampler(Sampler):
    """A sampler that gives points of the unit cube; the domains map them to values."""

    @abstractmethod
    def unit(self, scene_id: int, rng: np.random.Generator) -> Sequence[float]:
        """A point of [0, 1)^d, one coordinate per dimension, for scene ``scene_id``."""

    def first(self, scene_id: int, rng: np.random.Generator) -> list[Any]:
        return [d.at(u) for (_, d), u in zip(self.dims, self.unit(scene_id, rng))]

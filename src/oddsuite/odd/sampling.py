"""One scene's parameters from (spec, suite seed, scene id): ``sample_scene``.

The spec's sampler (``odd.samplers``: ``random``, ``grid``, ``halton``, …) chooses the
global dimensions (scenery, environment, camera and the per-class object counts);
per-object placement (distance, lateral offset, heading, scale), asset family and look are drawn
from the scene's own Generators, except where the sampler fixes them (``Sampler.placement``:
a search suite's searched object slots). Every scene's parameters derive from the suite seed and the scene
id alone, so any scene can be re-made by itself, on any worker, identically.

Include/exclude rules are enforced by rejection: a sample that breaks a rule is re-drawn
from the scene's Generator, up to ``max_placement_tries`` times, then a SpecError says
which rule cannot be met. (Rules are type-checked when the spec loads: ``odd.rules``.)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oddsuite.errors import SpecError
from oddsuite.odd.domains import Domain
from oddsuite.odd.rules import broken_rule as _broken
from oddsuite.odd.samplers import SAMPLERS
from oddsuite.odd.spec import OddSpec


@dataclass(frozen=True)
class ObjectParams:
    roi_id: int
    key: str  # the class key in the spec
    category: str  # COCO-style name
    category_id: int  # 1-based, spec order
    distance_m: float
    lateral_m: float
    heading_deg: float
    scale: float
    #: the asset family the sampler fixed (``odd.families.ASSET_FAMILIES``); None: drawn when built
    family: str | None = None
    #: the searched look (``odd.families.LOOKS``): the asset's own draws are seeded by it
    #: alone; None: they come from the scene's asset stream
    look: int | None = None


@dataclass(frozen=True)
class SceneParams:
    """One sample of every dimension, plus the scene's own seed."""

    suite_seed: int
    scene_id: int
    scenery: dict[str, Any]
    environment: dict[str, Any]
    camera: dict[str, Any]
    objects: tuple[ObjectParams, ...]
    counts: dict[str, int] = field(default_factory=dict)
    #: the sensor dimensions, empty when the spec does not mention the sensor (``OddSpec.sensor_given``)
    sensor: dict[str, Any] = field(default_factory=dict)

    def rng(self, stream: str) -> np.random.Generator:
        """An independent Generator for one purpose (placement, weather, …) of this scene."""
        tag = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:8], "little")
        return np.random.default_rng(np.random.SeedSequence([self.suite_seed, self.scene_id, tag]))

    def flat(self) -> dict[str, Any]:
        """Every sampled parameter as ``group.name`` columns (for scenes.parquet)."""
        out: dict[str, Any] = {}
        for g in ("scenery", "environment", "camera"):
            for k, v in getattr(self, g).items():
                out[f"{g}.{k}"] = v
        for k, v in self.counts.items():
            out[f"objects.{k}.count"] = v
        for k, v in self.sensor.items():
            out[f"sensor.{k}"] = v
        return out


def global_dimensions(spec: OddSpec) -> list[tuple[str, Domain]]:
    """(path, domain) of every global dimension, in a fixed order (``OddSpec.dimensions``)."""
    return spec.dimensions()


def broken_rule(spec: OddSpec, values: dict[str, Any]) -> int | None:
    """Index of the first rule the values break, or None."""
    return _broken(spec.rules, values)


def sample_scene(spec: OddSpec, seed: int, scene_id: int) -> SceneParams:
    """The parameters of scene ``scene_id`` of a suite with ``seed``; pure in its inputs."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(scene_id)]))
    sampler = SAMPLERS[spec.sampler](spec, seed)
    dims = sampler.dims
    vals = sampler.first(int(scene_id), rng)
    values = {p: v for (p, _), v in zip(dims, vals)}
    for _ in range(spec.max_placement_tries):
        if broken_rule(spec, values) is None:
            break
        values = {p: d.at(u) for (p, d), u in zip(dims, rng.random(len(dims)))}
    else:
        i = broken_rule(spec, values)
        raise SpecError(
            f"{spec.source_path}: rules.{i}: no sample of the spec's domains satisfies the rules after "
            f"{spec.max_placement_tries} tries (scene {scene_id}); widen a domain or relax the rule"
        )
    groups: dict[str, dict[str, Any]] = {"scenery": {}, "environment": {}, "camera": {}, "sensor": {}}
    counts: dict[str, int] = {}
    for p, v in values.items():
        g, *rest = p.split(".")
        if g == "objects":
            counts[rest[0]] = int(v)
        else:
            groups[g][rest[0]] = v
    groups["camera"]["width"] = spec.camera.width
    groups["camera"]["height"] = spec.camera.height

    objs: list[ObjectParams] = []
    orng = np.random.default_rng(np.random.SeedSequence([int(seed), int(scene_id), 1]))
    names = spec.class_names
    for ci, (key, oc) in enumerate(spec.objects.items()):
        for slot in range(counts[key]):
            u = orng.random(4)  # drawn always: a fixed slot leaves the other objects' draws as they were
            fixed = sampler.placement(int(scene_id), key, slot) or {}
            for j, name in enumerate(("distance_m", "lateral_m", "heading_deg")):
                if name in fixed:
                    u[j] = float(fixed[name])
            objs.append(
                ObjectParams(
                    roi_id=len(objs),
                    key=key,
                    category=names[ci],
                    category_id=ci + 1,
                    distance_m=float(oc.distance_m.at(u[0])),
                    lateral_m=float(oc.lateral_m.at(u[1])),
                    heading_deg=float(oc.heading_deg.at(u[2])),
                    scale=float(1.0 + oc.scale_jitter * (2 * u[3] - 1)),
                    family=fixed.get("family"),
                    look=None if fixed.get("look") is None else int(fixed["look"]),
                )
            )
    return SceneParams(int(seed), int(scene_id), groups["scenery"], groups["environment"], groups["camera"],
                       tuple(objs), counts, groups["sensor"])

"""Environment variant expansion: a scene's sampled environment with a variant's overrides.

What a variant may set, and what a switch is when no variant sets it, comes from the
effect declarations (``odd.effects``): every overridable effect dimension and every switch.
"""
from __future__ import annotations

from typing import Any

from oddsuite.odd import effects
from oddsuite.scenes.scene import Scene


def environment_of(scene: Scene, variant: Any = None) -> dict[str, Any]:
    """The environment in effect: every effect dimension of the scene (sampled environment,
    then those of other sections, e.g. ``road_surface`` from the scenery), the variant's
    overrides, then each switch not overridden at its default (headlights: on at night)."""
    params = scene.params
    env = dict(params.environment)
    for d in effects.dimensions():
        if d.group != "environment":
            env[d.name] = getattr(params, d.group)[d.name]
    unset = effects.switches()
    for s in unset:
        env[s.name] = None
    if variant is not None:
        env.update({k: v for k, v in variant.overrides.items() if k in env})
    for s in unset:
        if env[s.name] is None:
            env[s.name] = s.resolve(env)
    return env

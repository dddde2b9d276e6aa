"""Effect implementations registered against their declarations (``odd.effects``).

An effect acts at one or more of three stages:

- ``scene``: before the render, it sets what the renderer shows (``SceneState``: sun,
  sky, ambient light, headlights, road material, snow cover, shadows). Each engine maps
  the state onto its own scene (the rasterizer's lights and materials, the Cycles
  worker's; ``render.cycles.protocol.environment``); an effect never touches an engine.
- ``image``: after the render, it changes the pixels (``ImageContext``: depth, camera,
  environment, the scene's weather Generator): fog, rain, snow. Every engine's image passes
  through this stage in ``render.post.post_effects``.
- ``sensor``: the camera that records the (weathered, masked) image: defocus, motion
  blur, vignetting, exposure, noise, tone mapping, JPEG. A sensor effect names its
  pipeline ``stage`` (``SENSOR_STAGES``, which also fixes the pixel domain it works in);
  ``render.effects.sensor.apply_sensor`` runs them, in stage order, on every image.

Every declared effect must have an implementation: a declared dimension that nothing
renders would be recorded in scenes.parquet without being rendered, so the passes refuse
to run then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional

import numpy as np

from oddsuite.odd import effects as declared


@dataclass
class SceneState:
    """What the scene-stage effects decide for one render (engine-independent)."""

    sun_to: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))  # towards the sun, world frame
    sun_intensity: float = 0.0
    sun_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    ambient: np.ndarray = field(default_factory=lambda: np.zeros(3))
    sky: np.ndarray = field(default_factory=lambda: np.zeros(3))
    day: float = 0.0  # 0 at night (sun below civil twilight) to 1 in full day (``daylight.day_factor``)
    cloud: float = 0.0  # cloud cover fraction (an engine with a physical sky blends it towards overcast)
    headlights: float = 0.0  # intensity of each low beam
    road: tuple = ((0.22, 0.22, 0.23), 0.0, 0.9)  # base colour, metallic, roughness
    road_state: str = "dry"  # the surface state ``road`` stands for (an engine's own road shading reads it)
    markings_cover: Optional[tuple] = None  # colour covering the lane markings (snow), or None
    terrain_cover: Optional[tuple] = None  # colour covering terrain, sidewalk and kerbs, or None
    shadows: bool = False


@dataclass
class ImageContext:
    """What an image-stage effect may read about the frame it changes."""

    depth: np.ndarray  # HxW metres along the view axis, 0 where nothing
    env: dict[str, Any]
    camera: Any  # scenes.CameraSetup (intrinsics)
    isolate: bool  # no scenery: the ROIs alone on a neutral background
    generator: Optional[np.random.Generator] = None

    @property
    def rng(self) -> np.random.Generator:
        """The scene's weather Generator; an effect that draws random numbers needs one."""
        if self.generator is None:
            raise ValueError("this environment draws random numbers (rain, snow): pass the scene's weather "
                             "Generator, e.g. rng=params.rng('weather:<variant>')")
        return self.generator

    @cached_property
    def light(self) -> float:
        """How bright the scene is (``daylight.light_level``)."""
        from oddsuite.render.effects.daylight import light_level

        return light_level(self.env)


@dataclass
class SensorContext:
    """What a sensor-stage effect may read about the image it changes."""

    env: dict[str, Any]  # the conditions in effect, sensor dimensions included
    intrinsics: np.ndarray  # 3x3 pinhole camera matrix K (pixels)
    generator: Optional[np.random.Generator] = None

    @property
    def rng(self) -> np.random.Generator:
        """The scene's sensor-noise Generator (``render.effects.sensor.noise_generator``)."""
        if self.generator is None:
            raise ValueError("this sensor draws noise (iso > 0): pass the scene's sensor Generator, "
                             "render.effects.sensor.noise_generator(params)")
        return self.generator

    def value(self, name: str) -> Any:
        """The value of sensor dimension ``name`` in effect (its declared default when unset)."""
        if name in self.env:
            return self.env[name]
        return next(d.default for d in declared.dimensions("sensor") if d.name == name)


SceneFn = Callable[[SceneState, dict[str, Any]], None]
ImageFn = Callable[[np.ndarray, ImageContext], np.ndarray]
SensorFn = Callable[[np.ndarray, SensorContext], np.ndarray]

#: the camera pipeline's stages, in the order they run, and the pixels each one takes and
#: gives: ``optics``, ``exposure`` and ``noise`` work on linear radiance (HxWx3 float32,
#: 1.0 = the renderer's white, unbounded above), ``tone`` maps it to display-linear values
#: (clipped to [0, 1] after it), ``encode`` works on the 8-bit display image (HxWx3 uint8)
SENSOR_STAGES = ("optics", "exposure", "noise", "tone", "encode")


@dataclass(frozen=True)
class Implementation:
    effect: declared.Effect
    scene: Optional[SceneFn] = None
    image: Optional[ImageFn] = None
    order: int = 0
    sensor: Optional[SensorFn] = None
    stage: Optional[str] = None


#: implementations by effect name
IMPLEMENTATIONS: dict[str, Implementation] = {}


def implement(effect: declared.Effect, *, scene: Optional[SceneFn] = None, image: Optional[ImageFn] = None,
              order: int = 0, sensor: Optional[SensorFn] = None, stage: Optional[str] = None) -> Implementation:
    """Register how ``effect`` (declared with ``odd.effects.declare``) renders: a ``scene``
    and/or an ``image`` function, or a ``sensor`` function at pipeline ``stage`` (one of
    ``SENSOR_STAGES``); ``order`` sorts effects within a stage. Raises ValueError for an
    undeclared effect or a sensor function without a known stage."""
    if declared.EFFECTS.get(effect.name) is not effect:
        raise ValueError(f"effect {effect.name!r} is not declared; declare it with odd.effects.declare first")
    if (sensor is None) != (stage is None) or (stage is not None and stage not in SENSOR_STAGES):
        raise ValueError(f"effect {effect.name!r}: a sensor function needs a stage, one of {SENSOR_STAGES} "
                         f"(got stage={stage!r})")
    impl = Implementation(effect, scene, image, order, sensor, stage)
    IMPLEMENTATIONS[effect.name] = impl
    return impl


def withdraw(name: str) -> None:
    """Remove effect ``name``: its implementation and its declaration (tests, plugins)."""
    IMPLEMENTATIONS.pop(name, None)
    declared.withdraw(name)


def active() -> list[Implementation]:
    """Every declared effect's implementation, by ``order``. Raises RuntimeError when a
    declared effect has none (its dimensions would be recorded but not rendered)."""
    missing = [n for n in declared.EFFECTS if n not in IMPLEMENTATIONS]
    if missing:
        raise RuntimeError(f"declared effect(s) {missing} have no implementation in render.effects: their "
                           f"dimensions would be recorded but not rendered")
    return sorted((IMPLEMENTATIONS[n] for n in declared.EFFECTS), key=lambda i: i.order)


def scene_pass(env: dict[str, Any]) -> SceneState:
    """The scene state of ``env``: every scene-stage effect, in order."""
    state = SceneState()
    for impl in active():
        if impl.scene is not None:
            impl.scene(state, env)
    return state


def image_pass(rgb: np.ndarray, depth: np.ndarray, env: dict[str, Any], camera: Any,
               rng: Optional[np.random.Generator] = None, isolate: bool = False) -> np.ndarray:
    """Every image-stage effect on a rendered frame, in order (fog, rain, snow, …).
    ``rng``: the scene's weather Generator (needed when an effect draws, e.g. rain)."""
    out = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    ctx = ImageContext(depth, env, camera, isolate, rng)
    for impl in active():
        if impl.image is not None:
            out = impl.image(out, ctx)
    return out

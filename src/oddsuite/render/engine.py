"""Render engines behind one interface: the rasterizer (pyrender) and Cycles (Blender).

An engine turns a ``Scene`` under an environment into a ``Frame``. Whatever the engine,
a frame's labels (depth, instance ids, per-ROI visible and full boxes, visible fractions)
come from the rasterizer's ID pass of the same scene, so they are identical across
engines by construction; only the colour differs. Both engines draw the scene state of
the declared effects (``render.effects.scene_pass``: sun, sky, headlights, road surface,
snow cover, shadows), and every engine's image leaves through ``render.post.post_effects``
(the image stage of the effects: fog by Koschmieder's law on the depth, rain, snow), the
same code for both engines, so a visibility in metres means the same thing whichever
engine drew the image.

``get_engine(render, width, height)`` gives the process-wide engine for a spec's
``render`` block. Each engine keeps ``frames`` and ``seconds`` (colour work, labels
included) and ``describe()`` says what it is, for the suite manifest.
"""
from __future__ import annotations

import time
from typing import Any, Iterable, Optional, Protocol

import numpy as np

from oddsuite.odd.spec import Render
from oddsuite.render.renderer import Frame, ObjectStats, Renderer, get_renderer
from oddsuite.scenes.scene import Scene


class Engine(Protocol):
    """What the suite, the permutations and the figures need of an engine."""

    name: str
    #: whether layer compositing (permute.CompositeRenderer) approximates this engine
    supports_composite: bool
    frames: int
    seconds: float

    def render(self, scene: Scene, env: dict[str, Any], rois: Optional[Iterable[int]] = None,
               scenery: bool = True, rng: Optional[np.random.Generator] = None,
               apply_weather: bool = True) -> Frame: ...

    def stats(self, scene: Scene, ids: np.ndarray, show: set[int]) -> dict[int, ObjectStats]: ...

    def describe(self) -> dict[str, Any]: ...


class RasterEngine:
    """pyrender (OpenGL; EGL offscreen) with 4x MSAA and optional k×k supersampling."""

    name = "raster"
    supports_composite = True

    def __init__(self, width: int, height: int, supersample: int = 1):
        self.renderer: Renderer = get_renderer(width, height)
        self.supersample = int(supersample)
        self.frames, self.seconds = 0, 0.0

    def render(self, scene: Scene, env: dict[str, Any], rois: Optional[Iterable[int]] = None,
               scenery: bool = True, rng: Optional[np.random.Generator] = None,
               apply_weather: bool = True) -> Frame:
        t0 = time.perf_counter()
        f = self.renderer.render(scene, env, rois, scenery, rng, apply_weather, supersample=self.supersample)
        self.frames += 1
        self.seconds += time.perf_counter() - t0
        return f

    def stats(self, scene: Scene, ids: np.ndarray, show: set[int]) -> dict[int, ObjectStats]:
        return self.renderer.stats(scene, ids, show)

    def describe(self) -> dict[str, Any]:
        return {"engine": "raster", "version": _version("pyrender"), "device": gl_device(self.renderer),
                "settings": {"supersample": self.supersample, "msaa": 4}}


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "absent"


def gl_device(renderer: Renderer) -> str:
    """The OpenGL renderer string of a renderer's EGL context (e.g. llvmpipe on a CPU)."""
    try:
        from OpenGL.GL import GL_RENDERER, glGetString

        r = renderer._r
        r._platform.make_current()
        s = glGetString(GL_RENDERER)
        r._platform.make_uncurrent()
        return s.decode() if isinstance(s, bytes) else str(s)
    except Exception:  # noqa: BLE001 - a description only
        return "OpenGL (unknown)"


_ENGINES: dict[tuple, Any] = {}


def get_engine(render: Optional[Render], width: int, height: int) -> Engine:
    """The process-wide engine of a ``render`` block (None: the default) and a resolution."""
    render = render if render is not None else Render()
    key = (render.model_dump_json(), int(width), int(height))
    if key not in _ENGINES:
        if render.engine == "cycles":
            from oddsuite.render.cycles import CyclesEngine

            _ENGINES[key] = CyclesEngine(render, width, height)
        else:
            _ENGINES[key] = RasterEngine(width, height, render.supersample)
    return _ENGINES[key]


__all__ = ["Engine", "RasterEngine", "get_engine", "gl_device"]

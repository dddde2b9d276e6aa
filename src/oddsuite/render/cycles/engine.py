"""The Cycles engine, main-process side: a client of the Blender worker.

``bpy`` (Blender as a Python module) 5.0 is built against NumPy 1.x and cannot share a
process with oddsuite's NumPy 2, so it lives in its own virtualenv and runs as a worker
process, as BlenderProc runs inside Blender's own Python. The Python that has ``bpy`` is
found by ``cycles_python()``: the environment variable ``ODDSUITE_CYCLES_PYTHON``, else
``.venv-cycles/bin/python`` in the repository (``make cycles-venv`` creates it), else in
the working directory. One worker per process and device setting is started on first use
and kept; it loads each scene once and renders its subsets and variants by toggling
visibility and the environment (protocol: ``protocol.py``).

The colour comes from Cycles; the depth, instance ids and per-ROI stats come from the
rasterizer's ID pass of the same Scene. The environment is the scene state of the
declared effects (``render.effects.scene_pass``: the same sun, headlights, road surface,
snow cover and shadows the rasterizer draws), which the worker maps onto Blender, and the
image leaves through the same ``render.post.post_effects`` as the rasterizer's (fog,
rain, snow: a visibility in metres means the same in both engines). The path tracer's
seed derives from (suite seed, scene id) and is the same for every subset and variant of
a scene (common random numbers: subset images differ by the scene, not by the noise).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from PIL import Image

from oddsuite.errors import RenderError
from oddsuite.odd.spec import Render
from oddsuite.render.cycles.protocol import PROTOCOL, environment, write_scene
from oddsuite.render.effects import scene_pass
from oddsuite.render.post import post_effects
from oddsuite.render.renderer import NEUTRAL, Frame, ObjectStats, get_renderer
from oddsuite.scenes.scene import Scene

log = logging.getLogger(__name__)

ENV_PYTHON = "ODDSUITE_CYCLES_PYTHON"
WORKER = Path(__file__).resolve().parent / "blender" / "worker.py"
REPO = Path(__file__).resolve().parents[4]
#: the isolate background, as the rasterizer clears it (8-bit)
NEUTRAL_8BIT = np.round(255 * np.asarray(NEUTRAL)).astype(np.float64)


def cycles_python() -> Optional[Path]:
    """The Python with ``bpy``: $ODDSUITE_CYCLES_PYTHON, REPO/.venv-cycles, ./.venv-cycles."""
    env = os.environ.get(ENV_PYTHON)
    if env:
        return Path(env)
    for base in (REPO, Path.cwd()):
        p = base / ".venv-cycles" / "bin" / "python"
        if p.is_file():
            return p
    return None


def cycles_unavailable() -> Optional[str]:
    """None when a Cycles worker can start here, else why not (for skips and errors)."""
    py = cycles_python()
    if py is None:
        return (f"no Blender Python found: run `make cycles-venv` (creates .venv-cycles with bpy) or set "
                f"{ENV_PYTHON} to a Python that has bpy 5.0")
    if not py.is_file():
        return f"{ENV_PYTHON}={py}: no such file"
    return None


class Worker:
    """One Blender worker process, answering protocol requests one at a time."""

    def __init__(self, python: Path, device: str, threads: int):
        self.dir = Path(tempfile.mkdtemp(prefix="oddsuite-cycles-"))
        self.log_path = self.dir / "worker.log"
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.proc = subprocess.Popen([str(python), "-u", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1, env=env, cwd=self.dir)
        hello = self.call({"op": "hello", "device": device, "threads": int(threads)})
        if hello.get("protocol") != PROTOCOL:
            self.close()
            raise RenderError(f"the Cycles worker speaks {hello.get('protocol')!r}, oddsuite {PROTOCOL!r}")
        self.info = hello
        log.info("Cycles worker: Blender %s on %s, %s threads", hello["blender"], hello["device"], hello["threads"])

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise RenderError(f"the Cycles worker exited with {self.proc.returncode}; its log ends:\n{self._tail()}")
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as e:
            raise RenderError(f"the Cycles worker is gone ({e}); its log ends:\n{self._tail()}") from None
        if not line:
            self.proc.wait(timeout=10)
            raise RenderError(f"the Cycles worker exited with {self.proc.returncode} during {req['op']!r}; "
                              f"its log ends:\n{self._tail()}")
        out = json.loads(line)
        if not out.get("ok"):
            raise RenderError(f"Cycles worker, {req['op']!r}: {out.get('error')}\n{out.get('traceback', '')}")
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_WORKERS: dict[tuple[str, str, int], Worker] = {}


def get_worker(device: str = "auto", threads: int = 0) -> Worker:
    """The process-wide worker of a device setting and thread count (started on first use)."""
    why = cycles_unavailable()
    if why:
        raise RenderError(f"render.engine cycles: {why}")
    key = (str(cycles_python()), device, int(threads))
    w = _WORKERS.get(key)
    if w is None or w.proc.poll() is not None:
        w = _WORKERS[key] = Worker(cycles_python(), device, threads)
    return w


@atexit.register
def _close_workers() -> None:
    for w in _WORKERS.values():
        w.close()
    _WORKERS.clear()


def scene_seed(scene: Scene) -> int:
    """The path tracer's seed of a scene: from (suite seed, scene id), below 2^31."""
    return int(np.random.SeedSequence([scene.params.suite_seed, scene.scene_id, 0xC7C1E5]).generate_state(1)[0]
               & 0x7FFFFFFF)


class CyclesEngine:
    """Cycles path tracing for the colour; the rasterizer's ID pass for the labels."""

    name = "cycles"
    #: compositing layers assumes light adds up per object; under global illumination an
    #: object also lights, reflects in and shades its surroundings: refused (exact only)
    supports_composite = False

    def __init__(self, render: Render, width: int, height: int):
        self.settings = render
        self.width, self.height = int(width), int(height)
        self.labels = get_renderer(width, height)
        self.worker = get_worker(render.device, render.threads)
        self.frames, self.seconds = 0, 0.0
        self._loaded: Any = None

    def _load(self, scene: Scene) -> None:
        key = (scene.params.suite_seed, scene.scene_id, id(scene))
        if key != self._loaded:
            path = self.worker.dir / "scene.npz"
            write_scene(scene, path)
            self.worker.call({"op": "load", "path": str(path)})
            self._loaded = key

    def colour(self, scene: Scene, env: dict[str, Any], rois: Optional[Iterable[int]] = None,
               scenery: bool = True) -> np.ndarray:
        """The clean Cycles image (HxWx3 uint8), isolate renders over the neutral background."""
        self._load(scene)
        out = self.worker.dir / "frame.png"
        self.worker.call({"op": "render", "env": environment(scene_pass(env)),
                          "rois": None if rois is None else sorted(int(r) for r in rois), "scenery": bool(scenery), "samples": self.settings.samples, "denoise": self.settings.denoise,
                          "seed": scene_seed(scene), "out": str(out)})
        with Image.open(out) as im:
            rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        if rgba.shape[:2] != (self.height, self.width):
            raise RenderError(f"the Cycles worker returned {rgba.shape[1]}x{rgba.shape[0]}, "
                              f"expected {self.width}x{self.height}")
        a = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * a + NEUTRAL_8BIT * (1 - a)  # opaque wherever the scenery is shown
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)

    def render(self, scene: Scene, env: dict[str, Any], rois: Optional[Iterable[int]] = None,
               scenery: bool = True, rng: Optional[np.random.Generator] = None,
               apply_weather: bool = True) -> Frame:
        t0 = time.perf_counter()
        rois = None if rois is None else list(rois)
        depth, ids, stats = self.labels.labels(scene, rois, scenery)
        rgb = self.colour(scene, env, rois, scenery)
        if apply_weather:
            rgb = post_effects(rgb, depth, env, scene.camera, rng, isolate=not scenery)
        self.frames += 1
        self.seconds += time.perf_counter() - t0
        return Frame(rgb, depth, ids, stats)

    def stats(self, scene: Scene, ids: np.ndarray, show: set[int]) -> dict[int, ObjectStats]:
        return self.labels.stats(scene, ids, show)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"engine": "cycles", "version": self.worker.info["blender"], "device": self.worker.info["device"],
                "settings": {"samples": s.samples, "denoise": s.denoise, "threads": self.worker.info["threads"],
                             "adaptive_sampling": False, "view_transform": "AgX - Medium High Contrast", "seed": "per scene"}}

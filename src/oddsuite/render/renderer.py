"""Offscreen rendering of a Scene with pyrender (EGL; Mesa llvmpipe on a CPU).

A ``Renderer`` uploads a scene once and then renders any subset of its ROIs under any
environment (the effects of ``render.effects``: sun, clouds, headlights, road surface,
shadows, then ``render.post.post_effects`` on the image: fog, rain, snow), giving a
``Frame``: rgb, depth, per-pixel instance ids and, per visible ROI, its visible box, full
(unoccluded, unclipped) box, visible fraction and truncation. Its ID pass (``labels``) is
the source of every engine's labels. The camera's sensor effects (blur, exposure, noise,
tone curve, JPEG) are not applied here: they run on the finished (masked) image,
``effects.apply_sensor``, called by ``permute.VariantFrames`` for every image alike, whichever
engine rendered it.
"""
from __future__ import annotations

import os
import types
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# pyrender 0.1.45 still uses np.infty, which NumPy 2 removed; restore the alias before import.
if not hasattr(np, "infty"):
    np.infty = np.inf  # type: ignore[attr-defined]
# triton (installed with torch) bundles its own LLVM. Loaded *after* Mesa's llvmpipe has
# loaded libLLVM into the process, its symbols clash and the import segfaults; loaded
# first, both work. Rendering and inference share processes (tests, the demo, Ray
# workers), so load it before any GL context exists.
try:  # noqa: SIM105
    import triton  # noqa: F401,E402
except Exception:  # noqa: BLE001 - absent or broken triton: nothing to protect
    pass
import pyrender  # noqa: E402

from oddsuite.render.effects import SceneState, scene_pass  # noqa: E402
from oddsuite.render.post import post_effects  # noqa: E402
from oddsuite.scenes.assets import SNOW_COVERED  # noqa: E402
from oddsuite.scenes.scene import Scene  # noqa: E402

NEUTRAL = (0.5, 0.5, 0.5)  # background of isolate / fill of cutout

#: headlamp spot lights: inner and outer cone half-angles (rad); their intensity is the
#: headlights effect's (``render.effects.headlights``)
HEADLAMP_CONE = (0.25, 0.6)


def headlamp_poses(camera_pose: np.ndarray) -> list[np.ndarray]:
    """The two headlamps' poses: at (0.5, ±0.7, 0.7) m, aimed where the camera looks."""
    out = []
    for dy in (-0.7, 0.7):
        T = np.eye(4)
        T[:3, :3] = camera_pose[:3, :3]
        T[:3, 3] = [0.5, dy, 0.7]
        out.append(T)
    return out


@dataclass(frozen=True)
class ObjectStats:
    roi_id: int
    visible_px: int
    visible_box: Optional[tuple[float, float, float, float]]  # xywh, None when no pixel is visible
    full_box: tuple[float, float, float, float]  # xywh of the whole object, unclipped
    visible_fraction: float
    truncation: float


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the view axis, 0 where nothing
    ids: np.ndarray  # HxW int32: roi id, -1 for scenery and sky
    objects: dict[int, ObjectStats]




def _focused_light_cam(focus: np.ndarray, half: float):
    """Directional shadow camera around the ROI area, not the whole (400 m) scene."""

    def get(self, scene, light_node, flags):
        light = light_node.light
        pose = scene.get_pose(light_node).copy()
        if isinstance(light, pyrender.DirectionalLight):
            cam = pyrender.OrthographicCamera(xmag=half, ymag=half, znear=0.1, zfar=6 * half)
            pose[:3, 3] = focus + pose[:3, 2] * 3 * half
        else:
            cam = light._get_shadow_camera(scene.scale)
        return np.linalg.inv(pose), cam.get_projection_matrix()

    return get


def _bbox_xywh(mask: np.ndarray) -> Optional[tuple[float, float, float, float]]:
    ys = np.flatnonzero(mask.any(axis=1))
    if len(ys) == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return (float(xs[0]), float(ys[0]), float(xs[-1] + 1 - xs[0]), float(ys[-1] + 1 - ys[0]))


_SHARED: dict[tuple[int, int], "Renderer"] = {}


def get_renderer(width: int, height: int) -> "Renderer":
    """The process-wide renderer of a resolution. EGL contexts are costly and do not like
    being created and destroyed repeatedly in one process: share one per size."""
    key = (int(width), int(height))
    if key not in _SHARED:
        _SHARED[key] = Renderer(*key)
    return _SHARED[key]


class Renderer:
    """Renders scenes of one resolution. Prefer ``get_renderer``: it owns a GL context."""

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self._r = pyrender.OffscreenRenderer(self.width, self.height)
        self._scene_key: Any = None
        self._unocc: dict[int, int] = {}

    def close(self) -> None:
        self._r.delete()

    # -- scene upload
    def _upload(self, scene: Scene) -> None:
        key = (scene.params.suite_seed, scene.scene_id, id(scene))
        if key == self._scene_key:
            return
        ps = pyrender.Scene(bg_color=[0, 0, 0, 1], ambient_light=[0.3, 0.3, 0.3])
        self._road_mats: list[pyrender.MetallicRoughnessMaterial] = []
        self._marking_mats: list[tuple[pyrender.MetallicRoughnessMaterial, tuple]] = []
        self._terrain_mats: list[tuple[pyrender.MetallicRoughnessMaterial, tuple]] = []
        self._scenery_nodes: list[pyrender.Node] = []
        self._object_nodes: dict[int, pyrender.Node] = {}
        for item in scene.scenery:
            node = ps.add(self._mesh(item.asset), pose=item.pose)
            self._scenery_nodes.append(node)
        for obj in scene.objects:
            self._object_nodes[obj.roi_id] = ps.add(self._mesh(obj.asset), pose=obj.pose)
        cam = scene.camera
        self._cam_node = ps.add(pyrender.IntrinsicsCamera(cam.intrinsics[0, 0], cam.intrinsics[1, 1],
                                                          cam.intrinsics[0, 2], cam.intrinsics[1, 2],
                                                          znear=0.1, zfar=1000.0), pose=cam.pose)
        self._sun = pyrender.DirectionalLight(color=[1, 1, 1], intensity=3.0)
        self._sun_node = ps.add(self._sun, pose=np.eye(4))
        self._heads = []
        for T in headlamp_poses(cam.pose):
            light = pyrender.SpotLight(color=[1.0, 0.97, 0.9], intensity=0.0, innerConeAngle=HEADLAMP_CONE[0],
                                       outerConeAngle=HEADLAMP_CONE[1])
            self._heads.append(light)
            ps.add(light, pose=T)
        far = max([o.distance_m for o in scene.objects] + [20.0])
        focus = np.array([far / 2 + 2, 0, 0])
        self._r._renderer._get_light_cam_matrices = types.MethodType(
            _focused_light_cam(focus, max(20.0, far / 2 + 12)), self._r._renderer)
        self._seg_map = {n: 0 for n in self._scenery_nodes}
        for rid, n in self._object_nodes.items():
            self._seg_map[n] = [(rid + 1) % 256, (rid + 1) // 256, 0]
        self._ps, self._scene_key, self._unocc = ps, key, {}

    def _mesh(self, asset) -> pyrender.Mesh:
        prims = []
        for part in asset.parts:  # the road roles follow the surface state (see _apply_env)
            mat = pyrender.MetallicRoughnessMaterial(baseColorFactor=list(part.color), metallicFactor=part.metallic,
                                                     roughnessFactor=part.roughness)
            if part.material == "asphalt":
                self._road_mats.append(mat)
            elif part.material == "lane_paint":
                self._marking_mats.append((mat, part.color))
            elif part.material in SNOW_COVERED:
                self._terrain_mats.append((mat, part.color))
            m = part.mesh  # flat shading: one normal per face
            prims.append(pyrender.Primitive(positions=m.vertices[m.faces].reshape(-1, 3).astype(np.float32),
                                            normals=np.repeat(m.face_normals, 3, axis=0).astype(np.float32),
                                            material=mat, mode=pyrender.constants.GLTF.TRIANGLES))
        return pyrender.Mesh(primitives=prims)

    # -- environment
    def _apply_env(self, env: dict[str, Any], isolate: bool) -> SceneState:
        """Map the scene-stage effects' state of ``env`` onto the pyrender scene."""
        state = scene_pass(env)
        z = state.sun_to / np.linalg.norm(state.sun_to)
        x = np.cross([0, 0, 1.0], z)
        x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0, 0])
        T = np.eye(4)
        T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
        self._ps.set_pose(self._sun_node, T)
        self._sun.intensity = state.sun_intensity
        self._sun.color = state.sun_color
        self._ps.ambient_light = state.ambient
        for h in self._heads:
            h.intensity = state.headlights
        self._ps.bg_color = np.array([*(NEUTRAL if isolate else state.sky), 1.0])
        col, met, rough = state.road
        for m in self._road_mats:
            m.baseColorFactor = np.array([*col, 1.0])
            m.metallicFactor, m.roughnessFactor = met, rough
        for m, c in self._marking_mats:
            m.baseColorFactor = np.array([*state.markings_cover, 1.0]) if state.markings_cover else np.array(c)
        for m, c in self._terrain_mats:
            m.baseColorFactor = np.array([*state.terrain_cover, 1.0]) if state.terrain_cover else np.array(c)
        return state

    def _visible(self, rois: Optional[Iterable[int]], scenery: bool) -> set[int]:
        show = set(self._object_nodes) if rois is None else set(rois)
        for rid, n in self._object_nodes.items():
            n.mesh.is_visible = rid in show
        for n in self._scenery_nodes:
            n.mesh.is_visible = scenery
        return show

    def _unoccluded_px(self, rid: int) -> int:
        """Pixels of ROI ``rid`` rendered alone (cached per scene: it depends on geometry only)."""
        if rid not in self._unocc:
            for r2, n in self._object_nodes.items():
                n.mesh.is_visible = r2 == rid
            for n in self._scenery_nodes:
                n.mesh.is_visible = False
            # SEG, like the visible count: no multisampling, so edge pixels are counted alike
            seg, _ = self._r.render(self._ps, flags=pyrender.RenderFlags.SEG, seg_node_map=self._seg_map)
            self._unocc[rid] = int(seg[..., :2].any(-1).sum())
        return self._unocc[rid]

    def _colour(self, flags: int, k: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The colour pass (4x MSAA in pyrender); with ``k`` > 1 rendered at k·W × k·H with
        the intrinsics scaled by k and box-filtered back in linear light (sRGB decoded with
        gamma 2.2, pyrender's own encoding). The depth of a supersampled pass is not returned."""
        if k == 1:
            return self._r.render(self._ps, flags=flags)
        cam = self._cam_node.camera
        saved = (cam.fx, cam.fy, cam.cx, cam.cy)
        cam.fx, cam.fy, cam.cx, cam.cy = (v * k for v in saved)
        self._r.viewport_width, self._r.viewport_height = self.width * k, self.height * k
        try:
            color, _ = self._r.render(self._ps, flags=flags)
        finally:
            cam.fx, cam.fy, cam.cx, cam.cy = saved
            self._r.viewport_width, self._r.viewport_height = self.width, self.height
        lin = (color[..., :3].astype(np.float64) / 255.0) ** 2.2
        lin = lin.reshape(self.height, k, self.width, k, 3).mean(axis=(1, 3))
        return np.round(255.0 * lin ** (1 / 2.2)).astype(np.uint8), None

    def _ids(self) -> tuple[np.ndarray, np.ndarray]:
        """The instance-id pass (no multisampling): ids (roi id, -1 elsewhere) and its depth."""
        seg, depth = self._r.render(self._ps, flags=pyrender.RenderFlags.SEG, seg_node_map=self._seg_map)
        return seg[..., 0].astype(np.int32) + 256 * seg[..., 1].astype(np.int32) - 1, depth

    def _check(self, scene: Scene) -> None:
        if (scene.camera.width, scene.camera.height) != (self.width, self.height):
            raise ValueError(f"renderer is {self.width}x{self.height}, scene camera is "
                             f"{scene.camera.width}x{scene.camera.height}")

    def labels(self, scene: Scene, rois: Optional[Iterable[int]] = None,
               scenery: bool = True) -> tuple[np.ndarray, np.ndarray, dict[int, ObjectStats]]:
        """The labels of an image without its colour: depth (HxW float32 m), ids (HxW int32)
        and per-ROI stats, from the ID pass. Every engine's labels come from here (or from
        ``render``, whose ids and stats are the same pass), so they agree by construction."""
        self._check(scene)
        self._upload(scene)
        show = self._visible(rois, scenery)
        ids, depth = self._ids()
        stats = self.stats(scene, ids, show)
        self._visible(None, True)
        return depth.astype(np.float32), ids, stats

    # -- the main entry
    def render(self, scene: Scene, env: dict[str, Any], rois: Optional[Iterable[int]] = None,
               scenery: bool = True, rng: Optional[np.random.Generator] = None, apply_weather: bool = True,
               supersample: int = 1) -> Frame:
        """Render ``scene`` with only ``rois`` present (all when None); without scenery for isolate.
        ``rng``: the scene's weather Generator (``params.rng('weather:<variant>')``), needed when
        an image effect draws (rain, snow). ``apply_weather=False`` returns the clean render
        (``post_effects`` not yet applied). ``supersample`` k renders the colour at k×k the
        resolution and averages (labels and depth stay at the native resolution)."""
        self._check(scene)
        self._upload(scene)
        show = self._visible(rois, scenery)
        state = self._apply_env(env, isolate=not scenery)
        flags = pyrender.RenderFlags.NONE
        if state.shadows and scenery:
            flags |= pyrender.RenderFlags.SHADOWS_DIRECTIONAL
        color, depth = self._colour(flags, int(supersample))
        ids, id_depth = self._ids()
        depth = id_depth if depth is None else depth
        rgb = np.ascontiguousarray(color[..., :3])
        if apply_weather:
            rgb = post_effects(rgb, depth, env, scene.camera, rng, isolate=not scenery)
        stats = self.stats(scene, ids, show)
        self._visible(None, True)
        return Frame(rgb, depth.astype(np.float32), ids, stats)

    def stats(self, scene: Scene, ids: np.ndarray, show: set[int]) -> dict[int, ObjectStats]:
        """Per ROI in ``show``: visible box and pixels from ``ids``, full box, visible fraction, truncation."""
        self._upload(scene)
        out: dict[int, ObjectStats] = {}
        H, W = ids.shape
        for obj in scene.objects:
            if obj.roi_id not in show:
                continue
            mask = ids == obj.roi_id
            vis = int(mask.sum())
            uv, _ = scene.camera.project(obj.world_vertices())
            x0, y0 = uv.min(0)
            x1, y1 = uv.max(0)
            full = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            area = max((x1 - x0) * (y1 - y0), 1e-9)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            inside = max(cx1 - cx0, 0) * max(cy1 - cy0, 0)
            trunc = float(np.clip(1 - inside / area, 0, 1))
            unocc = self._unoccluded_px(obj.roi_id) if vis else 0
            whole = unocc / max(1 - trunc, 1e-6) if unocc else 0.0
            vf = float(np.clip(vis / whole, 0, 1)) if whole > 0 else 0.0
            out[obj.roi_id] = ObjectStats(obj.roi_id, vis, _bbox_xywh(mask), full, vf, trunc)
        return out

"""The Scene value, built only from an OddSpec's domains and one SceneParams.

World frame: x forward along the road, y to the left, z up; the camera stands at
(0, 0, height) looking along +x. Objects are placed on the ground with pybullet: each is
a convex collision shape; an object that touches another object or a scenery item (or
stands too close to the camera) is re-drawn from its class's domains with the scene's
placement Generator, up to ``max_placement_tries`` times, then a SpecError says which
class could not be placed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh

from oddsuite.errors import SpecError
from oddsuite.odd.sampling import SceneParams
from oddsuite.odd.spec import OddSpec
from oddsuite.scenes import assets as A
from oddsuite.scenes._pybullet import pb  # pybullet, imported without its build-time banner

#: objects must keep this gap (m) to everything else
CLEARANCE_M = 0.05
#: and stand at least this far ahead of the camera (m)
MIN_AHEAD_M = 2.0


def pose(x: float, y: float, z: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    T = trimesh.transformations.rotation_matrix(math.radians(yaw_deg), [0, 0, 1])
    T[:3, 3] = [x, y, z]
    return T


@dataclass(frozen=True)
class Placed:
    asset: A.Asset
    pose: np.ndarray
    collides: bool = True  # scenery that ROIs must not interpenetrate


@dataclass(frozen=True)
class SceneObject:
    """A region of interest: one object of a spec class, placed."""

    roi_id: int
    key: str
    category: str
    category_id: int
    asset: A.Asset
    pose: np.ndarray
    distance_m: float
    lateral_m: float
    heading_deg: float
    scale: float
    tries: int  # placements drawn before this one fitted

    def world_vertices(self) -> np.ndarray:
        v = np.concatenate([p.mesh.vertices for p in self.asset.parts])
        return v @ self.pose[:3, :3].T + self.pose[:3, 3]


@dataclass(frozen=True)
class CameraSetup:
    pose: np.ndarray  # camera-to-world, pyrender convention (looks along -z, y up)
    yfov: float  # radians
    width: int
    height: int

    @property
    def intrinsics(self) -> np.ndarray:
        f = 0.5 * self.height / math.tan(self.yfov / 2)
        return np.array([[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1.0]])

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points → pixel (u, v) and depth along the view axis."""
        Tinv = np.linalg.inv(self.pose)
        pc = pts @ Tinv[:3, :3].T + Tinv[:3, 3]
        z = -pc[:, 2]
        K = self.intrinsics
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K[0, 0] * pc[:, 0] / z + K[0, 2]
            v = -K[1, 1] * pc[:, 1] / z + K[1, 2]
        return np.stack([u, v], 1), z


@dataclass(frozen=True)
class Scene:
    params: SceneParams
    objects: tuple[SceneObject, ...]
    scenery: tuple[Placed, ...]
    camera: CameraSetup
    road_half_width_m: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def scene_id(self) -> int:
        return self.params.scene_id


def make_camera(cam: dict[str, Any]) -> CameraSetup:
    R0 = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=float)  # cols: cam x,y,z in world
    a = math.radians(cam["pitch_deg"])
    Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    T = np.eye(4)
    T[:3, :3] = R0 @ Rx
    T[:3, 3] = [0, 0, cam["height_m"]]
    width, height = int(cam["width"]), int(cam["height"])
    hfov = math.radians(cam["fov_deg"])
    yfov = 2 * math.atan(math.tan(hfov / 2) * height / width)
    return CameraSetup(T, yfov, width, height)


# ----------------------------------------------------------------------------- scenery

def _ground(road_half: float, road_type: str, rng: np.random.Generator) -> list[Placed]:
    L0, L1 = -10.0, 400.0
    L, cx = L1 - L0, (L1 + L0) / 2
    out: list[Placed] = []
    terrain_col = (0.5, 0.5, 0.48, 1) if road_type == "urban" else (0.25, 0.4, 0.18, 1)
    out.append(Placed(A.Asset("ground/terrain", (A.Part(A._box([L, 800, 0.1], [0, 0, -0.06]), terrain_col, 0, 0.95, "ground"),)),
                      pose(cx, 0), collides=False))
    out.append(Placed(A.Asset("ground/road", (A.Part(A._box([L, 2 * road_half, 0.1], [0, 0, -0.05]), (0.22, 0.22, 0.23, 1), 0, 0.9, "asphalt"),)),
                      pose(cx, 0), collides=False))
    return out


def _markings(lanes: int, lane_w: float, road_half: float, road_type: str) -> list[Placed]:
    out: list[Placed] = []
    white, yellow = (0.92, 0.92, 0.9, 1), (0.9, 0.75, 0.1, 1)
    L0, L1 = -10.0, 400.0
    for sy in (-1, 1):  # solid edge lines
        out.append(Placed(A.Asset("ground/marking", (A.Part(A._box([L1 - L0, 0.15, 0.01], [0, 0, 0.005]), white, 0, 0.6, "lane_paint"),)),
                          pose((L0 + L1) / 2, sy * (road_half - 0.3)), collides=False))
    for i in range(1, lanes):
        y = -road_half + i * lane_w
        centre = (i == lanes // 2) and road_type != "highway"
        if centre:
            out.append(Placed(A.Asset("ground/marking", (A.Part(A._box([L1 - L0, 0.14, 0.01], [0, 0, 0.005]), yellow, 0, 0.6, "lane_paint"),)),
                              pose((L0 + L1) / 2, y), collides=False))
        else:
            dashes = [A._box([3.0, 0.13, 0.01], [x, 0, 0.005]) for x in np.arange(L0, L1, 9.0)]
            out.append(Placed(A.Asset("ground/marking", (A.Part(trimesh.util.concatenate(dashes), white, 0, 0.6, "lane_paint"),)),
                              pose(0, y), collides=False))
    return out


def _scenery(sc: dict[str, Any], rng: np.random.Generator) -> tuple[list[Placed], float]:
    """Ground, markings and roadside items. ``clutter`` divides the gaps between buildings,
    poles and trees as it is (0: none at all); the value recorded is the value rendered."""
    lanes, lane_w, road_type = int(sc["lanes"]), float(sc["lane_width_m"]), sc["road_type"]
    clutter = float(sc["clutter"])
    road_half = lanes * lane_w / 2
    items = _ground(road_half, road_type, rng) + _markings(lanes, lane_w, road_half, road_type)
    if road_type == "urban":
        for sy in (-1, 1):
            kerb = A.Asset("ground/kerb", (A.Part(A._box([410, 0.25, 0.14], [0, 0, 0.07]), (0.62, 0.62, 0.6, 1), 0, 0.9, "kerb"),))
            items.append(Placed(kerb, pose(195, sy * (road_half + 0.12)), collides=False))
            walk = A.Asset("ground/sidewalk", (A.Part(A._box([410, 3.0, 0.1], [0, 0, -0.045]), (0.58, 0.57, 0.55, 1), 0, 0.95, "pavement"),))
            items.append(Placed(walk, pose(195, sy * (road_half + 1.75)), collides=False))
            x = -8.0 + float(rng.uniform(0, 6))
            while clutter > 0 and x < 160:
                w, d, h = float(rng.uniform(8, 22)), float(rng.uniform(8, 14)), float(rng.uniform(6, 24))
                b = A.building(rng, d, w, h)
                # face the road: the asset's +y face has the windows
                yaw = 0.0 if sy < 0 else 180.0
                items.append(Placed(b, pose(x + w / 2, sy * (road_half + 3.5 + d / 2), 0, yaw)))
                x += w + float(rng.uniform(0.5, 6.0)) / clutter
            xp = float(rng.uniform(3, 15))
            while clutter > 0 and xp < 150:
                items.append(Placed(A.pole(rng), pose(xp, sy * (road_half + 0.7), 0, -90.0 * sy)))
                xp += float(rng.uniform(20, 35)) / clutter
    else:
        for sy in (-1, 1):
            if road_type == "highway":
                items.append(Placed(A.guard_rail(400), pose(190, sy * (road_half + 1.2)), collides=True))
            xt = float(rng.uniform(0, 10))
            while clutter > 0 and xt < 200:
                items.append(Placed(A.tree(rng), pose(xt, sy * (road_half + float(rng.uniform(3, 14))))))
                xt += float(rng.uniform(6, 20)) / clutter
            if road_type == "rural":
                xp = float(rng.uniform(5, 30))
                while clutter > 0 and xp < 200:
                    items.append(Placed(A.pole(rng), pose(xp, sy * (road_half + 1.5), 0, -90.0 * sy)))
                    xp += float(rng.uniform(35, 60)) / clutter
    return items, road_half


# ----------------------------------------------------------------------------- placement

class _Physics:
    """A pybullet DIRECT world used for collision queries only."""

    def __init__(self) -> None:
        self.cid = pb.connect(pb.DIRECT)

    def add(self, verts: np.ndarray, T: np.ndarray) -> int:
        col = pb.createCollisionShape(pb.GEOM_MESH, vertices=verts.tolist(), physicsClientId=self.cid)
        q = trimesh.transformations.quaternion_from_matrix(T)  # w x y z
        return pb.createMultiBody(0, col, basePosition=T[:3, 3].tolist(),
                                  baseOrientation=[q[1], q[2], q[3], q[0]], physicsClientId=self.cid)

    def touches(self, body: int, others: list[int]) -> bool:
        for o in others:
            if pb.getClosestPoints(body, o, distance=CLEARANCE_M, physicsClientId=self.cid):
                return True
        return False

    def remove(self, body: int) -> None:
        pb.removeBody(body, physicsClientId=self.cid)

    def close(self) -> None:
        pb.disconnect(self.cid)


def build_scene(spec: OddSpec, params: SceneParams) -> Scene:
    """Compose the scene of ``params``: scenery, then ROIs placed without interpenetration."""
    srng = params.rng("scenery")
    arng = params.rng("assets")
    prng = params.rng("placement")
    scenery, road_half = _scenery(params.scenery, srng)
    phys = _Physics()
    try:
        static = [phys.add(p.asset.hull_vertices(), p.pose) for p in scenery if p.collides]
        placed_ids: list[int] = []
        objects: list[SceneObject] = []
        for op in params.objects:
            oc = spec.objects[op.key]
            rng = arng if op.look is None else A.look_rng(op.look)  # a searched look: its own draws
            asset = A.object_asset(op.key, rng, spec.mesh_path(op.key), oc.size_m, oc.units,
                                   family=op.family).scaled(op.scale)
            hull = asset.hull_vertices()
            radius = float(np.max(np.linalg.norm(hull[:, :2], axis=1)))
            x, y = op.distance_m, op.lateral_m
            for attempt in range(spec.max_placement_tries):
                if attempt:
                    x, y = float(oc.distance_m.at(prng.random())), float(oc.lateral_m.at(prng.random()))
                T = pose(x, y, 0.0, op.heading_deg)
                if x - radius < MIN_AHEAD_M:
                    continue
                body = phys.add(hull, T)
                if phys.touches(body, static + placed_ids):
                    phys.remove(body)
                    continue
                placed_ids.append(body)
                objects.append(SceneObject(op.roi_id, op.key, op.category, op.category_id, asset, T, x, y,
                                           op.heading_deg, op.scale, attempt + 1))
                break
            else:
                raise SpecError(
                    f"{spec.source_path}: objects.{op.key}: could not place object {op.roi_id} of scene "
                    f"{params.scene_id} without touching another object or the scenery in "
                    f"{spec.max_placement_tries} tries; widen distance_m / lateral_m or lower count"
                )
    finally:
        phys.close()
    return Scene(params, tuple(objects), tuple(scenery), make_camera(params.camera), road_half)

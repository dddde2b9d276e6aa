"""Object and scenery assets: trimesh primitives composed into recognisable shapes, meshes
that ``pybullet_data`` ships, and user meshes (OBJ/GLB/STL) named in the spec.

An ``Asset`` is a list of coloured parts in the object's own frame: x forward (its
heading), y left, z up, resting on z = 0. Every random choice (variant, colours) comes
from the Generator handed in, so the same generator state gives the same asset.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import trimesh

import pybullet_data


#: material roles a Part may carry, and what each engine makes of it. The rasterizer shades
#: every role as a metallic-roughness material from the part's own parameters (the road
#: roles also follow the road surface state); Cycles builds a procedural node tree per role
#: (render/cycles/blender/shading.py) seeded by the same parameters.
MATERIALS = {
    "generic": "plain surface from the part's colour, metallic and roughness",
    "car_paint": "car paint: base coat under a clear coat (metallic flakes when metallic > 0.3)",
    "paint": "painted metal without a clear coat (bicycle frames, truck cabs)",
    "glass": "dark reflective glazing (car windows)",
    "tyre": "rubber tyre",
    "rim": "metal wheel rim",
    "trim": "black plastic (bumpers, grilles, mirrors)",
    "lamp_front": "headlamp lens (emits at night when headlights are on)",
    "lamp_rear": "tail-lamp lens (emits at night when headlights are on)",
    "plate": "number plate",
    "skin": "human skin (subsurface scattering)",
    "cloth": "fabric (sheen)",
    "hair": "hair",
    "leather": "shoes, bags, saddles",
    "metal": "bare or galvanised metal (poles, rails, spokes)",
    "sign_face": "retroreflective sign sheeting",
    "asphalt": "road asphalt with wear; wet roads become a rough mirror with puddles",
    "lane_paint": "worn road marking paint",
    "ground": "terrain beside the road (grass or gravel by its colour)",
    "pavement": "concrete slabs of sidewalks",
    "kerb": "concrete kerb stones",
    "facade": "building wall (plaster or brick by its colour)",
    "window": "building window glass (some lit at night)",
    "bark": "tree bark",
    "foliage": "tree crown",
}

#: roles that snow covers (rasterizer and Cycles alike)
SNOW_COVERED = ("ground", "pavement", "kerb")


@dataclass(frozen=True)
class Part:
    """One coloured mesh of an asset. ``material`` is its role (one of ``MATERIALS``): what
    the surface is made of, read by every render engine (Kubric's material-on-asset); the
    colour, metallic and roughness are its base parameters in both engines."""

    mesh: trimesh.Trimesh
    color: tuple[float, float, float, float]
    metallic: float = 0.0
    roughness: float = 0.8
    material: str = "generic"


@dataclass(frozen=True)
class Asset:
    name: str  # e.g. "car/sedan"
    parts: tuple[Part, ...]

    @property
    def bounds(self) -> np.ndarray:
        return np.array(trimesh.util.concatenate([p.mesh for p in self.parts]).bounds)

    def hull_vertices(self) -> np.ndarray:
        """Convex hull of all parts (for collision checks)."""
        return np.asarray(trimesh.util.concatenate([p.mesh for p in self.parts]).convex_hull.vertices)

    def scaled(self, s: float) -> "Asset":
        return Asset(self.name, tuple(Part(p.mesh.copy().apply_scale(s), p.color, p.metallic, p.roughness,
                                           p.material) for p in self.parts))


def _box(ext, center) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=ext, transform=trimesh.transformations.translation_matrix(center))


def _cyl(r, h, center, axis="z", sections=24) -> trimesh.Trimesh:
    m = trimesh.creation.cylinder(radius=r, height=h, sections=sections)
    if axis == "y":
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    elif axis == "x":
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    m.apply_translation(center)
    return m


def _seg(p0, p1, r) -> trimesh.Trimesh:
    """A cylinder from point p0 to p1."""
    return trimesh.creation.cylinder(radius=r, segment=[p0, p1], sections=12)


def _sphere(r, center) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=2, radius=r)
    m.apply_translation(center)
    return m


CAR_PAINTS = [(0.75, 0.05, 0.05), (0.9, 0.9, 0.92), (0.08, 0.08, 0.1), (0.1, 0.2, 0.6), (0.55, 0.57, 0.6),
              (0.15, 0.4, 0.2), (0.85, 0.6, 0.1), (0.35, 0.2, 0.12), (0.3, 0.55, 0.8)]
CLOTHES = [(0.1, 0.1, 0.12), (0.2, 0.25, 0.5), (0.6, 0.1, 0.1), (0.85, 0.85, 0.8), (0.3, 0.45, 0.25),
           (0.75, 0.55, 0.2), (0.45, 0.3, 0.5), (0.55, 0.55, 0.55)]
SKIN = [(0.95, 0.8, 0.68), (0.8, 0.6, 0.45), (0.55, 0.38, 0.26), (0.35, 0.24, 0.16)]


def _rgba(c, a=1.0):
    return (float(c[0]), float(c[1]), float(c[2]), a)


def _jit(rng, c, amount=0.06):
    return tuple(float(np.clip(x + rng.uniform(-amount, amount), 0, 1)) for x in c)


def car(rng: np.random.Generator) -> Asset:
    kind = ["sedan", "hatchback", "suv"][int(rng.integers(3))]
    L, W = {"sedan": (4.5, 1.8), "hatchback": (4.0, 1.75), "suv": (4.7, 1.9)}[kind]
    body_h = {"sedan": 0.65, "hatchback": 0.7, "suv": 0.85}[kind]
    cab_h = {"sedan": 0.5, "hatchback": 0.55, "suv": 0.65}[kind]
    cab_l = {"sedan": 2.3, "hatchback": 2.3, "suv": 3.0}[kind]
    cab_x = {"sedan": -0.2, "hatchback": -0.45, "suv": -0.35}[kind]
    r = 0.33 if kind != "suv" else 0.38
    clear = r * 0.75
    paint = _rgba(_jit(rng, CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))]))
    glass = (0.05, 0.07, 0.1, 1.0)
    parts = [
        Part(_box([L, W, body_h], [0, 0, clear + body_h / 2]), paint, metallic=0.3, roughness=0.4),
        Part(_box([cab_l, W * 0.9, cab_h], [cab_x, 0, clear + body_h + cab_h / 2]), glass, metallic=0.1, roughness=0.15),
        Part(_box([cab_l * 0.7, W * 0.92, cab_h * 0.18], [cab_x, 0, clear + body_h + cab_h * 0.91]), paint, 0.3, 0.4),
        Part(_box([0.05, W * 0.8, 0.12], [L / 2 + 0.01, 0, clear + body_h * 0.55]), (0.9, 0.9, 0.85, 1), 0.0, 0.3),
        Part(_box([0.05, W * 0.8, 0.1], [-L / 2 - 0.01, 0, clear + body_h * 0.6]), (0.7, 0.05, 0.05, 1), 0.0, 0.3),
    ]
    for sx in (1, -1):
        for sy in (1, -1):
            parts.append(Part(_cyl(r, 0.24, [sx * L * 0.32, sy * (W / 2 - 0.1), r], axis="y"), (0.04, 0.04, 0.04, 1)))
    return Asset(f"car/{kind}", tuple(parts))


def truck(rng: np.random.Generator) -> Asset:
    paint = _rgba(_jit(rng, CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))]))
    cargo = _rgba(_jit(rng, [(0.9, 0.9, 0.9), (0.6, 0.6, 0.65), (0.2, 0.3, 0.5)][int(rng.integers(3))]))
    r = 0.5
    parts = [
        Part(_box([2.0, 2.4, 2.2], [3.0, 0, r + 0.3 + 1.1]), paint, 0.3, 0.4),
        Part(_box([0.1, 2.0, 0.9], [4.0, 0, r + 0.3 + 1.6]), (0.05, 0.07, 0.1, 1), 0.1, 0.15),
        Part(_box([6.0, 2.5, 2.8], [-1.2, 0, r + 0.4 + 1.4]), cargo, 0.1, 0.6),
        Part(_box([8.2, 1.0, 0.3], [0.0, 0, r + 0.15]), (0.1, 0.1, 0.1, 1)),
    ]
    for x in (3.0, -2.0, -3.3):
        for sy in (1, -1):
            parts.append(Part(_cyl(r, 0.35, [x, sy * 1.05, r], axis="y"), (0.04, 0.04, 0.04, 1)))
    return Asset("truck/box", tuple(parts))


def person(rng: np.random.Generator) -> Asset:
    h = float(rng.uniform(1.55, 1.9))
    s = h / 1.75
    top = _rgba(_jit(rng, CLOTHES[int(rng.integers(len(CLOTHES)))]))
    legs = _rgba(_jit(rng, CLOTHES[int(rng.integers(len(CLOTHES)))]))
    skin = _rgba(SKIN[int(rng.integers(len(SKIN)))])
    stride = float(rng.uniform(-0.25, 0.25))  # walking pose
    hip = 0.88 * s
    parts = [
        Part(_seg([stride * s, 0.1 * s, 0.04], [0, 0.1 * s, hip], 0.075 * s), legs),
        Part(_seg([-stride * s, -0.1 * s, 0.04], [0, -0.1 * s, hip], 0.075 * s), legs),
        Part(_box([0.25 * s, 0.42 * s, 0.6 * s], [0, 0, hip + 0.3 * s]), top),
        Part(_seg([0, 0.25 * s, hip + 0.56 * s], [-stride * 0.8 * s, 0.27 * s, hip + 0.02 * s], 0.05 * s), top),
        Part(_seg([0, -0.25 * s, hip + 0.56 * s], [stride * 0.8 * s, -0.27 * s, hip + 0.02 * s], 0.05 * s), top),
        Part(_seg([0, 0, hip + 0.6 * s], [0, 0, hip + 0.68 * s], 0.05 * s), skin),
        Part(_sphere(0.11 * s, [0, 0, h - 0.11 * s]), skin),
        Part(_box([0.26 * s, 0.1 * s, 0.05 * s], [0.06 * s, 0.1 * s, 0.025]), (0.05, 0.05, 0.05, 1)),
        Part(_box([0.26 * s, 0.1 * s, 0.05 * s], [0.06 * s, -0.1 * s, 0.025]), (0.05, 0.05, 0.05, 1)),
    ]
    return Asset("person/walking", tuple(parts))


def bicycle(rng: np.random.Generator) -> Asset:
    frame = _rgba(_jit(rng, CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))]))
    black = (0.03, 0.03, 0.03, 1.0)
    r = 0.34
    wb = 1.05
    rear, front = np.array([-wb / 2, 0, r]), np.array([wb / 2, 0, r])
    crank = np.array([-0.05, 0, 0.3])
    seat = np.array([-0.22, 0, 0.9])
    head = np.array([0.38, 0, 0.88])
    parts = []
    for c in (rear, front):
        t = trimesh.creation.torus(major_radius=r - 0.02, minor_radius=0.025, major_sections=32, minor_sections=8)
        t.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
        t.apply_translation(c)
        parts.append(Part(t, black))
        for a in range(3):  # spokes
            ang = a * np.pi / 3
            d = np.array([np.cos(ang), 0, np.sin(ang)]) * (r - 0.03)
            parts.append(Part(_seg(c - d, c + d, 0.006), (0.7, 0.7, 0.7, 1), 0.8, 0.3))
    for p0, p1 in ((rear, crank), (crank, seat), (seat, rear), (crank, head), (seat + [0.02, 0, -0.05], head),
                   (head, front)):
        parts.append(Part(_seg(p0, p1, 0.022), frame, 0.5, 0.4))
    parts.append(Part(_seg(head, head + [-0.05, 0, 0.15], 0.02), frame, 0.5, 0.4))
    parts.append(Part(_seg(head + [-0.05, -0.25, 0.15], head + [-0.05, 0.25, 0.15], 0.015), black))
    parts.append(Part(_box([0.26, 0.12, 0.05], seat + [0, 0, 0.04]), black))
    return Asset("bicycle/city", tuple(parts))


def stop_sign(rng: np.random.Generator) -> Asset:
    rad = 0.38
    pole_h = float(rng.uniform(1.9, 2.3))
    face = trimesh.creation.cylinder(radius=rad, height=0.03, sections=8)
    face.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    face.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 8, [1, 0, 0]))
    face.apply_translation([0.03, 0, pole_h + rad])
    border = trimesh.creation.cylinder(radius=rad * 1.08, height=0.02, sections=8)
    border.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    border.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 8, [1, 0, 0]))
    border.apply_translation([0.015, 0, pole_h + rad])
    band = _box([0.02, rad * 1.1, rad * 0.28], [0.05, 0, pole_h + rad])  # white legend band
    parts = (
        Part(_cyl(0.035, pole_h + rad, [0, 0, (pole_h + rad) / 2]), (0.6, 0.6, 0.62, 1), 0.8, 0.3),
        Part(border, (0.95, 0.95, 0.95, 1), 0.0, 0.5),
        Part(face, (0.75, 0.03, 0.03, 1), 0.0, 0.45),
        Part(band, (0.95, 0.95, 0.95, 1), 0.0, 0.5),
    )
    return Asset("stop sign/octagon", parts)


@lru_cache(maxsize=None)
def _pybullet_cone() -> trimesh.Trimesh:
    m = trimesh.load(Path(pybullet_data.getDataPath()) / "racecar" / "meshes" / "cone.obj", force="mesh")
    m.apply_translation([0, 0, -m.bounds[0][2]])
    return m


def traffic_cone(rng: np.random.Generator) -> Asset:
    """The cone mesh that pybullet_data ships (racecar/meshes/cone.obj), scaled to a road cone."""
    h = float(rng.uniform(0.5, 0.75))
    m = _pybullet_cone().copy()
    m.apply_scale(h / m.extents[2])
    base = _box([h * 0.65, h * 0.65, 0.04], [0, 0, 0.02])
    band = _cyl(h * 0.25, h * 0.12, [0, 0, h * 0.55])
    return Asset("traffic cone/pybullet", (Part(m, (0.95, 0.35, 0.02, 1), 0, 0.6),
                                           Part(band, (0.95, 0.95, 0.95, 1), 0, 0.5),
                                           Part(base, (0.1, 0.1, 0.1, 1))))


@lru_cache(maxsize=32)
def _user_mesh(path: str) -> trimesh.Trimesh:
    m = trimesh.load(path, force="mesh")
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise ValueError(f"{path}: no triangles found")
    return m


def user_mesh(path: Path, size_m: float, rng: np.random.Generator) -> Asset:
    """A user mesh: y-up files (GLB/GLTF) are turned z-up; longest extent scaled to size_m; on z = 0."""
    m = _user_mesh(str(path)).copy()
    if path.suffix.lower() in (".glb", ".gltf"):
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    m.apply_scale(size_m / float(max(m.extents)))
    c = m.bounds.mean(axis=0)
    m.apply_translation([-c[0], -c[1], -m.bounds[0][2]])
    color = _rgba(_jit(rng, (0.6, 0.6, 0.6), 0.3))
    return Asset(f"user/{path.name}", (Part(m, color, 0.1, 0.6),))


BUILDERS = {"car": car, "truck": truck, "person": person, "bicycle": bicycle, "stop sign": stop_sign,
            "traffic cone": traffic_cone}


def object_asset(key: str, rng: np.random.Generator, mesh: Path | None = None, size_m: float | None = None) -> Asset:
    if mesh is not None:
        return user_mesh(mesh, size_m or 1.0, rng)
    return BUILDERS[key](rng)


# ----------------------------------------------------------------------------- scenery

def building(rng: np.random.Generator, depth: float, width: float, height: float) -> Asset:
    wall = _rgba(_jit(rng, [(0.7, 0.65, 0.55), (0.55, 0.35, 0.3), (0.8, 0.8, 0.78), (0.5, 0.5, 0.55),
                            (0.75, 0.7, 0.6)][int(rng.integers(5))], 0.05))
    parts = [Part(_box([width, depth, height], [0, 0, height / 2]), wall, 0.0, 0.9)]
    # rows of windows on the street side (+y face is turned to the road by the placer)
    n_floors = max(1, int(height // 3.2))
    n_cols = max(1, int(width // 2.5))
    for f in range(n_floors):
        for c in range(n_cols):
            x = -width / 2 + (c + 0.5) * width / n_cols
            z = 1.6 + f * 3.2
            if z + 0.8 < height:
                parts.append(Part(_box([1.2, 0.06, 1.4], [x, depth / 2 + 0.02, z]), (0.12, 0.15, 0.2, 1), 0.2, 0.1))
    return Asset("scenery/building", tuple(parts))


def pole(rng: np.random.Generator) -> Asset:
    h = float(rng.uniform(5.0, 7.0))
    return Asset("scenery/pole", (Part(_cyl(0.09, h, [0, 0, h / 2]), (0.35, 0.36, 0.38, 1), 0.6, 0.5),
                                  Part(_seg([0, 0, h - 0.1], [0, 1.2, h - 0.1], 0.05), (0.35, 0.36, 0.38, 1), 0.6, 0.5),
                                  Part(_box([0.25, 0.45, 0.12], [0, 1.3, h - 0.15]), (0.2, 0.2, 0.22, 1), 0.3, 0.5)))


def tree(rng: np.random.Generator) -> Asset:
    h = float(rng.uniform(3.0, 7.0))
    crown = _rgba(_jit(rng, (0.18, 0.38, 0.14), 0.08))
    return Asset("scenery/tree", (Part(_cyl(0.15, h * 0.5, [0, 0, h * 0.25]), (0.35, 0.24, 0.14, 1)),
                                  Part(_sphere(h * 0.28, [0, 0, h * 0.7]), crown, 0.0, 0.95)))


def guard_rail(length: float) -> Asset:
    return Asset("scenery/guard_rail", (Part(_box([length, 0.1, 0.3], [0, 0, 0.6]), (0.7, 0.72, 0.75, 1), 0.8, 0.35),))

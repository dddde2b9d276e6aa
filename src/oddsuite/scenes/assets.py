"""Object and scenery assets: trimesh primitives composed into recognisable shapes, meshes
that ``pybullet_data`` ships, and user meshes (OBJ/GLB/STL) named in the spec.

An ``Asset`` is a list of coloured parts in the object's own frame: x forward (its
heading), y left, z up, resting on z = 0; each part carries a material role. Every random
choice (variant, proportions, colours) comes from the Generator handed in, so the same
generator state gives the same asset. Variety: 13 car body families, 10 person variants,
3 bicycle types with or without a rider. All built-in assets are procedural except the
traffic cone (pybullet_data, zlib licence); docs/ASSETS.md lists them with their licences.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import trimesh

import pybullet_data

from oddsuite.odd.families import ASSET_FAMILIES
from oddsuite.odd.meshes import load_mesh, mesh_scale


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
    "window": "building window glass",
    "window_lit": "building window glass, lit from inside at night",
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


def _convex_loft(profile, hw_lo: float, hw_hi: float | None = None, z_lo: float = 0.0,
                 z_hi: float = 1.0) -> trimesh.Trimesh:
    """A solid from a convex side profile [(x, z), ...] extruded across y, its half-width
    going linearly from ``hw_lo`` at ``z_lo`` to ``hw_hi`` at ``z_hi`` (a car's tumblehome).
    The solid is convex, so every face is turned away from the centroid."""
    P = np.asarray(profile, dtype=float)
    n = len(P)
    t = np.clip((P[:, 1] - z_lo) / max(z_hi - z_lo, 1e-9), 0, 1)
    hw = hw_lo + ((hw_lo if hw_hi is None else hw_hi) - hw_lo) * t
    V = np.vstack([np.c_[P[:, 0], hw, P[:, 1]], np.c_[P[:, 0], -hw, P[:, 1]]])
    F = [(0, i, i + 1) for i in range(1, n - 1)] + [(n, n + i, n + i + 1) for i in range(1, n - 1)]
    for i in range(n):
        j = (i + 1) % n
        F += [(i, j, n + j), (i, n + j, n + i)]
    F = np.array(F)
    c = V.mean(axis=0)
    tri = V[F]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("ij,ij->i", normal, tri.mean(axis=1) - c) < 0
    F[flip] = F[flip][:, ::-1]
    return trimesh.Trimesh(V, F, process=True)


def _limb(p0, p1, r) -> trimesh.Trimesh:
    """A capsule from point p0 to p1 (rounded ends: joints without gaps)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    L = float(np.linalg.norm(d))
    m = trimesh.creation.capsule(height=max(L, 1e-4), radius=r, count=[10, 10])
    T = trimesh.geometry.align_vectors([0, 0, 1], d / L) if L > 1e-9 else np.eye(4)
    T[:3, 3] = (p0 + p1) / 2
    m.apply_transform(T)
    return m


def _ellipsoid(radii, center) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    m.apply_scale(radii)
    m.apply_translation(center)
    return m


#: (colour, weight): real car colour shares are dominated by white, black, grey and silver
CAR_PAINTS = [((0.9, 0.9, 0.92), 5), ((0.06, 0.06, 0.07), 4), ((0.42, 0.43, 0.45), 3), ((0.65, 0.66, 0.68), 3),
              ((0.7, 0.06, 0.05), 1.5), ((0.08, 0.16, 0.45), 1.5), ((0.1, 0.3, 0.16), 0.6), ((0.85, 0.6, 0.08), 0.4),
              ((0.35, 0.2, 0.12), 0.5), ((0.3, 0.55, 0.8), 0.6), ((0.8, 0.35, 0.05), 0.4), ((0.5, 0.1, 0.25), 0.3)]
CLOTHES = [(0.1, 0.1, 0.12), (0.2, 0.25, 0.5), (0.6, 0.1, 0.1), (0.85, 0.85, 0.8), (0.3, 0.45, 0.25),
           (0.75, 0.55, 0.2), (0.45, 0.3, 0.5), (0.55, 0.55, 0.55), (0.12, 0.18, 0.3), (0.9, 0.75, 0.2),
           (0.4, 0.28, 0.18), (0.2, 0.5, 0.55)]
SKIN = [(0.95, 0.8, 0.68), (0.87, 0.68, 0.53), (0.8, 0.6, 0.45), (0.55, 0.38, 0.26), (0.35, 0.24, 0.16)]
HAIR = [(0.05, 0.04, 0.03), (0.25, 0.15, 0.08), (0.55, 0.4, 0.2), (0.85, 0.75, 0.5), (0.6, 0.6, 0.6),
        (0.45, 0.12, 0.05)]
GLASS_TINTS = [(0.05, 0.06, 0.07), (0.04, 0.07, 0.06), (0.04, 0.05, 0.08), (0.08, 0.08, 0.08)]
RIMS = [((0.75, 0.76, 0.78), 0.9), ((0.25, 0.26, 0.28), 0.6), ((0.05, 0.05, 0.05), 0.3), ((0.6, 0.6, 0.55), 0.8)]


def _rgba(c, a=1.0):
    return (float(c[0]), float(c[1]), float(c[2]), a)


def _jit(rng, c, amount=0.06):
    return tuple(float(np.clip(x + rng.uniform(-amount, amount), 0, 1)) for x in c)


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _weighted(rng, pairs):
    w = np.array([p[1] for p in pairs], dtype=float)
    return pairs[int(rng.choice(len(pairs), p=w / w.sum()))][0]


# ----------------------------------------------------------------------------- cars

@dataclass(frozen=True)
class CarShape:
    """A car body family. Lengths in metres; ``gh`` are the greenhouse's rear base, rear roof,
    front roof and front base as fractions of the length from the rear bumper."""

    L: float
    W: float
    r: float  # wheel radius
    floor: float  # body underside (z)
    belt: float  # beltline: the body's top at the greenhouse
    roof: float
    nose: float  # top of the front face
    tail: float  # top of the rear face
    gh: tuple[float, float, float, float]
    wheelbase: float  # fraction of L
    extra: str = ""  # taxi, spoiler, spare, pickup, van


CAR_SHAPES = {
    "sedan": CarShape(4.65, 1.8, 0.32, 0.3, 0.95, 1.45, 0.78, 0.92, (0.22, 0.33, 0.6, 0.7), 0.6),
    "hatchback": CarShape(4.05, 1.76, 0.31, 0.28, 0.92, 1.48, 0.8, 0.95, (0.03, 0.1, 0.58, 0.7), 0.62),
    "estate": CarShape(4.75, 1.82, 0.32, 0.3, 0.95, 1.48, 0.78, 0.95, (0.03, 0.06, 0.6, 0.71), 0.6),
    "coupe": CarShape(4.5, 1.84, 0.33, 0.27, 0.9, 1.33, 0.74, 0.9, (0.18, 0.4, 0.58, 0.7), 0.6, "spoiler"),
    "sports": CarShape(4.4, 1.92, 0.33, 0.22, 0.8, 1.2, 0.64, 0.82, (0.22, 0.38, 0.55, 0.68), 0.6, "spoiler"),
    "city": CarShape(3.5, 1.62, 0.28, 0.28, 0.9, 1.52, 0.82, 0.95, (0.04, 0.09, 0.63, 0.76), 0.66),
    "suv": CarShape(4.75, 1.93, 0.38, 0.45, 1.15, 1.8, 1.02, 1.12, (0.04, 0.07, 0.62, 0.72), 0.6),
    "crossover": CarShape(4.4, 1.85, 0.35, 0.4, 1.05, 1.62, 0.92, 1.02, (0.06, 0.14, 0.6, 0.72), 0.61),
    "offroad": CarShape(4.3, 1.9, 0.4, 0.5, 1.2, 1.95, 1.15, 1.2, (0.02, 0.03, 0.7, 0.76), 0.58, "spare"),
    "minivan": CarShape(4.95, 1.9, 0.33, 0.35, 1.0, 1.78, 0.9, 1.0, (0.03, 0.05, 0.73, 0.83), 0.62),
    "van": CarShape(5.4, 2.0, 0.35, 0.4, 1.15, 2.4, 1.05, 2.35, (0.74, 0.76, 0.8, 0.86), 0.62, "van"),
    "pickup": CarShape(5.35, 1.95, 0.38, 0.45, 1.15, 1.85, 1.05, 1.15, (0.33, 0.37, 0.6, 0.69), 0.62, "pickup"),
    "taxi": CarShape(4.65, 1.8, 0.32, 0.3, 0.95, 1.45, 0.78, 0.92, (0.22, 0.33, 0.6, 0.7), 0.6, "taxi"),
}


def _car_body(s: CarShape, L: float, W: float) -> list[tuple[list, str]]:
    """Side profiles of the lower body (convex pieces) and the greenhouse: [(profile, what)]."""
    x = lambda f: -L / 2 + f * L  # noqa: E731 - fraction of the length → x
    rb, rr, fr, fb = (x(f) for f in s.gh)
    lo = s.floor
    out = []
    if s.extra == "van":  # a tall box whose front slopes down to the bonnet
        out.append(([(x(0), lo), (x(0), s.roof - 0.05), (x(0.02), s.roof), (rb, s.roof), (fb, s.belt),
                     (x(1), s.nose), (x(1), lo + 0.1), (x(0.97), lo)], "body"))
    elif s.extra == "pickup":  # cab and bonnet; the bed is built separately
        out.append(([(x(0.33), lo), (x(0.33), s.belt), (fb, s.belt), (x(0.985), s.nose), (x(1), s.nose - 0.05),
                     (x(1), lo + 0.1), (x(0.97), lo)], "body"))
    else:
        out.append(([(x(0.015), lo), (x(0), lo + 0.12), (x(0), s.tail - 0.06), (x(0.03), s.tail),
                     (rb, s.belt), (fb, s.belt), (x(0.985), s.nose), (x(1), s.nose - 0.06), (x(1), lo + 0.1),
                     (x(0.975), lo)], "body"))
    if s.extra != "van":
        out.append(([(rb, s.belt), (rr, s.roof), (fr, s.roof), (fb, s.belt)], "greenhouse"))
    return out


def _family(rng: np.random.Generator, table: dict, family: str | None) -> str:
    """The family of one asset: drawn from ``rng`` (always, so the draws after it are the
    same), or ``family`` when one is given (a searched scene: ``odd.samplers.search``)."""
    drawn = _pick(rng, sorted(table))
    if family is None:
        return drawn
    if family not in table:
        raise ValueError(f"unknown asset family {family!r}; expected one of {', '.join(sorted(table))}")
    return family


def car(rng: np.random.Generator, family: str | None = None) -> Asset:
    """One of 13 body families (``CAR_SHAPES``; ``family`` picks one, else it is drawn) with
    jittered proportions, a paint drawn by real colour shares (metallic or solid), glass
    tint, rims and tyre size."""
    kind = _family(rng, CAR_SHAPES, family)
    s = CAR_SHAPES[kind]
    k = float(rng.uniform(0.96, 1.04))
    L, W = s.L * k, s.W * float(rng.uniform(0.97, 1.03))
    paint_rgb = (0.95, 0.75, 0.05) if kind == "taxi" else _jit(rng, _weighted(rng, CAR_PAINTS), 0.04)
    flakes = bool(rng.random() < 0.55)
    paint = Part(None, _rgba(paint_rgb), 0.5 if flakes else 0.15, 0.35, "car_paint")  # template
    glass_c = _rgba(_pick(rng, GLASS_TINTS))
    rim_c, rim_metal = _pick(rng, RIMS)
    rim_frac = float(rng.uniform(0.55, 0.72))
    r = s.r * float(rng.uniform(0.95, 1.06))
    tyre_w = float(rng.uniform(0.19, 0.27))
    hw = W / 2
    parts: list[Part] = []

    def add(mesh, like: Part | None = None, color=None, metallic=0.0, roughness=0.5, role="generic"):
        if like is not None:
            parts.append(Part(mesh, like.color, like.metallic, like.roughness, like.material))
        else:
            parts.append(Part(mesh, color, metallic, roughness, role))

    gh_top = 0.0
    for prof, what in _car_body(s, L, W):
        if what == "body":
            add(_convex_loft(prof, hw, hw * 0.97, s.floor, s.belt), paint)
        else:
            gh_top = hw * (0.8 if s.roof - s.belt > 0.5 else 0.84)
            add(_convex_loft(prof, hw * 0.95, gh_top, s.belt, s.roof), color=glass_c, metallic=0.1, roughness=0.05,
                role="glass")
            # roof panel and B pillar in paint, just proud of the glass
            (rb, _), (rr, _), (fr, _), (fb, _) = prof
            add(_convex_loft([(rr - 0.02, s.roof - 0.05), (rr, s.roof + 0.015), (fr, s.roof + 0.015),
                              (fr + 0.02, s.roof - 0.05)], gh_top + 0.012), paint)
            xb = (rb + fb) / 2 if s.extra != "pickup" else rb + 0.05
            add(_convex_loft([(xb - 0.05, s.belt), (xb - 0.05, s.roof), (xb + 0.05, s.roof), (xb + 0.05, s.belt)],
                             hw * 0.95 + 0.012, gh_top + 0.012, s.belt, s.roof), paint)
            for sy in (1, -1):  # mirrors
                add(_box([0.12, 0.16, 0.1], [fb - 0.05, sy * (hw + 0.07), s.belt + 0.06]), paint)
    if s.extra == "van":  # windscreen and cab side windows
        rb, fb = -L / 2 + s.gh[0] * L, -L / 2 + s.gh[3] * L
        add(_convex_loft([(rb + 0.02, s.roof - 0.12), (rb + 0.06, s.roof - 0.1), (fb + 0.05, s.belt + 0.06),
                          (fb + 0.01, s.belt + 0.04)], hw * 0.93), color=glass_c, metallic=0.1, roughness=0.05,
            role="glass")
        add(_box([0.55, W + 0.01, 0.5], [rb - 0.35, 0, s.belt + 0.45]), color=glass_c, metallic=0.1,
            roughness=0.05, role="glass")
    if s.extra == "pickup":  # the open bed: floor and three walls
        x0, x1 = -L / 2, -L / 2 + 0.33 * L
        add(_box([x1 - x0, W, 0.12], [(x0 + x1) / 2, 0, s.floor + 0.3]), paint)
        for sy in (1, -1):
            add(_box([x1 - x0, 0.06, s.belt - s.floor], [(x0 + x1) / 2, sy * (hw - 0.03), (s.belt + s.floor) / 2]),
                paint)
        add(_box([0.06, W, s.belt - s.floor - 0.1], [x0 + 0.03, 0, (s.belt + s.floor + 0.1) / 2]), paint)
    if s.extra == "taxi":
        add(_box([0.5, 0.28, 0.14], [-0.1 * L, 0, s.roof + 0.08]), color=(0.95, 0.95, 0.9, 1), roughness=0.3,
            role="plate")
    if s.extra == "spoiler":
        add(_box([0.22, W * 0.9, 0.04], [-L / 2 + 0.15, 0, s.tail + 0.1]), paint)
        for sy in (1, -1):
            add(_box([0.06, 0.05, 0.1], [-L / 2 + 0.15, sy * W * 0.35, s.tail + 0.04]), paint)
    if s.extra == "spare":
        add(_cyl(r * 0.95, 0.22, [-L / 2 - 0.12, 0, s.floor + 0.55], axis="x"), color=(0.03, 0.03, 0.03, 1),
            roughness=0.85, role="tyre")
    # bumpers, lamps, plates, grille
    trim = dict(color=(0.04, 0.04, 0.045, 1), roughness=0.5, role="trim")
    fx, bx = L / 2, -L / 2
    add(_box([0.14, W * 0.98, 0.18], [fx - 0.03, 0, s.floor + 0.12]), **trim)
    add(_box([0.14, W * 0.98, 0.18], [bx + 0.03, 0, s.floor + 0.12]), **trim)
    add(_box([0.03, W * 0.4, 0.14], [fx + 0.005, 0, s.nose - 0.16]), **trim)
    lamp_z = s.nose - 0.1
    for sy in (1, -1):
        add(_box([0.04, 0.32, 0.11], [fx + 0.005, sy * (hw - 0.22), lamp_z]), color=(0.9, 0.9, 0.85, 1),
            roughness=0.1, role="lamp_front")
        add(_box([0.04, 0.25, 0.12], [bx - 0.005, sy * (hw - 0.18), min(s.tail, s.belt) - 0.12]),
            color=(0.65, 0.04, 0.04, 1), roughness=0.1, role="lamp_rear")
    plate = (0.95, 0.95, 0.92, 1) if rng.random() < 0.7 else (0.95, 0.8, 0.1, 1)
    add(_box([0.02, 0.52, 0.11], [fx + 0.08, 0, s.floor + 0.14]), color=plate, roughness=0.4, role="plate")
    add(_box([0.02, 0.52, 0.11], [bx - 0.08, 0, s.floor + 0.3]), color=plate, roughness=0.4, role="plate")
    # wheels: a dark arch around each, the tyre just proud of the body, the rim on its face
    wb = s.wheelbase * L / 2
    for wx in (wb + 0.02 * L, -wb + 0.02 * L):
        for sy in (1, -1):
            add(_cyl(r * 1.12, 0.02, [wx, sy * (hw + 0.002), r], axis="y"), color=(0.02, 0.02, 0.02, 1),
                roughness=0.8, role="trim")
            add(_cyl(r, tyre_w, [wx, sy * (hw - tyre_w / 2 + 0.02), r], axis="y"), color=(0.03, 0.03, 0.03, 1),
                roughness=0.85, role="tyre")
            add(_cyl(r * rim_frac, 0.02, [wx, sy * (hw + 0.025), r], axis="y"), color=_rgba(rim_c),
                metallic=rim_metal, roughness=0.3, role="rim")
    return Asset(f"car/{kind}", tuple(parts))


def truck(rng: np.random.Generator) -> Asset:
    paint = _rgba(_jit(rng, _weighted(rng, CAR_PAINTS)))
    cargo = _rgba(_jit(rng, [(0.9, 0.9, 0.9), (0.6, 0.6, 0.65), (0.2, 0.3, 0.5)][int(rng.integers(3))]))
    r = 0.5
    parts = [
        Part(_box([2.0, 2.4, 2.2], [3.0, 0, r + 0.3 + 1.1]), paint, 0.3, 0.4, "paint"),
        Part(_box([0.1, 2.0, 0.9], [4.0, 0, r + 0.3 + 1.6]), (0.05, 0.07, 0.1, 1), 0.1, 0.15, "glass"),
        Part(_box([6.0, 2.5, 2.8], [-1.2, 0, r + 0.4 + 1.4]), cargo, 0.1, 0.6, "paint"),
        Part(_box([8.2, 1.0, 0.3], [0.0, 0, r + 0.15]), (0.1, 0.1, 0.1, 1), 0.0, 0.8, "trim"),
    ]
    for sy in (1, -1):
        parts.append(Part(_box([0.04, 0.3, 0.15], [4.02, sy * 0.9, r + 0.6]), (0.9, 0.9, 0.85, 1), 0, 0.1, "lamp_front"))
        parts.append(Part(_box([0.04, 0.25, 0.15], [-4.21, sy * 1.0, r + 0.7]), (0.65, 0.04, 0.04, 1), 0, 0.1,
                          "lamp_rear"))
    for x in (3.0, -2.0, -3.3):
        for sy in (1, -1):
            parts.append(Part(_cyl(r, 0.35, [x, sy * 1.05, r], axis="y"), (0.04, 0.04, 0.04, 1), 0.0, 0.85, "tyre"))
            parts.append(Part(_cyl(r * 0.6, 0.02, [x, sy * 1.23, r], axis="y"), (0.7, 0.7, 0.72, 1), 0.8, 0.3, "rim"))
    return Asset("truck/box", tuple(parts))


# ----------------------------------------------------------------------------- people

#: person variants: (clothing, pose, accessory); every variant also draws height, build,
#: skin, hair and clothing colours
PERSON_VARIANTS = {
    "walking": ("trousers", "walk", ""),
    "standing": ("trousers", "stand", ""),
    "child": ("trousers", "walk", ""),
    "coat": ("coat", "walk", ""),
    "skirt": ("skirt", "walk", "bag"),
    "backpack": ("trousers", "walk", "backpack"),
    "jogger": ("shorts", "run", ""),
    "phone": ("trousers", "phone", ""),
    "heavy": ("trousers", "walk", ""),
    "elderly": ("coat", "stoop", "hat"),
}


@dataclass(frozen=True)
class Look:
    """What a person wears and looks like (colours RGBA)."""

    top: tuple
    bottom: tuple
    shoes: tuple
    skin: tuple
    hair: tuple
    long_hair: bool
    bag: tuple


def _look(rng: np.random.Generator) -> Look:
    top = _rgba(_jit(rng, _pick(rng, CLOTHES)))
    bottom = _rgba(_jit(rng, _pick(rng, CLOTHES)))
    shoes = _rgba(_pick(rng, [(0.05, 0.05, 0.05), (0.3, 0.2, 0.12), (0.85, 0.85, 0.85), (0.15, 0.15, 0.2)]))
    return Look(top, bottom, shoes, _rgba(_pick(rng, SKIN)), _rgba(_pick(rng, HAIR)), bool(rng.random() < 0.35),
                _rgba(_pick(rng, CLOTHES)))


def _body(P: dict, s: float, bw: float, look: Look, clothing: str, acc: str) -> list[Part]:
    """A person from joint positions ``P`` (metres, object frame), scale ``s`` (height/1.75)
    and build ``bw`` (width factor)."""
    cloth = lambda c: dict(color=c, metallic=0.0, roughness=0.9, material="cloth")  # noqa: E731
    skin = dict(color=look.skin, metallic=0.0, roughness=0.5, material="skin")
    parts: list[Part] = []
    lr = 0.065 * s * bw ** 0.5
    for side in ("l", "r"):
        hip, knee, ankle = P[f"hip_{side}"], P[f"knee_{side}"], P[f"ankle_{side}"]
        thigh_c = skin if clothing == "skirt" else cloth(look.bottom)
        shin_c = skin if clothing in ("shorts", "skirt") else cloth(look.bottom)
        parts.append(Part(_limb(hip, knee, lr * 1.1), **thigh_c))
        parts.append(Part(_limb(knee, ankle, lr * 0.85), **shin_c))
        foot = np.asarray(ankle) + [0.07 * s, 0, -0.03 * s]
        parts.append(Part(_limb(np.asarray(ankle) + [-0.03 * s, 0, -0.02 * s], foot, 0.045 * s), look.shoes, 0.0,
                          0.45, "leather"))
        sh, el, wr = P[f"shoulder_{side}"], P[f"elbow_{side}"], P[f"wrist_{side}"]
        sleeve = cloth(look.top)
        parts.append(Part(_limb(sh, el, 0.045 * s * bw ** 0.5), **sleeve))
        parts.append(Part(_limb(el, wr, 0.038 * s * bw ** 0.5), **(skin if clothing in ("shorts",) else sleeve)))
        parts.append(Part(_sphere(0.045 * s, wr), **skin))
    pelvis, chest = np.asarray(P["pelvis"]), np.asarray(P["chest"])
    tw, td = 0.2 * s * bw, 0.12 * s * bw
    # torso: a tapered block from the pelvis to the shoulders, leaning with the spine
    h = float(np.linalg.norm(chest - pelvis))
    torso = _convex_loft([(-td, 0), (-td * 1.05, h * 0.7), (-td * 0.8, h), (td * 0.8, h), (td * 1.1, h * 0.6),
                          (td, 0)], tw * 0.9, tw * 1.05, 0, h)
    T = trimesh.geometry.align_vectors([0, 0, 1], (chest - pelvis) / h)
    T[:3, 3] = pelvis
    torso.apply_transform(T)
    parts.append(Part(torso, **cloth(look.top)))
    parts.append(Part(_ellipsoid([td * 1.05, tw * 0.95, 0.09 * s], pelvis + [0, 0, 0.02 * s]),
                      **cloth(look.top if clothing == "coat" else look.bottom)))
    if clothing == "skirt":  # a flared frustum from the waist to above the knees
        hs = 0.36 * s
        skirt = trimesh.creation.cylinder(radius=tw * 1.3, height=hs, sections=16)
        top = skirt.vertices[:, 2] > 0
        skirt.vertices[top, :2] *= 0.7
        skirt.apply_translation(pelvis + [0, 0, 0.06 * s - hs / 2])
        parts.append(Part(skirt, **cloth(look.bottom)))
    if clothing == "coat":  # a long coat: the torso continued down to the knees
        knees = (np.asarray(P["knee_l"]) + np.asarray(P["knee_r"])) / 2
        hc = float(chest[2] - knees[2] - 0.05 * s)
        coat = _convex_loft([(-td * 1.15, 0), (-td * 1.1, hc), (td * 1.05, hc), (td * 1.2, 0)], tw * 1.0, tw * 0.92,
                            0, hc)
        coat.apply_translation([(chest[0] + knees[0]) / 2, 0, knees[2] - 0.02 * s])
        parts.append(Part(coat, **cloth(look.top)))
    neck, head = np.asarray(P["neck"]), np.asarray(P["head"])
    parts.append(Part(_limb(chest, neck, 0.05 * s), **skin))
    hr = 0.105 * s
    parts.append(Part(_ellipsoid([hr * 1.05, hr * 0.88, hr * 1.15], head), **skin))
    hair = dict(color=look.hair, metallic=0.0, roughness=0.6, material="hair")
    if acc == "hat":
        parts.append(Part(_cyl(hr * 1.3, 0.015 * s, head + [0, 0, hr * 0.75]), look.bottom, 0.0, 0.8, "cloth"))
        parts.append(Part(_cyl(hr * 0.9, 0.1 * s, head + [0, 0, hr * 0.95]), look.bottom, 0.0, 0.8, "cloth"))
    else:
        parts.append(Part(_ellipsoid([hr * 1.1, hr * 0.95, hr * 0.8], head + [-hr * 0.12, 0, hr * 0.35]), **hair))
        if look.long_hair:
            parts.append(Part(_ellipsoid([hr * 0.45, hr * 0.85, hr * 1.4], head + [-hr * 0.75, 0, -hr * 0.5]), **hair))
    if acc == "backpack":
        parts.append(Part(_box([0.16 * s, 0.3 * s * bw, 0.42 * s], chest + [-td - 0.08 * s, 0, -0.22 * s]),
                          look.bag, 0.0, 0.7, "cloth"))
    if acc == "bag":
        parts.append(Part(_box([0.22 * s, 0.08 * s, 0.2 * s], np.asarray(P["wrist_r"]) + [0, -0.03 * s, -0.14 * s]),
                          (0.3, 0.18, 0.1, 1), 0.0, 0.45, "leather"))
    return parts


def _pose(pose: str, s: float, bw: float, phase: float, stride: float) -> dict:
    """Joint positions of a standing, walking, running or phoning person, feet on z = 0."""
    hip_h, leg, shin = 0.53 * s, 0.245 * s, 0.245 * s
    sho_h, hw = 0.82 * s, 0.09 * s * bw
    lean = {"run": 0.12, "stoop": 0.18}.get(pose, 0.02)
    P: dict = {}
    swing = {"stand": 0.0, "phone": 0.0, "walk": stride, "stoop": stride * 0.5, "run": stride * 1.6}[pose]
    for side, sy, ph in (("l", 1, phase), ("r", -1, -phase)):
        a = swing * ph  # thigh angle from vertical (+ forward)
        hip = np.array([0.0, sy * hw, hip_h])
        knee_bend = (0.35 if pose == "run" else 0.12) * max(-ph, 0) * (swing > 0) + (0.25 if pose == "run" else 0)
        knee = hip + leg * np.array([np.sin(a), 0, -np.cos(a)])
        b = a - knee_bend * 2
        ankle = knee + shin * np.array([np.sin(b), 0, -np.cos(b)])
        P[f"hip_{side}"], P[f"knee_{side}"], P[f"ankle_{side}"] = hip, knee, ankle
    low = min(P["ankle_l"][2], P["ankle_r"][2]) - 0.06 * s
    for k in list(P):
        P[k] = P[k] - [0, 0, low]
    pelvis = np.array([0.0, 0, hip_h - low + 0.03 * s])
    chest = pelvis + (sho_h - hip_h) * np.array([np.sin(lean), 0, np.cos(lean)])
    P["pelvis"], P["chest"] = pelvis, chest
    P["neck"] = chest + [0.02 * s, 0, 0.07 * s]
    P["head"] = P["neck"] + [0.03 * s, 0, 0.12 * s]
    sw = 0.19 * s * bw
    for side, sy, ph in (("l", 1, -phase), ("r", -1, phase)):
        sh = chest + [0, sy * sw, -0.03 * s]
        a = 0.8 * swing * ph
        el = sh + 0.28 * s * np.array([np.sin(a), sy * 0.05, -np.cos(a)])
        if pose == "run":
            wr = el + 0.25 * s * np.array([0.9, 0, 0.45])
        elif pose == "phone" and side == "r":
            el = sh + 0.26 * s * np.array([0.35, -0.15, -0.9])
            wr = P["head"] + [0.02 * s, -0.1 * s, -0.02 * s]
        else:
            wr = el + 0.25 * s * np.array([np.sin(a * 1.3) + 0.1, sy * 0.03, -np.cos(a * 1.3)])
        P[f"shoulder_{side}"], P[f"elbow_{side}"], P[f"wrist_{side}"] = sh, el, wr
    return P


def person(rng: np.random.Generator, family: str | None = None) -> Asset:
    """One of 10 person variants (``PERSON_VARIANTS``; ``family`` picks one, else it is
    drawn): height, build, clothing colours, skin, hair and the phase of the stride are
    drawn too."""
    kind = _family(rng, PERSON_VARIANTS, family)
    clothing, pose, acc = PERSON_VARIANTS[kind]
    adult = float(np.clip(rng.normal(1.72, 0.08), 1.5, 1.95))
    h = {"child": float(rng.uniform(1.05, 1.4)), "elderly": float(rng.uniform(1.55, 1.75))}.get(kind, adult)
    bw = {"heavy": float(rng.uniform(1.25, 1.45)), "child": 0.85}.get(kind, float(rng.uniform(0.9, 1.1)))
    s = h / 1.75
    P = _pose(pose, s, bw, float(rng.uniform(-1, 1)), float(rng.uniform(0.25, 0.4)))
    return Asset(f"person/{kind}", tuple(_body(P, s, bw, _look(rng), clothing, acc)))


# ----------------------------------------------------------------------------- bicycles

#: bicycle variants: wheel radius, tyre half-thickness, frame geometry, handlebar
BIKES = {
    "city": dict(r=0.35, tyre=0.022, seat=(-0.22, 0.92), head=(0.36, 0.9), bar=(-0.12, 0.18), drop=False),
    "road": dict(r=0.34, tyre=0.013, seat=(-0.2, 0.95), head=(0.4, 0.88), bar=(0.02, 0.05), drop=True),
    "mountain": dict(r=0.36, tyre=0.032, seat=(-0.2, 0.88), head=(0.38, 0.86), bar=(-0.02, 0.1), drop=False),
}


def _ik_knee(hip: np.ndarray, foot: np.ndarray, a: float, b: float) -> np.ndarray:
    """The knee of a two-link leg (thigh a, shin b) from hip to foot, bent forward (+x)."""
    d = foot - hip
    L = float(np.clip(np.linalg.norm(d), 1e-6, a + b - 1e-6))
    u = d / np.linalg.norm(d)
    along = (a * a - b * b + L * L) / (2 * L)
    up = np.sqrt(max(a * a - along * along, 0.0))
    perp = np.array([-u[2], 0.0, u[0]])  # in the x-z plane
    if perp[0] < 0:
        perp = -perp
    return hip + along * u + up * perp


def bicycle(rng: np.random.Generator, family: str | None = None) -> Asset:
    """A city, road or mountain bicycle (``family`` picks one, else it is drawn; frame
    colour drawn), ridden in half the draws: the rider is part of the ROI, as in nuScenes'
    and KITTI's cyclist boxes."""
    kind = _family(rng, BIKES, family)
    g = BIKES[kind]
    frame_c = _rgba(_jit(rng, _weighted(rng, CAR_PAINTS)))
    frame = dict(color=frame_c, metallic=0.5, roughness=0.4, material="paint")
    black = dict(color=(0.03, 0.03, 0.03, 1.0), metallic=0.0, roughness=0.85, material="tyre")
    r = g["r"]
    wb = 1.05
    rear, front = np.array([-wb / 2, 0, r]), np.array([wb / 2, 0, r])
    crank = np.array([-0.05, 0, 0.3])
    seat = np.array([g["seat"][0], 0, g["seat"][1]])
    head = np.array([g["head"][0], 0, g["head"][1]])
    parts = []
    for c in (rear, front):
        t = trimesh.creation.torus(major_radius=r - g["tyre"], minor_radius=g["tyre"], major_sections=32,
                                   minor_sections=8)
        t.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
        t.apply_translation(c)
        parts.append(Part(t, **black))
        for a in range(4):  # spokes
            ang = a * np.pi / 4
            d = np.array([np.cos(ang), 0, np.sin(ang)]) * (r - 0.03)
            parts.append(Part(_seg(c - d, c + d, 0.005), (0.7, 0.7, 0.7, 1), 0.8, 0.3, "metal"))
        parts.append(Part(_cyl(0.03, 0.08, c, axis="y"), (0.6, 0.6, 0.6, 1), 0.8, 0.3, "metal"))
    for p0, p1 in ((rear, crank), (crank, seat), (seat, rear), (crank, head), (seat + [0.02, 0, -0.05], head),
                   (head, front)):
        parts.append(Part(_seg(p0, p1, 0.022 if kind != "road" else 0.017), **frame))
    stem = head + [g["bar"][0], 0, g["bar"][1]]
    parts.append(Part(_seg(head, stem, 0.02), **frame))
    bar_w = 0.21 if kind == "road" else 0.3
    parts.append(Part(_seg(stem + [0, -bar_w, 0], stem + [0, bar_w, 0], 0.014), (0.1, 0.1, 0.1, 1), 0.3, 0.5, "trim"))
    if g["drop"]:
        for sy in (1, -1):
            parts.append(Part(_seg(stem + [0, sy * bar_w, 0], stem + [0.08, sy * bar_w, -0.12], 0.013),
                              (0.1, 0.1, 0.1, 1), 0.3, 0.5, "trim"))
    parts.append(Part(_box([0.26, 0.12, 0.05], seat + [0, 0, 0.04]), (0.05, 0.05, 0.05, 1), 0.0, 0.45, "leather"))
    pedal_phase = float(rng.uniform(0, 2 * np.pi))
    pedals = []
    for sy, ph in ((1, pedal_phase), (-1, pedal_phase + np.pi)):
        p = crank + 0.17 * np.array([np.cos(ph), 0, np.sin(ph)]) + [0, sy * 0.12, 0]
        pedals.append(p)
        parts.append(Part(_seg(crank + [0, sy * 0.06, 0], p, 0.012), (0.6, 0.6, 0.6, 1), 0.8, 0.3, "metal"))
        parts.append(Part(_box([0.1, 0.08, 0.02], p), (0.05, 0.05, 0.05, 1), 0.0, 0.6, "trim"))
    name = f"bicycle/{kind}"
    if rng.random() < 0.5:
        parts += _rider(rng, seat, stem, bar_w, pedals)
        name += "+rider"
    return Asset(name, tuple(parts))


def _rider(rng: np.random.Generator, seat: np.ndarray, stem: np.ndarray, bar_w: float,
           pedals: list[np.ndarray]) -> list[Part]:
    """A cyclist on the saddle: feet on the pedals, hands on the bar."""
    h = float(np.clip(rng.normal(1.75, 0.07), 1.55, 1.95))
    s = h / 1.75
    P: dict = {}
    pelvis = seat + [0.0, 0, 0.09]
    for side, sy, pedal in (("l", 1, pedals[0]), ("r", -1, pedals[1])):
        hip = pelvis + [0.02, sy * 0.09 * s, 0]
        foot = pedal + [0, 0, 0.04]
        P[f"hip_{side}"], P[f"knee_{side}"], P[f"ankle_{side}"] = hip, _ik_knee(hip, foot, 0.45 * s, 0.45 * s), foot
    lean = np.arctan2(stem[0] - pelvis[0], 1.0) * 0.9 + 0.35
    chest = pelvis + 0.52 * s * np.array([np.sin(lean), 0, np.cos(lean)])
    P["pelvis"], P["chest"] = pelvis, chest
    P["neck"] = chest + [0.05 * s, 0, 0.06 * s]
    P["head"] = P["neck"] + [0.07 * s, 0, 0.1 * s]
    for side, sy in (("l", 1), ("r", -1)):
        sh = chest + [0, sy * 0.19 * s, -0.03 * s]
        hand = stem + [0, sy * (bar_w - 0.05), 0.02]
        el = (sh + hand) / 2 + [-0.02, sy * 0.04, 0.05]
        P[f"shoulder_{side}"], P[f"elbow_{side}"], P[f"wrist_{side}"] = sh, el, hand
    look = _look(rng)
    return _body(P, s, float(rng.uniform(0.9, 1.1)), look, _pick(rng, ["trousers", "shorts", "trousers"]),
                 _pick(rng, ["", "backpack", "hat"]))


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
        Part(_cyl(0.035, pole_h + rad, [0, 0, (pole_h + rad) / 2]), (0.6, 0.6, 0.62, 1), 0.8, 0.3, "metal"),
        Part(border, (0.95, 0.95, 0.95, 1), 0.0, 0.5, "sign_face"),
        Part(face, (0.75, 0.03, 0.03, 1), 0.0, 0.45, "sign_face"),
        Part(band, (0.95, 0.95, 0.95, 1), 0.0, 0.5, "sign_face"),
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
    return Asset("traffic cone/pybullet", (Part(m, (0.95, 0.35, 0.02, 1), 0, 0.6, "trim"),
                                           Part(band, (0.95, 0.95, 0.95, 1), 0, 0.5, "sign_face"),
                                           Part(base, (0.1, 0.1, 0.1, 1), 0.0, 0.8, "trim")))


def user_mesh(path: Path, scale_m: float, rng: np.random.Generator) -> Asset:
    """A user mesh (checked when the spec loaded: ``odd.meshes``): y-up files (GLB/GLTF)
    are turned z-up; coordinates times ``scale_m`` give metres; centred, on z = 0."""
    m = load_mesh(path).copy()
    if path.suffix.lower() in (".glb", ".gltf"):
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    m.apply_scale(scale_m)
    c = m.bounds.mean(axis=0)
    m.apply_translation([-c[0], -c[1], -m.bounds[0][2]])
    color = _rgba(_jit(rng, (0.6, 0.6, 0.6), 0.3))
    return Asset(f"user/{path.name}", (Part(m, color, 0.1, 0.6),))


BUILDERS = {"car": car, "truck": truck, "person": person, "bicycle": bicycle, "stop sign": stop_sign,
            "traffic cone": traffic_cone}
#: the asset families a built-in class is drawn from (uniformly), by class key; a search can
#: choose one per object (``odd.samplers.search.object_dimensions``). The ROI table's
#: ``asset`` column reads ``key/family``. The names are ``odd.families``'s, checked here.
FAMILIES = ASSET_FAMILIES
for _key, _table in (("car", CAR_SHAPES), ("person", PERSON_VARIANTS), ("bicycle", BIKES)):
    if tuple(sorted(_table)) != FAMILIES[_key]:
        raise AssertionError(f"odd.families.ASSET_FAMILIES[{_key!r}] does not name the shapes scenes.assets builds")


#: the stream tag of a searched look's Generator (``look_rng``)
LOOK_STREAM = 0x6C6F6F6B


def look_rng(look: int) -> np.random.Generator:
    """The Generator of a built-in asset's own draws for searched look ``look``
    (``odd.families.LOOKS``): seeded by the look alone, so look ``k`` of a family is the
    same object (paint, proportions, clothing) in every scene and suite."""
    return np.random.default_rng(np.random.SeedSequence([LOOK_STREAM, int(look)]))


def object_asset(key: str, rng: np.random.Generator, mesh: Path | None = None, size_m: float | None = None,
                 units: str | None = None, family: str | None = None) -> Asset:
    """The asset of one object of class ``key``: a built-in builder, or the user mesh with
    its scale (exactly one of ``size_m``, ``units``: the spec requires it). ``family``
    (a key of ``FAMILIES[key]``) fixes a built-in asset's family instead of drawing it;
    the draws that follow are the same either way. ValueError for a family the class lacks."""
    if mesh is not None:
        return user_mesh(mesh, mesh_scale(mesh, size_m, units), rng)
    if family is not None:
        if key not in FAMILIES:
            raise ValueError(f"objects.{key}: has no asset families to choose from")
        return BUILDERS[key](rng, family=family)
    return BUILDERS[key](rng)


# ----------------------------------------------------------------------------- scenery

def building(rng: np.random.Generator, depth: float, width: float, height: float) -> Asset:
    wall = _rgba(_jit(rng, [(0.7, 0.65, 0.55), (0.55, 0.35, 0.3), (0.8, 0.8, 0.78), (0.5, 0.5, 0.55),
                            (0.75, 0.7, 0.6)][int(rng.integers(5))], 0.05))
    parts = [Part(_box([width, depth, height], [0, 0, height / 2]), wall, 0.0, 0.9, "facade")]
    # rows of windows on the street side (+y face is turned to the road by the placer)
    n_floors = max(1, int(height // 3.2))
    n_cols = max(1, int(width // 2.5))
    for f in range(n_floors):
        for c in range(n_cols):
            x = -width / 2 + (c + 0.5) * width / n_cols
            z = 1.6 + f * 3.2
            if z + 0.8 < height:
                lit = rng.random() < 0.25  # lit at night
                parts.append(Part(_box([1.2, 0.06, 1.4], [x, depth / 2 + 0.02, z]), (0.12, 0.15, 0.2, 1), 0.2, 0.1,
                                  "window_lit" if lit else "window"))
    return Asset("scenery/building", tuple(parts))


def pole(rng: np.random.Generator) -> Asset:
    h = float(rng.uniform(5.0, 7.0))
    grey = (0.35, 0.36, 0.38, 1)
    return Asset("scenery/pole", (Part(_cyl(0.09, h, [0, 0, h / 2]), grey, 0.6, 0.5, "metal"),
                                  Part(_seg([0, 0, h - 0.1], [0, 1.2, h - 0.1], 0.05), grey, 0.6, 0.5, "metal"),
                                  Part(_box([0.25, 0.45, 0.12], [0, 1.3, h - 0.15]), (0.2, 0.2, 0.22, 1), 0.3, 0.5,
                                       "metal")))


def tree(rng: np.random.Generator) -> Asset:
    h = float(rng.uniform(3.0, 7.0))
    crown = _rgba(_jit(rng, (0.18, 0.38, 0.14), 0.08))
    return Asset("scenery/tree", (Part(_cyl(0.15, h * 0.5, [0, 0, h * 0.25]), (0.35, 0.24, 0.14, 1), 0.0, 0.8, "bark"),
                                  Part(_sphere(h * 0.28, [0, 0, h * 0.7]), crown, 0.0, 0.95, "foliage")))


def guard_rail(length: float) -> Asset:
    return Asset("scenery/guard_rail", (Part(_box([length, 0.1, 0.3], [0, 0, 0.6]), (0.7, 0.72, 0.75, 1), 0.8, 0.35,
                                             "metal"),))

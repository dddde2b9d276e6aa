"""The ODD spec: YAML → typed, validated ``OddSpec``.

Dimensions follow the ISO 34503 / ASAM OpenODD / PAS 1883 taxonomy: *scenery* (road
type, lanes, road surface), *environment* (sun, clouds, fog visibility, rain, snow),
*dynamic elements* (object classes with counts and placement ranges) and the *camera*.
Every dimension takes a domain (see ``odd.domains``). Unknown keys and out-of-range
values are errors naming the file, the YAML path and line, and what was expected
(``odd.load`` reads the YAML and runs the checks that need more than one field).
"""
import hashlib
from math import comb
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from oddsuite.odd.domains import Domain, parse_domain

#: COCO-compatible class names that oddsuite can build from its own assets.
BUILTIN_CLASSES = ("car", "truck", "person", "bicycle", "stop sign", "traffic cone")
ROAD_TYPES = ("urban", "rural", "highway")
ROAD_SURFACES = ("dry", "wet", "icy", "snow")
PLANS = ("exhaustive", "k-subsets", "ablation", "sampled", "full")
MODES = ("remove", "isolate", "cutout")
SAMPLERS = ("random", "grid", "halton")
#: fog visibility of 10 km or more is clear air (the meteorological definition); the
#: renderer draws no fog at 10000 m, so larger values would be recorded but not rendered
NO_FOG_NOTE = "10000 m means no fog"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)


def Dom(lo: float = 0, hi: float = 0, unit: str = "", integer: bool = False, choices: tuple[str, ...] | None = None,
        note: str = ""):
    """The type of a domain field: raw YAML is turned into a validated Domain first."""

    def conv(v: Any) -> Domain:
        if isinstance(v, Domain):
            return v
        return parse_domain(v, lo=lo, hi=hi, unit=unit, integer=integer, choices=choices, note=note)

    return Annotated[Domain, BeforeValidator(conv)]


class Scenery(_Strict):
    road_type: Dom(choices=ROAD_TYPES) = Field(default_factory=lambda: parse_domain("urban", choices=ROAD_TYPES))
    lanes: Dom(1, 6, "lanes", integer=True) = Field(default_factory=lambda: parse_domain(2, lo=1, hi=6, integer=True, unit="lanes"))
    lane_width_m: Dom(2.5, 5.0, "m") = Field(default_factory=lambda: parse_domain(3.5, lo=2.5, hi=5.0, unit="m"))
    road_surface: Dom(choices=ROAD_SURFACES) = Field(default_factory=lambda: parse_domain("dry", choices=ROAD_SURFACES))
    clutter: Dom(0.0, 3.0, "x (roadside density multiplier; 0 = no buildings, poles or trees)") = Field(default_factory=lambda: parse_domain(1.0, lo=0.0, hi=3.0, unit="x"))



class Environment(_Strict):
    sun_elevation_deg: Dom(-90, 90, "deg") = Field(default_factory=lambda: parse_domain(45.0, lo=-90, hi=90, unit="deg"))
    sun_azimuth_deg: Dom(0, 360, "deg") = Field(default_factory=lambda: parse_domain(135.0, lo=0, hi=360, unit="deg"))
    cloud_cover: Dom(0, 1, "fraction") = Field(default_factory=lambda: parse_domain(0.2, lo=0, hi=1, unit="fraction"))
    fog_visibility_m: Dom(5, 10000, "m", note=NO_FOG_NOTE) = Field(default_factory=lambda: parse_domain(10000.0, lo=5, hi=10000, unit="m"))
    rain_mm_h: Dom(0, 200, "mm/h") = Field(default_factory=lambda: parse_domain(0.0, lo=0, hi=200, unit="mm/h"))
    snow_mm_h: Dom(0, 50, "mm/h") = Field(default_factory=lambda: parse_domain(0.0, lo=0, hi=50, unit="mm/h"))



class Camera(_Strict):
    height_m: Dom(0.2, 10, "m") = Field(default_factory=lambda: parse_domain(1.5, lo=0.2, hi=10, unit="m"))
    pitch_deg: Dom(-45, 45, "deg") = Field(default_factory=lambda: parse_domain(-3.0, lo=-45, hi=45, unit="deg"))
    fov_deg: Dom(10, 150, "deg") = Field(default_factory=lambda: parse_domain(60.0, lo=10, hi=150, unit="deg"))
    width: int = Field(640, ge=32, le=4096)
    height: int = Field(480, ge=32, le=4096)



class ObjectClass(_Strict):
    """One class of dynamic element (an ROI class)."""

    count: Dom(0, 20, "objects", integer=True)
    distance_m: Dom(1, 500, "m") = Field(default_factory=lambda: parse_domain({"min": 8, "max": 40}, lo=1, hi=500, unit="m"))
    lateral_m: Dom(-100, 100, "m") = Field(default_factory=lambda: parse_domain({"min": -6, "max": 6}, lo=-100, hi=100, unit="m"))
    heading_deg: Dom(-360, 360, "deg") = Field(default_factory=lambda: parse_domain({"min": 0, "max": 360}, lo=-360, hi=360, unit="deg"))
    scale_jitter: float = Field(0.1, ge=0.0, le=0.5, description="relative size jitter, uniform in ±scale_jitter")
    #: a user mesh (OBJ/GLB/GLTF/STL/PLY), relative to the spec file; its scale is required:
    #: either `size_m` (the longest extent is scaled to it) or `units` (what one unit of the file is)
    mesh: Optional[str] = None
    size_m: Optional[float] = Field(None, gt=0, le=50)
    units: Optional[Literal["mm", "cm", "m"]] = None
    #: COCO-style name the class reports as (defaults to the key)
    name: Optional[str] = None

    @model_validator(mode="after")
    def _scale(self) -> "ObjectClass":
        if self.mesh is None and (self.size_m is not None or self.units is not None):
            raise ValueError("size_m and units scale a user mesh; this class has no 'mesh:'")
        if self.size_m is not None and self.units is not None:
            raise ValueError("give one of size_m (the mesh's longest side in metres) or units (mm, cm or m: the "
                             "unit the file is written in), not both")
        return self



class Permutations(_Strict):
    plan: Literal["exhaustive", "k-subsets", "ablation", "sampled", "full"] = "ablation"
    k: int = Field(2, ge=1, le=16, description="largest subset size for k-subsets")
    n: int = Field(16, ge=1, le=100000, description="number of subsets for sampled")
    max_subsets: int = Field(256, ge=1, le=1 << 20, description="exhaustive refuses scenes with more subsets")
    modes: tuple[Literal["remove", "isolate", "cutout"], ...] = ("remove",)
    renderer: Literal["exact", "composite"] = "exact"


class Variant(_Strict):
    """An environmental variant: overrides applied to a scene's sampled environment."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    sun_elevation_deg: Optional[float] = Field(None, ge=-90, le=90)
    sun_azimuth_deg: Optional[float] = Field(None, ge=0, le=360)
    cloud_cover: Optional[float] = Field(None, ge=0, le=1)
    fog_visibility_m: Optional[float] = Field(None, ge=5, le=10000, description=NO_FOG_NOTE)
    rain_mm_h: Optional[float] = Field(None, ge=0, le=200)
    snow_mm_h: Optional[float] = Field(None, ge=0, le=50)
    road_surface: Optional[Literal["dry", "wet", "icy", "snow"]] = None
    shadows: Optional[bool] = None
    headlights: Optional[bool] = None


class Rule(_Strict):
    """``exclude``: a sample is rejected when all its conditions hold.
    ``require``: when all ``if`` conditions hold, all ``then`` conditions must hold."""

    exclude: Optional[dict[str, Any]] = None
    require: Optional[dict[str, dict[str, Any]]] = None

    @model_validator(mode="after")
    def _one(self) -> "Rule":
        if (self.exclude is None) == (self.require is None):
            raise ValueError("a rule has exactly one of 'exclude' or 'require'")
        if self.require is not None and set(self.require) != {"if", "then"}:
            raise ValueError("'require' takes exactly the keys 'if' and 'then'")
        return self


class OddSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    sampler: Literal["random", "grid", "halton"] = "random"
    grid_levels: int = Field(3, ge=2, le=64, description="points per range dimension for the grid sampler")
    min_visible: float = Field(0.1, ge=0.0, le=1.0)
    scenery: Scenery = Field(default_factory=Scenery)
    environment: Environment = Field(default_factory=Environment)
    camera: Camera = Field(default_factory=Camera)
    objects: dict[str, ObjectClass]
    rules: tuple[Rule, ...] = ()
    permutations: Permutations = Field(default_factory=Permutations)
    variants: tuple[Variant, ...] = (Variant(name="base"),)
    max_placement_tries: int = Field(200, ge=1, le=100000)

    # set by load_spec, not by the YAML
    source_path: Optional[str] = Field(None, exclude=True)
    source_text: Optional[str] = Field(None, exclude=True)

    @field_validator("objects")
    @classmethod
    def _objects(cls, v: dict[str, ObjectClass]) -> dict[str, ObjectClass]:
        if not v:
            raise ValueError("at least one object class is needed")
        for key, oc in v.items():
            if oc.mesh is None and key not in BUILTIN_CLASSES:
                raise ValueError(
                    f"class {key!r} has no built-in asset (built-in: {', '.join(BUILTIN_CLASSES)}); give it a 'mesh:' path"
                )
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: tuple[Variant, ...]) -> tuple[Variant, ...]:
        names = [x.name for x in v]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if not v:
            raise ValueError("at least one variant is needed (use `- name: base` for the scene as sampled)")
        return v

    @property
    def class_names(self) -> list[str]:
        """Category names in spec order (COCO ids are 1 + index)."""
        return [oc.name or key for key, oc in self.objects.items()]

    @property
    def sha256(self) -> str:
        return hashlib.sha256((self.source_text or "").encode()).hexdigest()

    def mesh_path(self, key: str) -> Optional[Path]:
        """The user mesh of class ``key``, resolved relative to the spec file (None for a
        built-in class). Raises ValueError when it lies outside the spec's folder."""
        oc = self.objects[key]
        if oc.mesh is None:
            return None
        base = Path(self.source_path or ".").resolve().parent
        p = (base / oc.mesh).resolve()
        if base not in p.parents:
            raise ValueError(f"{oc.mesh!r} resolves outside the spec's folder {base}")
        return p

    def dimensions(self) -> list[tuple[str, Domain]]:
        """(path, domain) of every global dimension (scenery, environment, camera, object
        counts), in a fixed order: the order samplers fill them in."""
        dims: list[tuple[str, Domain]] = []
        for g in ("scenery", "environment", "camera"):
            model = getattr(self, g)
            for name in type(model).model_fields:
                v = getattr(model, name)
                if isinstance(v, Domain):
                    dims.append((f"{g}.{name}", v))
        for key, oc in self.objects.items():
            dims.append((f"objects.{key}.count", oc.count))
        return dims

    @property
    def max_rois(self) -> int:
        """The most ROIs a scene of this spec can hold (the sum of the counts' maxima)."""
        return sum(int(oc.count.largest) for oc in self.objects.values())


def plan_size(plan: str, n: int, k: int = 2, n_sampled: int = 16) -> int:
    """Number of subsets a plan gives for a scene of ``n`` ROIs, counted without building them
    (see ``permute.plans`` for the plans)."""
    if n == 0:
        return 0
    if plan == "full":
        return 1
    if plan == "exhaustive":
        return 2**n - 1
    if plan == "k-subsets":
        return sum(comb(n, s) for s in range(1, min(k, n) + 1)) + (1 if k < n else 0)
    if plan == "ablation":
        return {1: 1, 2: 3}.get(n, 2 * n + 1)  # singletons, leave-one-out, the full set
    if plan == "sampled":
        return min(2**n - 1, n + (1 if n > 1 else 0) + n_sampled)
    raise ValueError(f"unknown plan {plan!r}")

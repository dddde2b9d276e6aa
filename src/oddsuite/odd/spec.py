"""The ODD spec: YAML → typed, validated ``OddSpec``.

Dimensions follow the ISO 34503 / ASAM OpenODD / PAS 1883 taxonomy: *scenery* (road
type, lanes, road surface), *environment* (sun, clouds, fog visibility, rain, snow),
*dynamic elements* (object classes with counts and placement ranges) and the *camera*.
Every dimension takes a domain (see ``odd.domains``). Unknown keys and out-of-range
values are errors naming the file, the YAML path and line, and what was expected.
"""
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from oddsuite.errors import SpecError
from oddsuite.odd.domains import Domain, parse_domain

#: COCO-compatible class names that oddsuite can build from its own assets.
BUILTIN_CLASSES = ("car", "truck", "person", "bicycle", "stop sign", "traffic cone")
ROAD_TYPES = ("urban", "rural", "highway")
ROAD_SURFACES = ("dry", "wet", "icy", "snow")
PLANS = ("exhaustive", "k-subsets", "ablation", "sampled", "full")
MODES = ("remove", "isolate", "cutout")
SAMPLERS = ("random", "grid", "halton")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def Dom(lo: float = 0, hi: float = 0, unit: str = "", integer: bool = False, choices: tuple[str, ...] | None = None):
    """The type of a domain field: raw YAML is turned into a validated Domain first."""

    def conv(v: Any) -> Domain:
        if isinstance(v, Domain):
            return v
        return parse_domain(v, lo=lo, hi=hi, unit=unit, integer=integer, choices=choices)

    return Annotated[Domain, BeforeValidator(conv)]


class Scenery(_Strict):
    road_type: Dom(choices=ROAD_TYPES) = Field(default_factory=lambda: parse_domain("urban", choices=ROAD_TYPES))
    lanes: Dom(1, 6, "lanes", integer=True) = Field(default_factory=lambda: parse_domain(2, lo=1, hi=6, integer=True, unit="lanes"))
    lane_width_m: Dom(2.5, 5.0, "m") = Field(default_factory=lambda: parse_domain(3.5, lo=2.5, hi=5.0, unit="m"))
    road_surface: Dom(choices=ROAD_SURFACES) = Field(default_factory=lambda: parse_domain("dry", choices=ROAD_SURFACES))
    clutter: Dom(0.0, 3.0, "x (scenery density multiplier)") = Field(default_factory=lambda: parse_domain(1.0, lo=0.0, hi=3.0, unit="x"))



class Environment(_Strict):
    sun_elevation_deg: Dom(-90, 90, "deg") = Field(default_factory=lambda: parse_domain(45.0, lo=-90, hi=90, unit="deg"))
    sun_azimuth_deg: Dom(0, 360, "deg") = Field(default_factory=lambda: parse_domain(135.0, lo=0, hi=360, unit="deg"))
    cloud_cover: Dom(0, 1, "fraction") = Field(default_factory=lambda: parse_domain(0.2, lo=0, hi=1, unit="fraction"))
    fog_visibility_m: Dom(5, 100000, "m") = Field(default_factory=lambda: parse_domain(10000.0, lo=5, hi=100000, unit="m"))
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
    #: a user mesh (OBJ/GLB/STL), relative to the spec file; its longest extent is scaled to `size_m`
    mesh: Optional[str] = None
    size_m: Optional[float] = Field(None, gt=0, le=50)
    #: COCO-style name the class reports as (defaults to the key)
    name: Optional[str] = None



class Permutations(_Strict):
    plan: Literal["exhaustive", "k-subsets", "ablation", "sampled", "full"] = "ablation"
    k: int = Field(2, ge=1, le=16, description="largest subset size for k-subsets")
    n: int = Field(16, ge=1, le=100000, description="number of subsets for sampled")
    max_subsets: int = Field(256, ge=1, le=1 << 20, description="exhaustive refuses scenes with more subsets")
    modes: tuple[Literal["remove", "isolate", "cutout"], ...] = ("remove",)
    renderer: Literal["exact", "composite"] = "exact"


class Render(_Strict):
    """How images are rendered. Labels (instance ids, boxes, visible fractions) always come
    from the rasterizer's ID pass of the same Scene, so they do not depend on the engine."""

    engine: Literal["raster", "cycles"] = "raster"
    samples: int = Field(32, ge=1, le=65536, description="cycles: path-traced samples per pixel")
    denoise: bool = Field(True, description="cycles: Open Image Denoise on the final samples")
    supersample: int = Field(1, ge=1, le=4, description="raster: render k×k pixels per pixel and average")
    threads: int = Field(0, ge=0, le=1024, description="cycles CPU threads (0: one per core)")
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="cycles: gpu (CUDA/OptiX/HIP/oneAPI) when auto finds one")

    @model_validator(mode="after")
    def _engine_options(self) -> "Render":
        if self.engine == "cycles" and self.supersample != 1:
            raise ValueError("supersample applies to the raster engine; cycles anti-aliases through its samples")
        return self


class Variant(_Strict):
    """An environmental variant: overrides applied to a scene's sampled environment."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    sun_elevation_deg: Optional[float] = Field(None, ge=-90, le=90)
    sun_azimuth_deg: Optional[float] = Field(None, ge=0, le=360)
    cloud_cover: Optional[float] = Field(None, ge=0, le=1)
    fog_visibility_m: Optional[float] = Field(None, ge=5, le=100000)
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
    render: Render = Field(default_factory=Render)
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
        """The user mesh of class ``key``, resolved relative to the spec file, refused outside it."""
        oc = self.objects[key]
        if oc.mesh is None:
            return None
        base = Path(self.source_path or ".").resolve().parent
        p = (base / oc.mesh).resolve()
        if base not in p.parents:
            raise SpecError(f"{self.source_path}: objects.{key}.mesh: {oc.mesh!r} resolves outside the spec's folder {base}")
        if not p.is_file():
            raise SpecError(f"{self.source_path}: objects.{key}.mesh: file {p} does not exist")
        if p.suffix.lower() not in (".obj", ".glb", ".gltf", ".stl", ".ply"):
            raise SpecError(f"{self.source_path}: objects.{key}.mesh: expected an OBJ/GLB/GLTF/STL/PLY file, got {p.name}")
        return p




# --------------------------------------------------------------------------- loading


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict:
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[path + (key,)] = k.start_mark.line + 1
            _lines(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _lines(v, path + (i,), out)
    return out


def _line_of(lines: dict, loc: tuple) -> Optional[int]:
    loc = tuple(x for x in loc if not (isinstance(x, str) and x.startswith("function-")))
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def parse_spec(text: str, source: str = "<string>") -> OddSpec:
    """Parse and validate spec text; ``source`` names the file in error messages."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top (name, objects, …), got {type(data).__name__}")
    lines = _lines(node) if node is not None else {}
    try:
        spec = OddSpec.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(x) for x in loc if not (isinstance(x, str) and x.startswith("function-"))) or "(top)"
            line = _line_of(lines, loc)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
                parent = loc[:-1]
                allowed = _allowed_keys(parent)
                if allowed:
                    msg += f" (expected one of: {', '.join(allowed)})"
            elif err["type"] == "missing":
                msg = "required key is missing"
            msg = msg.removeprefix("Value error, ")
            msgs.append(f"{source}:{line}: {where}: {msg}" if line else f"{source}: {where}: {msg}")
        raise SpecError("invalid ODD spec\n  " + "\n  ".join(msgs)) from None
    spec = spec.model_copy(update={"source_path": source, "source_text": text})
    for key in spec.objects:
        spec.mesh_path(key)  # user meshes must exist, inside the spec's folder
    return spec


def _submodel(ann: Any) -> Any:
    for cand in (ann, *getattr(ann, "__args__", ())):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _allowed_keys(parent: tuple) -> list[str]:
    """The keys a mapping at YAML path ``parent`` accepts (for 'unknown key' messages)."""
    model: Any = OddSpec
    for part in parent:
        if isinstance(part, int):
            continue
        if model == "objects":  # a class name inside `objects:`
            model = ObjectClass
            continue
        if not (isinstance(model, type) and part in model.model_fields):
            return []
        model = "objects" if (model is OddSpec and part == "objects") else _submodel(model.model_fields[part].annotation)
    if not isinstance(model, type):
        return []
    return [k for k in model.model_fields if k not in ("source_path", "source_text")]


def load_spec(path: str | Path) -> OddSpec:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{p}: not UTF-8 text: {e}") from None
    return parse_spec(text, source=str(p))

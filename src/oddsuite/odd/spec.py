"""The ODD spec: YAML → typed, validated ``OddSpec``.

Dimensions follow the ISO 34503 / ASAM OpenODD / PAS 1883 taxonomy: *scenery* (road
type, lanes, road surface), *environment* (sun, clouds, fog visibility, rain, snow),
*dynamic elements* (object classes with counts and placement ranges), the *camera* (its
pose and image size) and, optionally, its *sensor* (exposure, tone mapping, noise, blur,
vignetting, JPEG: not in ISO 34503's taxonomy, see ``odd.effects``).
Every dimension takes a domain (see ``odd.domains``). Unknown keys and out-of-range
values are errors naming the file, the YAML path and line, and what was expected
(``odd.load`` reads the YAML and runs the checks that need more than one field).
"""
import hashlib
from functools import lru_cache, partial
from math import comb
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator

from oddsuite.odd import effects
from oddsuite.odd.acceptance import Criterion
from oddsuite.odd.domains import Domain, parse_domain
from oddsuite.odd.effects import ROAD_SURFACES  # noqa: F401 - re-exported: part of the spec vocabulary

#: COCO-compatible class names that oddsuite can build from its own assets.
BUILTIN_CLASSES = ("car", "truck", "person", "bicycle", "stop sign", "traffic cone")
ROAD_TYPES = ("urban", "rural", "highway")
PLANS = ("exhaustive", "k-subsets", "ablation", "sampled", "full")
MODES = ("remove", "isolate", "cutout")


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


def _dom_field(default: Any, **kw: Any) -> tuple[Any, Any]:
    """(annotation, Field) of a domain field: its type parses raw YAML, its default is the
    same parse of ``default``."""
    return Dom(**kw), Field(default_factory=partial(parse_domain, default, **kw))


#: the fields of each spec section that no effect declares, in sampling order
_STATIC: dict[str, dict[str, tuple[Any, Any]]] = {
    "scenery": {
        "road_type": _dom_field("urban", choices=ROAD_TYPES),
        "lanes": _dom_field(2, lo=1, hi=6, unit="lanes", integer=True),
        "lane_width_m": _dom_field(3.5, lo=2.5, hi=5.0, unit="m"),
        "clutter": _dom_field(1.0, lo=0.0, hi=3.0, unit="x", note="roadside density; 0 = no buildings, poles or trees"),
    },
    "environment": {},
    "camera": {
        "height_m": _dom_field(1.5, lo=0.2, hi=10, unit="m"),
        "pitch_deg": _dom_field(-3.0, lo=-45, hi=45, unit="deg"),
        "fov_deg": _dom_field(60.0, lo=10, hi=150, unit="deg"),
        "width": (int, Field(640, ge=32, le=4096)),
        "height": (int, Field(480, ge=32, le=4096)),
    },
    "sensor": {},
}


def _dim_kw(d: effects.Dimension) -> dict[str, Any]:
    if d.choices is not None:
        return {"choices": d.choices}
    return {"lo": d.lo, "hi": d.hi, "unit": d.unit, "integer": d.integer, "note": d.note}


@lru_cache(maxsize=8)
def _section_model(group: str, version: int) -> type[BaseModel]:
    fields = list(_STATIC[group].items())
    for d in effects.dimensions(group):
        at = next((i + 1 for i, (n, _) in enumerate(fields) if n == d.after), len(fields))
        fields.insert(at, (d.name, _dom_field(d.default, **_dim_kw(d))))
    return create_model(group.capitalize(), __base__=_Strict, __module__=__name__, **dict(fields))


def section_model(group: str) -> type[BaseModel]:
    """The model of spec section ``group`` (scenery, environment, camera, sensor): its own fields
    and the dimensions the declared effects (``odd.effects``) add to it."""
    return _section_model(group, effects.version())


def _override_type(d: effects.Dimension) -> tuple[Any, Any]:
    if d.choices is not None:
        return Optional[Literal[d.choices]], None  # type: ignore[valid-type]
    return Optional[int if d.integer else float], Field(None, ge=d.lo, le=d.hi, description=d.note or None)


@lru_cache(maxsize=8)
def _overrides_model(version: int) -> type[BaseModel]:
    fields: dict[str, Any] = {d.name: _override_type(d) for d in effects.dimensions() if d.overridable}
    fields.update({s.name: (Optional[bool], None) for s in effects.switches()})
    return create_model("VariantOverrides", __base__=_Strict, __module__=__name__, **fields)


def overrides_model() -> type[BaseModel]:
    """What a variant may set: every overridable effect dimension and every switch."""
    return _overrides_model(effects.version())


class Variant(_Strict):
    """An environmental variant: overrides applied to a scene's sampled environment.
    The keys it takes come from the declared effects (``overrides_model``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        raw = {k: v for k, v in data.items() if k != "name"}
        if set(raw) == {"overrides"} and isinstance(raw["overrides"], dict):  # Variant(**v.model_dump())
            raw = raw["overrides"]
        given = overrides_model().model_validate(raw)
        out = {"overrides": given.model_dump(exclude_none=True)}
        if "name" in data:
            out["name"] = data["name"]
        return out

    def get(self, key: str) -> Any:
        """The override of ``key``, or None when this variant keeps the sampled value."""
        return self.overrides.get(key)


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
    sampler: str = Field("random", description="a registered sampler (odd.samplers): random, grid, halton, …")
    grid_levels: int = Field(3, ge=2, le=64, description="points per range dimension for the grid sampler")
    strength: int = Field(2, ge=2, le=3, description="t of the covering sampler: every allowed t-tuple of levels")
    min_visible: float = Field(0.1, ge=0.0, le=1.0)
    scenery: Any = Field(default_factory=lambda: section_model("scenery")())
    environment: Any = Field(default_factory=lambda: section_model("environment")())
    camera: Any = Field(default_factory=lambda: section_model("camera")())
    sensor: Any = Field(default_factory=lambda: section_model("sensor")())
    objects: dict[str, ObjectClass]
    rules: tuple[Rule, ...] = ()
    permutations: Permutations = Field(default_factory=Permutations)
    variants: tuple[Variant, ...] = (Variant(name="base"),)
    render: Render = Field(default_factory=Render)
    max_placement_tries: int = Field(200, ge=1, le=100000)
    #: acceptance criteria the detector must meet (``odd.acceptance``); optional
    acceptance: tuple[Criterion, ...] = ()
    #: the record of a falsification search, written by ``oddsuite search`` into its suite's
    #: spec and replayed by ``sampler: search`` (checked there: ``odd.samplers.search``)
    search: Optional[dict[str, Any]] = None

    # set by load_spec, not by the YAML
    source_path: Optional[str] = Field(None, exclude=True)
    source_text: Optional[str] = Field(None, exclude=True)

    @field_validator("scenery", "environment", "camera", "sensor", mode="before")
    @classmethod
    def _section(cls, v: Any, info: ValidationInfo) -> BaseModel:
        model = section_model(info.field_name)  # type: ignore[arg-type]
        return v if isinstance(v, model) else model.model_validate(v)

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: str) -> str:
        from oddsuite.odd.samplers import SAMPLERS  # the registry imports this module: look it up when used

        if v not in SAMPLERS:
            raise ValueError(f"unknown sampler {v!r}; expected one of: {', '.join(SAMPLERS)}")
        return v

    @model_validator(mode="after")
    def _search(self) -> "OddSpec":
        if self.search is not None and self.sampler != "search":
            raise ValueError("a `search:` block is replayed by `sampler: search` only (oddsuite search writes both)")
        return self

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

    @property
    def sensor_given(self) -> bool:
        """Whether the spec models the camera's sensor: it has a ``sensor:`` section or a
        variant sets a sensor dimension. When not, no sensor dimension is sampled, recorded
        or applied: the camera is ideal and the suite is what it was before sensors existed."""
        names = {d.name for d in effects.dimensions("sensor")}
        return "sensor" in self.model_fields_set or any(names & set(v.overrides) for v in self.variants)

    def dimensions(self) -> list[tuple[str, Domain]]:
        """(path, domain) of every global dimension (scenery, environment, camera, object
        counts, then sensor when ``sensor_given``), in a fixed order: the order samplers
        fill them in. The sensor comes last so that a spec without one samples as before."""
        dims: list[tuple[str, Domain]] = []
        for g in ("scenery", "environment", "camera"):
            dims += self._section_dims(g)
        for key, oc in self.objects.items():
            dims.append((f"objects.{key}.count", oc.count))
        if self.sensor_given:
            dims += self._section_dims("sensor")
        return dims

    def _section_dims(self, group: str) -> list[tuple[str, Domain]]:
        model = getattr(self, group)
        return [(f"{group}.{name}", getattr(model, name)) for name in type(model).model_fields
                if isinstance(getattr(model, name), Domain)]

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

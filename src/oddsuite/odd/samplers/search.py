"""``search``: the scenes a falsification search chose (``oddsuite search``), replayed.

A search (``oddsuite.studies.search``) proposes points of the unit cube with an optimiser,
renders each feasible one as a scene and scores the detector on it. It then writes the
suite's spec: the user's spec with ``sampler: search`` and a ``search:`` block that holds,
per scene, the unit point of every free dimension (``points``), the score the search saw
(``scores``) and which scenes get their ROI permutations and variants (``expanded``).
Scene ``i`` of such a spec is point ``i``, mapped by each dimension's ``Domain.at(u)``,
as every other unit-cube sampler; so ``sample_scene(spec, seed, i)`` re-makes a searched
scene anywhere, and the suite's ``spec.yaml`` (hashed in its manifest) is the record of
the search that ``verify`` and resume check.

A search moves the spec's free global dimensions and, unless told not to, every object
slot's placement, asset family and look as well (``object_dimensions``: distance, lateral
offset and heading through the class's own domains, the family of a built-in asset and
which of ``odd.families.LOOKS`` fixed appearances of the family it wears),
as VerifAI searches object positions: which car is where decides occlusion and what the
detector sees, so a search that leaves it to the scene seed scores noise. Slot ``j`` of
class ``key`` is the ``j``-th object of that class in the scene (used only when the
scene's count is above ``j``); ``Sampler.placement`` hands its coordinates to
``sample_scene``, which otherwise draws them from the scene's Generator as usual.

The block is checked when the spec loads (``problems``): its dimensions must be the
spec's free dimensions in order (followed by its object dimensions, when searched),
every point must lie in [0, 1) and keep the spec's rules (a searched scene never breaks
a rule: ``sample_scene`` would otherwise redraw it at random), and the scores and
expanded scenes must match the points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oddsuite.errors import SpecError
from oddsuite.odd.domains import Domain
from oddsuite.odd.families import ASSET_FAMILIES, LOOKS
from oddsuite.odd.rules import broken_rule
from oddsuite.odd.samplers.base import UnitSampler
from oddsuite.odd.spec import OddSpec, Variant

#: the columns of ``search.scores`` (one row per scene)
SCORE_COLUMNS = ("objective", "severity", "rois_scored", "rois_failed", "lowest_iou")
#: the objectives a search maximises (``studies.search.OBJECTIVES`` computes them) and what each measures
OBJECTIVE_TEXT = {
    "severity": "share of the scored ROIs missed or mislabelled; ties broken by the lowest IoU",
    "failures": "number of scored ROIs missed or mislabelled; ties broken by the lowest IoU",
    "lowest-iou": "1 - the lowest IoU of a scored ROI (a miss counts its best overlap above conf)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SearchSource(_Strict):
    """The spec the search ran on: its file name, SHA-256 and own sampler."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sampler: str


class SearchDetector(_Strict):
    """The detector the search scored (its name and weights' SHA-256, when known)."""

    name: str
    sha256: Optional[str] = None


class SearchRecord(_Strict):
    """The ``search:`` block of a spec written by ``oddsuite search`` (docs/FORMAT.md).

    ``points[i]``: the unit point of scene ``i``, one coordinate per entry of
    ``dimensions`` (the spec's free dimensions, in ``OddSpec.dimensions`` order);
    ``scores[i]``: what the search measured on scene ``i``'s full image, columns
    ``SCORE_COLUMNS`` (lowest IoU is null when no ROI was scored); ``expanded``: the scene
    ids rendered with their ROI permutations and every variant (the others: their full
    scene in the searched variant only); ``infeasible``: proposals that broke a rule and
    were pruned without a render."""

    source: SearchSource
    detector: SearchDetector
    optimizer: Literal["tpe", "cmaes", "gp"]
    seed: int = Field(ge=0)
    batch: int = Field(ge=1)
    startup: int = Field(ge=0)
    #: how the startup (and exploration) proposals were chosen: ``sobol``, points of a
    #: scrambled Sobol sequence over every searched coordinate; ``halton`` in a record
    #: written before that, the spec's halton points in the global dimensions
    design: Literal["halton", "sobol"] = "halton"
    #: the share of proposals after the startup that are exploration ones (0 in a record
    #: written before exploration existed)
    explore: float = Field(0.0, ge=0, lt=1)
    objective: Literal["severity", "failures", "lowest-iou"]
    classes: tuple[str, ...] = ()
    conf: float = Field(ge=0, le=1)
    iou: float = Field(ge=0, le=1)
    fail_above: float = Field(ge=0, le=1)
    expand: Literal["failing", "all"]
    variant: str
    infeasible: int = Field(ge=0)
    dimensions: tuple[str, ...]
    points: tuple[tuple[float, ...], ...]
    scores: tuple[tuple[Optional[float], ...], ...]
    expanded: tuple[int, ...] = ()


def search_record(spec: OddSpec) -> SearchRecord | None:
    """The spec's ``search:`` block as a SearchRecord (None when it has none). Raises
    SpecError when the block does not validate (``problems`` reports it with its line).
    Validated once per spec text: every scene of a suite asks for it."""
    if spec.search is None:
        return None
    if spec.source_text is not None and spec.source_text in _RECORDS:
        return _RECORDS[spec.source_text]
    try:
        rec = SearchRecord.model_validate(spec.search)
    except ValidationError as e:
        raise SpecError(f"{spec.source_path}: search: {e}") from None
    if spec.source_text is not None:
        _RECORDS.clear()  # one search at a time per process: keep the last only
        _RECORDS[spec.source_text] = rec
    return rec


_RECORDS: dict[str, SearchRecord] = {}


def exploring_trials(n: int, startup: int, explore: float) -> list[bool]:
    """Which of the first ``n`` trials of a search are not the optimiser's proposals: the
    ``startup`` ones, then, after them, the exploration ones:
    trial ``startup + k`` when ``floor((k + 1) * explore) > floor(k * explore)``
    (``explore`` exactly as written: one in every ``1 / explore``, evenly spread; none when
    0). Both are chosen without looking at any score."""
    e = Fraction(str(explore))
    return [i < startup or (e > 0 and math.floor((i - startup + 1) * e) > math.floor((i - startup) * e))
            for i in range(n)]


def free_dimensions(spec: OddSpec) -> list[tuple[int, str]]:
    """(index in ``spec.dimensions()``, path) of every dimension that is not fixed: the
    coordinates a search moves."""
    return [(i, p) for i, (p, d) in enumerate(spec.dimensions()) if not d.is_fixed]


#: the placement fields of an object slot a search moves (each through the class's domain)
PLACEMENT_FIELDS = ("distance_m", "lateral_m", "heading_deg")


@dataclass(frozen=True)
class ObjectDimension:
    """One searched coordinate of one object slot: ``field`` (a ``PLACEMENT_FIELDS`` name
    or ``family``) of the ``slot``-th object (0-based) of class ``key``; ``path`` is how
    the search block and the report name it, e.g. ``objects.car[0].distance_m``."""

    path: str
    key: str
    slot: int
    field: str
    domain: Domain


def object_dimensions(spec: OddSpec, looks: bool = True) -> list[ObjectDimension]:
    """The object slots' searchable coordinates, class by class (spec order), slot by slot
    up to the class's largest count: each placement field whose domain is not fixed, then,
    for a built-in class with families (``odd.families.ASSET_FAMILIES``; a user mesh has
    none), the asset family (all equally likely, as ``generate`` draws them) and, with
    ``looks``, the look (``odd.families.LOOKS``: which fixed appearance of the family;
    records written before looks were searched lack it)."""
    out: list[ObjectDimension] = []
    for key, oc in spec.objects.items():
        families = ASSET_FAMILIES.get(key) if oc.mesh is None else None
        for slot in range(int(oc.count.largest)):
            for name in PLACEMENT_FIELDS:
                d = getattr(oc, name)
                if not d.is_fixed:
                    out.append(ObjectDimension(f"objects.{key}[{slot}].{name}", key, slot, name, d))
            if families and len(families) > 1:
                fam = Domain("choices", options=tuple(families), weights=(1.0,) * len(families))
                out.append(ObjectDimension(f"objects.{key}[{slot}].asset", key, slot, "family", fam))
            if families and looks:
                look = Domain("choices", options=tuple(range(LOOKS)), weights=(1.0,) * LOOKS)
                out.append(ObjectDimension(f"objects.{key}[{slot}].look", key, slot, "look", look))
    return out


def _object_layouts(spec: OddSpec) -> list[list[ObjectDimension]]:
    """The object dimensions a record may hold after the free ones: none, all of them, or
    all but the looks (a record written before looks were searched)."""
    return [[], object_dimensions(spec), object_dimensions(spec, looks=False)]


def searched_objects(spec: OddSpec, record: "SearchRecord") -> list[ObjectDimension]:
    """The object dimensions a search record holds (after the free global dimensions):
    one of ``_object_layouts``, matched by path (``problems`` reports any other list)."""
    held = list(record.dimensions[len(free_dimensions(spec)):])
    return next((ods for ods in _object_layouts(spec) if [od.path for od in ods] == held), object_dimensions(spec))


def searched_variant(spec: OddSpec) -> Variant | None:
    """The variant a search renders and scores: the first one that overrides nothing
    (normally ``base``), so the sampled dimensions are what the detector sees. None when
    every variant overrides something."""
    return next((v for v in spec.variants if not v.overrides), None)


def scene_scope(spec: OddSpec, scene_id: int, modes: Sequence[str]) -> tuple[tuple[Variant, ...], tuple[str, ...]]:
    """The variants and masking modes scene ``scene_id`` is rendered with: all of them,
    except in a search suite, where a scene that is not ``expanded`` keeps only its full
    scene in the searched variant (the image the search scored)."""
    rec = spec.search
    if rec is None or scene_id in set(rec.get("expanded") or ()):
        return tuple(spec.variants), tuple(modes)
    v = searched_variant(spec)
    return ((v,) if v is not None else tuple(spec.variants[:1])), ()


class SearchSampler(UnitSampler):
    name = "search"

    def __init__(self, spec: OddSpec, seed: int):
        super().__init__(spec, seed)
        self.record = search_record(spec)
        self.free = [i for i, _ in free_dimensions(spec)]
        self.objects = searched_objects(spec, self.record) if self.record is not None else []

    def placement(self, scene_id: int, key: str, slot: int) -> dict[str, Any] | None:
        if not self.objects:
            return None
        self.unit(scene_id, None)  # the same error for a scene that was not searched
        point = self.record.points[scene_id][len(self.free):]  # type: ignore[union-attr]
        out: dict[str, Any] = {}
        for od, u in zip(self.objects, point):
            if od.key == key and od.slot == slot:
                out[od.field] = od.domain.at(u) if od.field in ("family", "look") else float(u)
        return out

    def unit(self, scene_id: int, rng: np.random.Generator) -> Sequence[float]:
        if self.record is None or not 0 <= scene_id < len(self.record.points):
            n = 0 if self.record is None else len(self.record.points)
            raise SpecError(f"{self.spec.source_path}: search: scene {scene_id} was not searched (the search block "
                            f"holds {n} points); a search suite has exactly its searched scenes")
        u = [0.5] * len(self.dims)  # a fixed domain gives its value at any u
        for i, ui in zip(self.free, self.record.points[scene_id][:len(self.free)]):
            u[i] = float(ui)
        return u

    @classmethod
    def problems(cls, spec: OddSpec) -> list[tuple[tuple, str]]:
        if spec.search is None:
            return [(("sampler",), "the search sampler replays the points `oddsuite search` wrote into its suite's "
                                   "spec.yaml (a `search:` block); this spec has none: use random, grid or halton, "
                                   "or run `oddsuite search`")]
        try:
            rec = SearchRecord.model_validate(spec.search)
        except ValidationError as e:
            return [(("search", *map(_key, err["loc"])), err["msg"].removeprefix("Value error, ")) for err in e.errors()]
        return _record_problems(spec, rec)


def _key(x: Any) -> Any:
    return x if isinstance(x, (str, int)) else str(x)


def _record_problems(spec: OddSpec, rec: SearchRecord) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    free = [p for _, p in free_dimensions(spec)]
    layouts = [free + [od.path for od in ods] for ods in _object_layouts(spec)]
    if list(rec.dimensions) not in layouts:
        want = layouts[1] if len(rec.dimensions) > len(free) else free
        missing = [d for d in want if d not in rec.dimensions]
        extra = [d for d in rec.dimensions if d not in want]
        what = "; ".join(x for x in (f"missing {missing}" if missing else "", f"not in the spec {extra}" if extra else "",
                                      "" if missing or extra else "in another order") if x)
        return [(("search", "dimensions"), f"the searched dimensions are not the spec's free dimensions (followed by "
                                           f"its object dimensions, when searched): {what}. The spec or the block "
                                           f"was changed after the search; run the search again")]
    width = len(rec.dimensions)
    if searched_variant(spec) is None or searched_variant(spec).name != rec.variant:
        out.append((("search", "variant"), f"the searched variant {rec.variant!r} is not the spec's first variant "
                                           f"without overrides"))
    if len(rec.scores) != len(rec.points):
        out.append((("search", "scores"), f"{len(rec.scores)} score rows for {len(rec.points)} points; expected one "
                                          f"per point"))
    dims = spec.dimensions()
    idx = [i for i, _ in free_dimensions(spec)]
    for k, pt in enumerate(rec.points):
        if len(pt) != width:
            out.append((("search", "points", k), f"{len(pt)} coordinates; expected {width} (one per dimension)"))
            continue
        bad_u = next((j for j, u in enumerate(pt) if not 0.0 <= u < 1.0), None)
        if bad_u is not None:
            out.append((("search", "points", k), f"every coordinate must lie in [0, 1); coordinate {bad_u} "
                                                 f"({rec.dimensions[bad_u]}) is {pt[bad_u]}"))
            continue
        u = [0.5] * len(dims)
        for i, ui in zip(idx, pt[:len(free)]):
            u[i] = ui
        values = {p: d.at(x) for (p, d), x in zip(dims, u)}
        bad = broken_rule(spec.rules, values)
        if bad is not None:
            out.append((("search", "points", k), f"breaks rules.{bad}; a searched scene keeps every rule"))
    for k, row in enumerate(rec.scores):
        if len(row) != len(SCORE_COLUMNS) or any(v is not None and not math.isfinite(v) for v in row):
            out.append((("search", "scores", k), f"expected [{', '.join(SCORE_COLUMNS)}], finite numbers"))
    ex = list(rec.expanded)
    if ex != sorted(set(ex)) or any(not 0 <= i < len(rec.points) for i in ex):
        out.append((("search", "expanded"), f"expected distinct scene ids in increasing order, each below "
                                            f"{len(rec.points)}"))
    return out

"""Acceptance criteria of an ODD spec: the optional ``acceptance:`` block, each criterion a
requirement the detector must meet on a suite of the spec, traced by its id and text::

    acceptance:
      - id: REQ-PED-01
        text: "Pedestrians are detected in at least 90% of cases in every sun-elevation class"
        metric: hit_rate          # see METRICS
        class: person             # optional: one class of the spec
        min: 0.9                  # or max: (exactly one of the two)
        per: environment.sun_elevation_deg   # optional: judged in every slice of a dimension
        variant: base             # optional: only the images of one variant

``Criterion`` types the fields (unknown keys are errors with their line); ``acceptance_problems``
checks what needs the whole spec (unknown metric, class, dimension or variant, a threshold
out of range, both or neither of min and max, a repeated id), each with the YAML path of the
field at fault, so that the loader names its line. The verdicts themselves are in
``report.verdicts``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the spec module imports this one
    from oddsuite.odd.spec import OddSpec


@dataclass(frozen=True)
class Metric:
    """What a criterion's ``metric`` names: ``kind`` says how it is judged (``rate``: a
    proportion with a Wilson interval; ``bootstrap``: a seeded image or unit bootstrap;
    ``point``: a fact of the suite, compared as it is); ``lo``/``hi``: the values a
    threshold may take (open at a rate's ends: no finite sample shows a rate of 0 or 1);
    ``classes``: whether ``class:`` applies; ``unit``: what its count counts."""

    name: str
    short: str
    text: str
    kind: str
    lo: float = 0.0
    hi: float = 1.0
    open_ends: bool = True
    classes: bool = True
    unit: str = "images"


#: every metric a criterion may name
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("hit_rate", "hit rate", "hit rate of the ROIs in full-scene images", "rate", unit="ROIs"),
    Metric("failure_rate", "failure rate", "failure rate (miss or mislabel) of the ROIs in full-scene images", "rate",
           unit="ROIs"),
    Metric("map", "mAP", "full-scene COCO mAP@[.5:.95]", "bootstrap"),
    Metric("ap50", "AP50", "full-scene COCO AP50", "bootstrap"),
    Metric("context_accuracy", "context accuracy", "context accuracy (metrics.md §3) over permutation images",
           "bootstrap", unit="ROIs"),
    Metric("context_fp_rate", "context-induced FP rate",
           "share of scored multi-ROI images with a context-induced false positive (§4)", "rate", classes=False),
    Metric("fp_per_image", "FP per image", "false positives per full-scene image (§4b)", "bootstrap", lo=0.0,
           hi=float("inf"), open_ends=False),
    Metric("coverage", "coverage", "t-way coverage of the ODD (§8)", "point", open_ends=False, classes=False,
           unit="tuples"),
)}
#: ``per:`` may also name the suite's environment variant
PER_VARIANT = "variant"


class Criterion(BaseModel):
    """One acceptance criterion (see the module doc). ``ways``/``k``: t and the hit count
    of a ``coverage`` criterion."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=64)
    text: str = Field(min_length=1, max_length=2000)
    metric: str
    class_: Optional[str] = Field(None, alias="class")
    min: Optional[float] = None
    max: Optional[float] = None
    per: Optional[str] = None
    variant: Optional[str] = None
    ways: int = Field(2, ge=1, le=3)
    k: int = Field(1, ge=1, le=1_000_000)

    @property
    def threshold(self) -> tuple[str, float]:
        """("min", value) or ("max", value)."""
        return ("min", float(self.min)) if self.min is not None else ("max", float(self.max))  # type: ignore[arg-type]

    @property
    def info(self) -> Metric:
        return METRICS[self.metric]


def _threshold_problems(c: Criterion) -> list[tuple[tuple, str]]:
    m = METRICS[c.metric]
    if c.min is None and c.max is None:
        return [((), f"a criterion needs a threshold: min (the {m.text} must reach it) or max (it must not exceed it)")]
    if c.min is not None and c.max is not None:
        return [(("max",), "give one threshold, min or max, not both (write two criteria for a band)")]
    key, v = c.threshold
    if c.metric == "coverage" and key == "max":
        return [(("max",), "coverage takes min (the share of allowed tuples that must be hit)")]
    inside = (m.lo < v < m.hi) if m.open_ends else (m.lo <= v <= m.hi)
    if not inside:
        if m.open_ends:
            why = (f"{c.metric} is judged at the end of its 95% interval, which never reaches {m.lo:g} or {m.hi:g}: "
                   f"expected a value strictly between them")
        else:
            why = f"expected {m.lo:g} to {m.hi:g}"
        return [((key,), f"{v:g} is out of range for {c.metric}; {why}")]
    return []


def acceptance_problems(spec: "OddSpec") -> list[tuple[tuple, str]]:
    """Problems of the spec's acceptance criteria that need the whole spec: (YAML path, message)."""
    out: list[tuple[tuple, str]] = []
    dims = [p for p, _ in spec.dimensions()]
    classes = spec.class_names
    variants = [v.name for v in spec.variants]
    seen: dict[str, int] = {}
    for i, c in enumerate(spec.acceptance):
        at = ("acceptance", i)
        if c.id in seen:
            out.append((at + ("id",), f"id {c.id!r} is already used by criterion {seen[c.id]}; ids must be unique"))
        seen.setdefault(c.id, i)
        if c.metric not in METRICS:
            out.append((at + ("metric",), f"unknown metric {c.metric!r}; expected one of: {', '.join(METRICS)}"))
            continue
        m = METRICS[c.metric]
        out.extend((at + p, msg) for p, msg in _threshold_problems(c))
        if c.class_ is not None:
            if not m.classes:
                out.append((at + ("class",), f"{c.metric} is not computed per class; remove 'class'"))
            elif c.class_ not in classes:
                out.append((at + ("class",), f"unknown class {c.class_!r}; the spec's classes: {', '.join(classes)}"))
        if c.per is not None:
            if c.metric == "coverage":
                out.append((at + ("per",), "coverage is judged over the whole ODD; remove 'per'"))
            elif c.per != PER_VARIANT and c.per not in dims:
                out.append((at + ("per",), f"unknown dimension {c.per!r}; expected '{PER_VARIANT}' or one of: "
                                           f"{', '.join(dims)}"))
        if c.variant is not None:
            if c.metric == "coverage":
                out.append((at + ("variant",), "coverage counts every full-scene image; remove 'variant'"))
            elif c.variant not in variants:
                out.append((at + ("variant",), f"unknown variant {c.variant!r}; the spec's variants: "
                                               f"{', '.join(variants)}"))
            else:
                from oddsuite.odd.coverage import odd_coverage  # it imports the spec, which imports this module

                beyond = odd_coverage(spec).beyond(next(v for v in spec.variants if v.name == c.variant))
                if beyond:
                    out.append((at + ("variant",), f"variant {c.variant!r} sets {', '.join(beyond)}, outside the "
                                                   f"spec's domains: its images lie outside the ODD and are never "
                                                   f"judged"))
        for key in ("ways", "k"):
            if key in c.model_fields_set and c.metric != "coverage":
                out.append((at + (key,), f"'{key}' belongs to a coverage criterion, not to {c.metric}"))
    return out


def describe(c: Criterion) -> str:
    """``hit rate of person ≥ 0.9, in every slice of environment.sun_elevation_deg``."""
    key, v = c.threshold
    what = METRICS[c.metric].short if c.metric != "coverage" else f"{c.ways}-way coverage of the ODD (k = {c.k})"
    s = what + (f" of {c.class_}" if c.class_ else "") + f" {'≥' if key == 'min' else '≤'} {v:g}"
    if c.variant:
        s += f", images of variant {c.variant}"
    if c.per:
        s += f", in every slice of {c.per}"
    return s


def as_dict(c: Criterion) -> dict[str, Any]:
    """The criterion as written in the spec (for evidence.json)."""
    return c.model_dump(by_alias=True, exclude_none=True, exclude_defaults=False)

"""Scene conditions as slicing dimensions: every condition column of the outcome table is
cut into a few readable levels.

- ODD dimensions with a taxonomy of their own get its classes (``TAXONOMY``): fog
  visibility, rain and snow intensity, sun elevation, ROI distance, visible fraction.
- Categorical columns (class, road surface, variant, mode, illumination, …) and numeric
  columns with few designed levels (subset size, lanes, counts, a value fixed per variant)
  keep their values.
- Other numeric columns (sampled ranges) are cut at their quantiles.

A ``Dimension`` knows its levels and, for every row, the index of its level (``codes``);
``condition_text`` turns a set of levels back into a readable condition such as
``fog_visibility_m < 200 m`` or ``class = person``, which the decision-tree rules use.
"""
from __future__ import annotations

import math
import re
from collections import abc
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oddsuite.metrics.tables import MAX_LEVELS, N_BINS
from oddsuite.odd import effects

INF = math.inf

#: columns of the outcome table that are not scene conditions (identifiers, outcomes,
#: duplicates of another column)
NOT_CONDITIONS = frozenset({
    "image_id", "scene_id", "roi_id", "subset", "file_name", "outcome", "score", "iou", "pred_category",
    "ignore", "not_visible", "category_id", "is_full", "roi.category", "roi.category_id",
    "roi.placement_tries", "failure",
})
#: a categorical column with more levels than this is not a useful slicing dimension
MAX_NOMINAL_LEVELS = 30
#: group prefixes dropped from display names when the short name stays unique
SHORT_PREFIXES = ("environment.", "scenery.", "camera.", "roi.")
#: display names of some columns
DISPLAY = {"category": "class"}

MISSING = "missing"


@dataclass(frozen=True)
class Level:
    """One level of a dimension. Interval levels have bounds (``lo``/``hi``, either may be
    infinite, each closed or open); ordinal and nominal levels have a ``value``.
    ``text``: the condition for this level alone, when it reads better than its bounds."""

    label: str
    lo: float = -INF
    hi: float = INF
    lo_closed: bool = True
    hi_closed: bool = False
    value: Any = None
    text: str | None = None
    missing: bool = False

    def contains(self, x: float) -> bool:
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        return bool(above and below)


@dataclass(frozen=True)
class BinSpec:
    """Taxonomy bins for columns whose name ends with one of ``suffixes``."""

    key: str
    suffixes: tuple[str, ...]
    levels: tuple[Level, ...]
    unit: str
    source: str


def _lv(label: str, lo: float, hi: float, *, lo_closed: bool = True, hi_closed: bool = False,
        text: str | None = None) -> Level:
    return Level(label, lo, hi, lo_closed, hi_closed, text=text)


#: bins of result columns that no effect declares (ROI geometry)
_GEOMETRY: tuple[BinSpec, ...] = (
    BinSpec("distance", ("distance_m",), (
        _lv("< 10 m", -INF, 10.0),
        _lv("10–20 m", 10.0, 20.0),
        _lv("20–30 m", 20.0, 30.0),
        _lv("30–50 m", 30.0, 50.0),
        _lv("50–100 m", 50.0, 100.0),
        _lv("≥ 100 m", 100.0, INF),
    ), "m", "distance bins"),
    BinSpec("visible", ("visible_fraction",), (
        _lv("< 0.25 (mostly hidden)", -INF, 0.25),
        _lv("0.25–0.5", 0.25, 0.5),
        _lv("0.5–0.75", 0.5, 0.75),
        _lv("0.75–0.95", 0.75, 0.95),
        _lv("≥ 0.95 (fully visible)", 0.95, INF),
    ), "", "visible fraction bins (occlusion and truncation)"),
)


def _effect_bins() -> tuple[BinSpec, ...]:
    """The taxonomy bins the declared effects give their dimensions (``odd.effects``)."""
    return tuple(
        BinSpec(e.name, (d.name, *d.bin_aliases),
                tuple(_lv(b.label, b.lo, b.hi, lo_closed=b.lo_closed, hi_closed=b.hi_closed, text=b.text) for b in d.bins),
                "°" if d.unit == "deg" else d.unit, d.bins_source)
        for e in effects.EFFECTS.values() for d in e.dims if d.bins)


class _Taxonomy(abc.Sequence):
    """The default bins, read afresh from the effect declarations on every use (so an effect
    declared later has its bins here too), then the ROI geometry bins."""

    def _all(self) -> tuple[BinSpec, ...]:
        return _effect_bins() + _GEOMETRY

    def __getitem__(self, i):  # type: ignore[override]
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())


#: default bins from the ODD taxonomy's own classes (ISO 34503 environment; WMO/AMS fog
#: and precipitation classes; civil twilight at -6°), declared with each effect
TAXONOMY: Sequence[BinSpec] = _Taxonomy()


@dataclass(frozen=True)
class Dimension:
    """A slicing dimension over the rows of one table.

    kind: ``interval`` (binned numeric), ``ordinal`` (few numeric values, ordered) or
    ``nominal`` (categories). ``levels`` are the levels present in the rows, in order;
    ``codes[i]`` is the level index of row ``i``.
    """

    column: str
    name: str
    kind: str
    source: str
    levels: tuple[Level, ...]
    unit: str = ""
    codes: np.ndarray = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    @property
    def ordered(self) -> bool:
        return self.kind in ("interval", "ordinal")

    def labels(self) -> list[str]:
        return [lv.label for lv in self.levels]

    def describe(self) -> dict[str, Any]:
        return {"column": self.column, "name": self.name, "kind": self.kind, "source": self.source,
                "unit": self.unit, "levels": self.labels()}

    # -- readable conditions -------------------------------------------------------------

    def level_text(self, i: int) -> str:
        """The condition 'row is in level i'."""
        return self.condition_text(range(i, i + 1))

    def condition_text(self, allowed: Sequence[int] | range) -> str:
        """The condition 'row is in one of the levels ``allowed``' (indices), readably."""
        idx = sorted(set(int(i) for i in allowed))
        if not idx:
            return f"{self.name} in {{}}"
        if len(idx) == len(self.levels):
            return f"any {self.name}"
        lvs = [self.levels[i] for i in idx]
        contiguous = idx == list(range(idx[0], idx[-1] + 1))
        if self.ordered and contiguous and not any(lv.missing for lv in lvs):
            return self._range_text(idx[0], idx[-1])
        if len(idx) == 1:
            return f"{self.name} = {_fmt_value(lvs[0])}"
        rest = [i for i in range(len(self.levels)) if i not in idx]
        if len(rest) == 1 and not self.ordered:
            return f"{self.name} ≠ {_fmt_value(self.levels[rest[0]])}"
        return f"{self.name} in {{{', '.join(_fmt_value(lv) for lv in lvs)}}}"

    def _range_text(self, i: int, j: int) -> str:
        n, u = self.name, (f" {self.unit}" if self.unit and self.unit != "°" else self.unit)
        if self.kind == "ordinal":
            a, b = self.levels[i].value, self.levels[j].value
            last = len(self.levels) - 1 - int(self.levels[-1].missing)
            if i == j:
                return f"{n} = {fmt_num(a)}{u}"
            if i == 0:
                return f"{n} ≤ {fmt_num(b)}{u}"
            if j == last:
                return f"{n} ≥ {fmt_num(a)}{u}"
            return f"{fmt_num(a)} ≤ {n} ≤ {fmt_num(b)}{u}"
        lo_lv, hi_lv = self.levels[i], self.levels[j]
        if i == j and lo_lv.text:
            return lo_lv.text.format(name=n)
        lo, hi = lo_lv.lo, hi_lv.hi
        lo_op = "≥" if lo_lv.lo_closed else ">"
        hi_op = "≤" if hi_lv.hi_closed else "<"
        if lo == -INF and hi == INF:
            return f"any {n}"
        if lo == -INF:
            return f"{n} {hi_op} {fmt_num(hi)}{u}"
        if hi == INF:
            return f"{n} {lo_op} {fmt_num(lo)}{u}"
        lo_op2 = "≤" if lo_lv.lo_closed else "<"
        return f"{fmt_num(lo)} {lo_op2} {n} {hi_op} {fmt_num(hi)}{u}"


def fmt_num(x: Any) -> str:
    """A number for people: integers without a decimal point, others to 3 significant digits."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(f):
        return str(f)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    if abs(f) >= 100:
        return f"{f:.0f}" if abs(f) >= 1000 else f"{f:.1f}"
    return f"{f:.3g}"


def _fmt_value(lv: Level) -> str:
    if lv.value is None:
        return lv.label
    return fmt_num(lv.value) if isinstance(lv.value, (int, float, np.integer, np.floating)) and not isinstance(
        lv.value, (bool, np.bool_)) else str(lv.value)


def _spec_for(column: str) -> BinSpec | None:
    leaf = column.rsplit(".", 1)[-1]
    for spec in TAXONOMY:
        if leaf in spec.suffixes:
            return spec
    return None


def _interval_dimension(column: str, name: str, values: pd.Series, levels: Sequence[Level], unit: str,
                        source: str) -> Dimension:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    codes = np.full(len(x), -1, dtype=np.int64)
    for i, lv in enumerate(levels):
        lo_ok = (x >= lv.lo) if lv.lo_closed else (x > lv.lo)
        hi_ok = (x <= lv.hi) if lv.hi_closed else (x < lv.hi)
        codes[(codes < 0) & lo_ok & hi_ok] = i
    all_levels = list(levels)
    if (codes < 0).any():
        all_levels.append(Level(MISSING, missing=True))
        codes[codes < 0] = len(all_levels) - 1
    return _compact(Dimension(column, name, "interval", source, tuple(all_levels), unit, codes))


def _compact(dim: Dimension) -> Dimension:
    """Keep only the levels that have rows, re-indexing the codes."""
    present = np.unique(dim.codes)
    remap = np.full(len(dim.levels), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return Dimension(dim.column, dim.name, dim.kind, dim.source, tuple(dim.levels[i] for i in present), dim.unit,
                     remap[dim.codes])


def user_levels(edges: Sequence[float], unit: str = "") -> tuple[Level, ...]:
    """Left-closed levels from inner edges: (< e0), [e0, e1), …, (≥ e_last)."""
    e = sorted(float(v) for v in edges)
    if len(set(e)) != len(e) or not e:
        raise ValueError(f"bin edges must be distinct numbers, got {list(edges)}")
    u = f" {unit}" if unit else ""
    bounds = [-INF] + e + [INF]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if lo == -INF:
            label = f"< {fmt_num(hi)}{u}"
        elif hi == INF:
            label = f"≥ {fmt_num(lo)}{u}"
        else:
            label = f"{fmt_num(lo)}–{fmt_num(hi)}{u}"
        out.append(_lv(label, lo, hi))
    return tuple(out)


def _quantile_dimension(column: str, name: str, values: pd.Series, bins: int) -> Dimension:
    x = pd.to_numeric(values, errors="coerce").astype("float64")
    finite = x.dropna()
    qs = np.quantile(finite.to_numpy(), np.linspace(0, 1, bins + 1)[1:-1]) if len(finite) else np.array([])
    inner = []
    for q in qs:
        r = float(f"{q:.3g}")
        if finite.min() < r < finite.max() and r not in inner:
            inner.append(r)
    lo, hi = float(finite.min()) if len(finite) else 0.0, float(finite.max()) if len(finite) else 0.0
    bounds = [lo] + sorted(inner) + [hi]
    levels = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        first = k == 0
        label = f"{'[' if first else '('}{fmt_num(a)}, {fmt_num(b)}]"
        levels.append(Level(label, a, b, lo_closed=first, hi_closed=True))
    dim = _interval_dimension(column, name, x, levels, "", f"quantiles ({len(levels)} bins)")
    return dim


def _ordinal_dimension(column: str, name: str, values: pd.Series, unit: str) -> Dimension:
    x = pd.to_numeric(values, errors="coerce")
    uniq = sorted(float(v) for v in x.dropna().unique())
    levels = [Level(f"{fmt_num(v)}{(' ' + unit) if unit else ''}", value=v) for v in uniq]
    pos = {v: i for i, v in enumerate(uniq)}
    codes = np.array([pos.get(float(v), -1) if pd.notna(v) else -1 for v in x], dtype=np.int64)
    if (codes < 0).any():
        levels.append(Level(MISSING, missing=True))
        codes[codes < 0] = len(levels) - 1
    return Dimension(column, name, "ordinal", "values", tuple(levels), unit, codes)


def _natural_key(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def _nominal_dimension(column: str, name: str, values: pd.Series) -> Dimension:
    miss = values.isna().to_numpy()
    text = values.astype(str).to_numpy()
    uniq = sorted({t for t, m in zip(text, miss) if not m}, key=_natural_key)
    levels = [Level(u, value=u) for u in uniq]
    pos = {u: i for i, u in enumerate(uniq)}
    codes = np.array([-1 if m else pos[t] for t, m in zip(text, miss)], dtype=np.int64)
    if miss.any():
        levels.append(Level(MISSING, missing=True))
        codes[codes < 0] = len(levels) - 1
    return Dimension(column, name, "nominal", "values", tuple(levels), "", codes)


def _continuous(v: pd.Series, quantile_bins: int, max_levels: int) -> bool:
    """Cut at quantiles: more than ``max_levels`` values, or non-integer values more than
    ``quantile_bins`` of them (a sampled range, not a few designed levels: a slice per
    sampled value would be a slice per scene)."""
    n = v.nunique(dropna=True)
    if n > max_levels:
        return True
    x = pd.to_numeric(v, errors="coerce").dropna().to_numpy(dtype=np.float64)
    integer = bool(np.all(np.floor(x) == x))
    return not integer and n > quantile_bins


def display_names(columns: Sequence[str]) -> dict[str, str]:
    """Short, unique names: ``environment.fog_visibility_m`` -> ``fog_visibility_m``,
    ``category`` -> ``class``; a short name that would clash keeps its full column name."""
    short = {}
    for c in columns:
        s = DISPLAY.get(c, c)
        for p in SHORT_PREFIXES:
            if s.startswith(p):
                s = s[len(p):]
                break
        short[c] = s
    counts: dict[str, int] = {}
    for c in columns:
        counts[short[c]] = counts.get(short[c], 0) + 1
    taken = set(columns)
    return {c: (short[c] if counts[short[c]] == 1 and (short[c] == c or short[c] not in taken) else c)
            for c in columns}


def condition_columns(table: pd.DataFrame) -> list[str]:
    """The columns of an outcome table that describe scene conditions."""
    return [c for c in table.columns if c not in NOT_CONDITIONS and not c.endswith("seed")]


def build_dimensions(table: pd.DataFrame, *, bins: Mapping[str, Sequence[float]] | None = None,
                     quantile_bins: int = N_BINS, max_levels: int = MAX_LEVELS,
                     columns: Sequence[str] | None = None) -> tuple[list[Dimension], dict[str, str]]:
    """Dimensions over the rows of ``table`` (see the module doc). Returns (dimensions, skipped)
    where ``skipped`` maps a column left out to why (constant, too many levels, …).

    bins: user edges per column (full column name or its display name), overriding the
    default bins; the levels are then left-closed: (< e0), [e0, e1), …, (≥ e_last).
    """
    cols = list(columns) if columns is not None else condition_columns(table)
    names = display_names(cols)
    user = dict(bins or {})
    known = set(cols) | set(names.values())
    unknown = [k for k in user if k not in known]
    if unknown:
        raise KeyError(f"bins given for {unknown}, which are not condition columns; known: {sorted(known)}")
    dims: list[Dimension] = []
    skipped: dict[str, str] = {}
    for c in cols:
        v = table[c]
        name = names[c]
        if v.isna().all():
            skipped[c] = "no values"
            continue
        edges = user.get(c, user.get(name))
        spec = _spec_for(c)
        numeric = pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v)
        if edges is not None:
            if not numeric:
                raise ValueError(f"bins for {c!r}: the column is not numeric")
            unit = spec.unit if spec else ""
            dim = _interval_dimension(c, name, v, user_levels(edges, unit), unit, f"user bins {list(edges)}")
        elif spec is not None and numeric:
            dim = _interval_dimension(c, name, v, spec.levels, spec.unit, spec.source)
        elif numeric and c != "subset_size" and _continuous(v, quantile_bins, max_levels):
            dim = _quantile_dimension(c, name, v, quantile_bins)
        elif numeric:
            dim = _ordinal_dimension(c, name, v, "")
        else:
            if v.nunique(dropna=True) > MAX_NOMINAL_LEVELS:
                skipped[c] = f"more than {MAX_NOMINAL_LEVELS} categories"
                continue
            dim = _nominal_dimension(c, name, v)
        if len(dim.levels) < 2:
            skipped[c] = f"constant ({dim.levels[0].label if dim.levels else 'empty'})"
            continue
        dims.append(dim)
    return dims, skipped

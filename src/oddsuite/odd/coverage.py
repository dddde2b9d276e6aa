"""Coverage of the ODD (metrics.md §8): the levels of every dimension, which t-tuples of
levels the spec's rules allow, and which of them a list of scenes or images hits.

**Levels** (``OddCoverage.axes``): each global dimension of the spec (``OddSpec.dimensions``:
scenery, environment, camera, object counts) is cut into levels that the spec's domain
gives a positive probability, by the same taxonomy trace slices by:

- a dimension an effect declares with taxonomy bins (``odd.effects``: fog visibility,
  rain and snow rate, sun elevation; trace's ``TAXONOMY`` is a view of the same
  declarations): the declared bins the domain reaches;
- a categorical dimension, or a numeric one with at most ``MAX_VALUE_LEVELS`` values
  (choices, small integer ranges such as lanes and object counts): one level per value,
  as trace keeps such columns' values;
- any other range: trace's quantile cut (``QUANTILE_BINS`` bins, edges at 3 significant
  digits, labelled ``[a, b]``, ``(b, c]``, …), taken at the quantiles of the spec's
  distribution (``Domain.at(j / QUANTILE_BINS)``) instead of the observed values, so that
  the levels, and so the tuples that are missing, are known before any scene exists.

Only dimensions with two or more levels take part in tuples; the others are fixed.

**Rules** (``odd.rules``). A tuple of levels is *forbidden* when every point of it that
has a positive probability under the spec's domains breaks a rule, whatever values the
other dimensions take. This is decided exactly where rules compare against constants:
each dimension a rule names is split at its level bounds and at every constant its
conditions compare with into *pieces* (open intervals of positive length of a range, or
the single values of a discrete domain; a single point of a continuous range has
probability 0 and is never a piece). Every condition is constant on a piece, so pieces
of one level with the same condition outcomes form a *class*, and a rule's verdict on a
combination of classes is its verdict on any point of it (``broken_rule`` on one
representative value each). Dimensions linked by rules form components; for each, the
combinations of classes that break no rule are enumerated once (depth-first, pruned as
soon as a rule's dimensions are all chosen; at most ``MAX_RULE_NODES`` steps). A tuple
is allowed when, in every component it touches, some allowed combination has its levels.

**Counting** (``Tuples.counts``): a row of a table (a scene, a full-scene image) hits a
tuple when its value of each of the tuple's dimensions lies in the tuple's level
(``OddCoverage.codes``). Only rows inside the ODD count (``OddCoverage.inside``: every
value in a level and every rule kept): an image a variant pushes beyond the sampled
domains (fog at 150 m in a spec whose fog is fixed at 10 km) does not show an ODD point.
``t``-way coverage is the share of allowed ``t``-tuples that at least ``k`` rows hit.

Imports only ``odd`` itself (the bottom of the chain), numpy and scipy.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from oddsuite.errors import SpecError
from oddsuite.odd import effects
from oddsuite.odd.domains import Domain
from oddsuite.odd.rules import broken_rule, conditions, holds
from oddsuite.odd.spec import OddSpec

INF = math.inf
#: quantile bins of a range without declared bins (the same count as trace's ``metrics.tables.N_BINS``)
QUANTILE_BINS = 5
#: a numeric dimension with at most this many values keeps one level per value (trace's ``MAX_LEVELS``)
MAX_VALUE_LEVELS = 12
#: depth-first steps allowed when enumerating the class combinations of one rule component
MAX_RULE_NODES = 2_000_000


# ----------------------------------------------------------------------------- levels

@dataclass(frozen=True)
class Level(effects.Bin):
    """One level of a dimension: an interval ``lo``–``hi`` as a taxonomy bin is (either end
    may be infinite, each closed or open) or, when ``discrete``, the single value ``value``."""

    value: Any = None
    discrete: bool = False

    def mask(self, x: np.ndarray) -> np.ndarray:
        """Which of the numbers ``x`` (float array) lie in this level."""
        if self.discrete:
            return x == float(self.value)
        return ((x >= self.lo) if self.lo_closed else (x > self.lo)) & ((x <= self.hi) if self.hi_closed else (x < self.hi))

    def contains(self, x: Any) -> bool:
        if self.discrete and (isinstance(self.value, str) or isinstance(x, str)):
            return x == self.value
        f = _float_or_nan(x)
        return bool(self.mask(np.array([f]))[0])

    def overlap(self, a: float, b: float) -> tuple[float, float]:
        """The part of the open interval (a, b) inside this level, as an interval (may be empty)."""
        return max(a, self.lo), min(b, self.hi)


def _num(x: float) -> str:
    """A bound for a label: integers without a point, others to 3 significant digits."""
    f = float(x)
    return str(int(f)) if f == int(f) and abs(f) < 1e15 else f"{f:.3g}"


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


@dataclass(frozen=True)
class _Piece:
    """A part of a domain with positive probability on which every rule condition on the
    dimension is constant: one value (discrete) or the open interval (lo, hi)."""

    level: int
    mass: float
    value: Any = None
    lo: float = math.nan
    hi: float = math.nan
    discrete: bool = True

    @property
    def representative(self) -> Any:
        return self.value if self.discrete else (self.lo + self.hi) / 2.0


@dataclass(frozen=True)
class Axis:
    """One ODD dimension: its spec path, domain, levels (those the domain reaches, in
    order), where the levels come from (``source``), and the declared taxonomy bins, if
    any (``bins``, the levels being those of them the domain reaches)."""

    path: str
    domain: Domain
    levels: tuple[Level, ...]
    source: str
    unit: str = ""
    bins: tuple[Level, ...] = ()

    def labels(self) -> list[str]:
        return [lv.label for lv in self.levels]

    def index(self, x: Any) -> int:
        """The index of the level holding ``x``, or -1 when no level of the ODD holds it."""
        for i, lv in enumerate(self.levels):
            if lv.contains(x):
                return i
        return -1

    def codes(self, values: Sequence[Any]) -> np.ndarray:
        """The level index of every value (-1: outside the ODD's levels), int64."""
        arr = np.asarray(values, dtype=object)
        out = np.full(len(arr), -1, dtype=np.int64)
        if not len(arr):
            return out
        numeric = not any(isinstance(lv.value, str) for lv in self.levels)
        if numeric:
            x = np.array([_float_or_nan(v) for v in arr], dtype=np.float64)
            for i, lv in enumerate(self.levels):
                out[(out < 0) & lv.mask(x)] = i
        else:
            for j, v in enumerate(arr):
                out[j] = self.index(v)
        return out


def _float_or_nan(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------- domains as masses

def _cdf(d: Domain, x: float) -> float:
    """P(X <= x) for a continuous range (uniform) or truncated normal domain."""
    lo, hi = float(d.lo), float(d.hi)  # type: ignore[arg-type]
    if x <= lo:
        return 0.0
    if x >= hi:
        return 1.0
    if d.kind == "range":
        return (x - lo) / (hi - lo)
    from scipy.stats import truncnorm  # scipy.stats takes seconds to import: only when used

    a, b = (lo - d.mean) / d.std, (hi - d.mean) / d.std  # type: ignore[operator]
    return float(truncnorm.cdf(x, a, b, loc=d.mean, scale=d.std))


def _discrete_masses(d: Domain) -> list[tuple[Any, float]] | None:
    """(value, probability) of every value a discrete domain gives; None for a continuous one."""
    if d.kind == "fixed":
        return [(d.value, 1.0)]
    if d.kind == "choices":
        total = sum(d.weights)
        return [(o, w / total) for o, w in zip(d.options, d.weights) if w > 0]
    if not d.integer:
        return None
    vals = d.values() or ()
    if d.kind == "range":
        return [(v, 1.0 / len(vals)) for v in vals]
    # an integer normal rounds a truncated normal draw
    lo, hi = float(d.lo), float(d.hi)  # type: ignore[arg-type]
    out = [(v, _cdf(d, min(v + 0.5, hi)) - _cdf(d, max(v - 0.5, lo))) for v in vals]
    return [(v, m) for v, m in out if m > 0]


def _continuous(d: Domain) -> bool:
    return d.kind in ("range", "normal") and not d.integer


# ----------------------------------------------------------------------------- building the axes

def _declared(path: str) -> effects.Dimension | None:
    group, _, name = path.partition(".")
    for dim in effects.dimensions():
        if dim.group == group and dim.name == name:
            return dim
    return None


def _bin_levels(dim: effects.Dimension) -> tuple[Level, ...]:
    return tuple(Level(b.label, b.lo, b.hi, b.lo_closed, b.hi_closed, b.text) for b in dim.bins)


def _reached(d: Domain, lv: Level) -> bool:
    """Whether the domain gives level ``lv`` a positive probability."""
    masses = _discrete_masses(d)
    if masses is not None:
        return any(m > 0 and lv.contains(v) for v, m in masses)
    a, b = lv.overlap(float(d.lo), float(d.hi))  # type: ignore[arg-type]
    return b > a


def _quantile_levels(d: Domain) -> tuple[Level, ...]:
    """Trace's quantile cut over the domain's distribution: [lo, e1], (e1, e2], …, (e_last, hi]."""
    lo, hi = float(d.lo), float(d.hi)  # type: ignore[arg-type]
    edges: list[float] = []
    for j in range(1, QUANTILE_BINS):
        e = _round3(float(d.at(j / QUANTILE_BINS)))
        if lo < e < hi and e not in edges:
            edges.append(e)
    bounds = [lo] + sorted(edges) + [hi]
    levels = []
    for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        first = j == 0
        levels.append(Level(f"{'[' if first else '('}{_num(a)}, {_num(b)}]", a, b, lo_closed=first, hi_closed=True))
    return tuple(lv for lv in levels if _reached(d, lv))


def make_axis(path: str, d: Domain) -> Axis:
    """The levels of dimension ``path`` with domain ``d`` (see the module doc)."""
    decl = _declared(path)
    unit = decl.unit if decl else ""
    masses = _discrete_masses(d)
    if decl is not None and decl.bins:
        bins = _bin_levels(decl)
        levels = tuple(lv for lv in bins if _reached(d, lv))
        return Axis(path, d, levels, decl.bins_source or "declared bins", unit, bins)
    if masses is not None and (len(masses) <= MAX_VALUE_LEVELS or any(isinstance(v, str) for v, _ in masses)):
        levels = tuple(Level(v if isinstance(v, str) else _num(v), value=v, discrete=True) for v, _ in masses)
        return Axis(path, d, levels, "values", unit)
    return Axis(path, d, _quantile_levels(d), f"quantiles of the spec's distribution ({QUANTILE_BINS} bins)", unit)


def _pieces(axis: Axis, constants: Iterable[float]) -> list[_Piece]:
    """The axis' domain split at its level bounds and at ``constants`` (see the module doc)."""
    d = axis.domain
    masses = _discrete_masses(d)
    if masses is not None:
        out = []
        for v, m in masses:
            i = axis.index(v)
            if i >= 0 and m > 0:
                out.append(_Piece(i, m, value=v))
        return out
    lo, hi = float(d.lo), float(d.hi)  # type: ignore[arg-type]
    cuts = {lo, hi}
    for lv in axis.levels:
        cuts.update(x for x in (lv.lo, lv.hi) if lo < x < hi)
    cuts.update(float(c) for c in constants if lo < float(c) < hi)
    pts = sorted(cuts)
    out = []
    for a, b in zip(pts[:-1], pts[1:]):
        i = axis.index((a + b) / 2.0)
        m = _cdf(d, b) - _cdf(d, a)
        if i >= 0 and m > 0:
            out.append(_Piece(i, m, lo=a, hi=b, discrete=False))
    return out


def _constants(cond: Any) -> list[float]:
    """The numbers a rule condition compares with."""
    vals = list(cond.values()) if isinstance(cond, dict) else (list(cond) if isinstance(cond, list) else [cond])
    return [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


# ----------------------------------------------------------------------------- rules over classes

@dataclass
class _Class:
    """Pieces of one level on which every condition of the rules has the same outcome."""

    level: int
    pieces: list[_Piece]
    representative: Any

    @property
    def mass(self) -> float:
        return sum(p.mass for p in self.pieces)


@dataclass
class _Component:
    """Axes linked by rules, and every combination of their classes that breaks no rule."""

    axes: tuple[int, ...]
    rules: tuple
    allowed: list[tuple[int, ...]] = field(default_factory=list)  # class index per axis
    level_sets: set[tuple[int, ...]] = field(default_factory=set)


class OddCoverage:
    """The ODD of a spec as levels and allowed tuples (see the module doc).

    ``axes``: every global dimension, in ``OddSpec.dimensions`` order; ``varying``: the
    indices of those with two or more levels (the only ones in tuples). Raises
    ``SpecError`` when the rules span too many class combinations to decide exactly.
    """

    def __init__(self, spec: OddSpec):
        self.spec = spec
        self.axes: list[Axis] = [make_axis(p, d) for p, d in spec.dimensions()]
        self.index = {a.path: i for i, a in enumerate(self.axes)}
        self.varying: list[int] = [i for i, a in enumerate(self.axes) if len(a.levels) >= 2]
        self._build_classes()
        self._build_components()
        self._cache: dict[tuple, bool] = {}

    # -- classes and components

    def _build_classes(self) -> None:
        conds: dict[int, list[Any]] = {}
        for rule in self.spec.rules:
            for _, group in conditions(rule):
                for path, cond in group.items():
                    conds.setdefault(self.index[path], []).append(cond)
        self._conds = conds
        self.classes: list[list[_Class]] = []
        for i, axis in enumerate(self.axes):
            cs = conds.get(i, [])
            pieces = _pieces(axis, [c for cond in cs for c in _constants(cond)])
            groups: dict[tuple, _Class] = {}
            for p in pieces:
                sig = (p.level,) + tuple(holds(c, p.representative) for c in cs)
                if sig not in groups:
                    groups[sig] = _Class(p.level, [], p.representative)
                groups[sig].pieces.append(p)
            self.classes.append(list(groups.values()))

    def _build_components(self) -> None:
        parent = {i: i for i in self._conds}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        rule_axes = []
        for rule in self.spec.rules:
            idx = sorted({self.index[p] for _, g in conditions(rule) for p in g})
            rule_axes.append(idx)
            for j in idx[1:]:
                parent[find(j)] = find(idx[0])
        members: dict[int, list[int]] = {}
        for i in sorted(parent):
            members.setdefault(find(i), []).append(i)
        self.components: list[_Component] = []
        self.component_of: dict[int, int] = {}
        for root in sorted(members, key=lambda r: members[r][0]):
            axes = tuple(members[root])
            rules = tuple(r for r, idx in zip(self.spec.rules, rule_axes) if idx[0] in axes)
            comp = _Component(axes, rules)
            self._enumerate(comp, [idx for idx in rule_axes if idx[0] in axes])
            for i in axes:
                self.component_of[i] = len(self.components)
            self.components.append(comp)

    def _enumerate(self, comp: _Component, rule_axes: list[list[int]]) -> None:
        """Every class combination of the component's axes that breaks no rule (depth first)."""
        order = list(comp.axes)
        pos = {a: j for j, a in enumerate(order)}
        # the rules that become checkable once the j-th axis is chosen
        due: list[list[int]] = [[] for _ in order]
        for r, idx in enumerate(rule_axes):
            due[max(pos[i] for i in idx)].append(r)
        paths = [self.axes[a].path for a in order]
        chosen: list[int] = []
        steps = 0

        def dfs(j: int) -> None:
            nonlocal steps
            if j == len(order):
                comp.allowed.append(tuple(chosen))
                return
            for c, cls in enumerate(self.classes[order[j]]):
                steps += 1
                if steps > MAX_RULE_NODES:
                    raise SpecError(f"{self.spec.source_path}: rules: the rules over {', '.join(paths)} span more than "
                                    f"{MAX_RULE_NODES} combinations of levels; coverage cannot be decided exactly "
                                    f"(split the rules or fix some of these dimensions)")
                chosen.append(c)
                values = {paths[k]: self.classes[order[k]][chosen[k]].representative for k in range(j + 1)}
                if all(broken_rule((comp.rules[r],), values) is None for r in due[j]):
                    dfs(j + 1)
                chosen.pop()

        dfs(0)
        comp.level_sets = {tuple(self.classes[a][c].level for a, c in zip(order, combo)) for combo in comp.allowed}

    # -- queries

    @property
    def satisfiable(self) -> bool:
        """Whether some point of the ODD keeps every rule."""
        return all(comp.allowed for comp in self.components)

    def allows(self, assignment: Mapping[int, int]) -> bool:
        """Whether the levels ``{axis index: level index}`` can be completed to a point of
        positive probability that keeps every rule (see the module doc)."""
        by_comp: dict[int, list[tuple[int, int]]] = {}
        for a, lv in assignment.items():
            c = self.component_of.get(a)
            if c is not None:
                by_comp.setdefault(c, []).append((a, lv))
        if not self.satisfiable:
            return False
        for c, items in by_comp.items():
            key = (c, tuple(sorted(items)))
            ok = self._cache.get(key)
            if ok is None:
                comp = self.components[c]
                where = [(comp.axes.index(a), lv) for a, lv in items]
                ok = any(all(ls[j] == lv for j, lv in where) for ls in comp.level_sets)
                self._cache[key] = ok
            if not ok:
                return False
        return True

    def tuples(self, t: int) -> "Tuples":
        """Every ``t``-tuple of levels over the varying dimensions, with whether the rules allow it."""
        return _tuples(self, t)

    def codes(self, table: Any) -> np.ndarray:
        """Level index of every row (of a pandas table with one column per dimension path)
        and every axis: int64 [n_rows, n_axes], -1 where the value lies outside the ODD's
        levels or the column is missing."""
        n = len(table)
        out = np.full((n, len(self.axes)), -1, dtype=np.int64)
        for i, axis in enumerate(self.axes):
            if axis.path in table.columns:
                out[:, i] = axis.codes(table[axis.path].tolist())
        return out

    def inside(self, table: Any, codes: np.ndarray | None = None) -> np.ndarray:
        """Per row: inside the ODD, i.e. every value in one of its dimension's levels and
        every rule kept (bool [n_rows]); a dimension the table has no column for is not
        judged. ``codes``: ``self.codes(table)``, when at hand."""
        codes = self.codes(table) if codes is None else codes
        present = [i for i, a in enumerate(self.axes) if a.path in table.columns]
        inside = (codes[:, present] >= 0).all(axis=1)
        have = {self.axes[i].path for i in present}
        rules = tuple(r for r in self.spec.rules if all(p in have for _, g in conditions(r) for p in g))
        if rules and inside.any():
            rows = table[sorted(have)].to_dict("records")
            for i in np.flatnonzero(inside):
                inside[i] = broken_rule(rules, rows[i]) is None
        return inside

    def beyond(self, variant: Any) -> list[str]:
        """What puts every image of ``variant`` outside the ODD: the values it sets that no
        level of their dimension holds (``["environment.fog_visibility_m = 150"]``); empty
        when its images can lie inside."""
        out = []
        for name, value in variant.overrides.items():
            for group in ("scenery", "environment", "camera"):
                a = self.index.get(f"{group}.{name}")
                if a is not None and self.axes[a].index(value) < 0:
                    shown = _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
                    out.append(f"{self.axes[a].path} = {shown}")
        return out

    def draw(self, levels: Sequence[int], rng: np.random.Generator) -> list[Any]:
        """A point of the ODD (one value per axis, in axis order) inside the given level of
        every axis that keeps every rule: the classes of each rule component are drawn with
        probability proportional to their mass among the allowed combinations with these
        levels, then each value from the domain restricted to its class (inverse CDF).
        Raises ValueError when the rules forbid these levels."""
        cls_of: dict[int, _Class] = {}
        for comp in self.components:
            want = tuple(levels[a] for a in comp.axes)
            cands = [combo for combo in comp.allowed
                     if tuple(self.classes[a][c].level for a, c in zip(comp.axes, combo)) == want]
            if not cands:
                raise ValueError(f"the rules forbid levels {want} of {[self.axes[a].path for a in comp.axes]}")
            w = np.array([math.prod(self.classes[a][c].mass for a, c in zip(comp.axes, combo)) for combo in cands])
            combo = cands[int(rng.choice(len(cands), p=w / w.sum()))] if len(cands) > 1 else cands[0]
            for a, c in zip(comp.axes, combo):
                cls_of[a] = self.classes[a][c]
        values = []
        for i, axis in enumerate(self.axes):
            cls = cls_of.get(i)
            pieces = cls.pieces if cls is not None else [p for c in self.classes[i] if c.level == levels[i]
                                                         for p in c.pieces]
            values.append(_draw_in(axis.domain, pieces, rng))
        return values

    def describe(self) -> list[dict[str, Any]]:
        """Every dimension, its levels and where they come from (for metrics.json)."""
        return [{"path": a.path, "source": a.source, "unit": a.unit, "levels": a.labels(),
                 "varying": i in self.varying} for i, a in enumerate(self.axes)]


def _draw_in(d: Domain, pieces: Sequence[_Piece], rng: np.random.Generator) -> Any:
    """A value of domain ``d`` inside one of ``pieces`` (chosen by mass), by inverse CDF."""
    if len(pieces) == 1:
        p = pieces[0]
    else:
        w = np.array([q.mass for q in pieces])
        p = pieces[int(rng.choice(len(pieces), p=w / w.sum()))]
    u = float(rng.random())
    if p.discrete:
        return p.value
    a, b = _cdf(d, p.lo), _cdf(d, p.hi)
    x = d.at(a + u * (b - a))
    if not (p.lo < float(x) < p.hi):  # rounding at a very narrow piece: its middle is inside
        x = type(x)(p.representative)
    return x


# ----------------------------------------------------------------------------- tuples

@dataclass(frozen=True)
class Tuples:
    """Every ``t``-tuple of levels over the varying axes: for each combination of ``t`` axes
    (``groups``: (axis indices, level counts), in ``itertools.combinations`` order) every
    tuple of their levels in row-major order. ``dims`` and ``levels`` are [n, t] int arrays,
    ``allowed`` [n] bool."""

    t: int
    groups: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    dims: np.ndarray
    levels: np.ndarray
    allowed: np.ndarray

    def __len__(self) -> int:
        return len(self.allowed)

    def counts(self, codes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """How many rows of ``codes`` ([n_rows, n_axes] level indices, -1 outside) hit each
        tuple (the sum of their ``weights``, when given), float64 [n_tuples]."""
        out = []
        for dims, shape in self.groups:
            sub = codes[:, list(dims)]
            ok = (sub >= 0).all(axis=1)
            flat = np.ravel_multi_index(tuple(sub[ok].T), shape) if ok.any() else np.zeros(0, dtype=np.int64)
            w = None if weights is None else np.asarray(weights, dtype=np.float64)[ok]
            out.append(np.bincount(flat, weights=w, minlength=math.prod(shape)).astype(np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    def first_hits(self, codes: np.ndarray) -> np.ndarray:
        """The index of the first row of ``codes`` that hits each tuple, -1 where none does
        (int64 [n_tuples]): how many scenes of a list it takes to reach a tuple."""
        out = []
        for dims, shape in self.groups:
            sub = codes[:, list(dims)]
            rows = np.flatnonzero((sub >= 0).all(axis=1))
            first = np.full(math.prod(shape), -1, dtype=np.int64)
            if len(rows):
                flat = np.ravel_multi_index(tuple(sub[rows].T), shape)
                uniq, at = np.unique(flat, return_index=True)
                first[uniq] = rows[at]
            out.append(first)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _tuples(cov: OddCoverage, t: int) -> Tuples:
    if t < 1:
        raise ValueError(f"t must be at least 1, got {t}")
    groups, dims, levels, allowed = [], [], [], []
    for combo in itertools.combinations(cov.varying, t):
        shape = tuple(len(cov.axes[a].levels) for a in combo)
        groups.append((combo, shape))
        for lv in itertools.product(*(range(s) for s in shape)):
            dims.append(combo)
            levels.append(lv)
            allowed.append(cov.allows(dict(zip(combo, lv))))
    return Tuples(t, tuple(groups), np.asarray(dims, dtype=np.int64).reshape(-1, t),
                  np.asarray(levels, dtype=np.int64).reshape(-1, t), np.asarray(allowed, dtype=bool))


_COVERAGE_CACHE: dict[tuple, OddCoverage] = {}


def odd_coverage(spec: OddSpec) -> OddCoverage:
    """``OddCoverage(spec)``, cached per spec text (samplers ask for it once per scene)."""
    key = (spec.source_text, spec.model_dump_json(), effects.version())
    cov = _COVERAGE_CACHE.get(key)
    if cov is None:
        if len(_COVERAGE_CACHE) >= 8:
            _COVERAGE_CACHE.clear()
        cov = _COVERAGE_CACHE[key] = OddCoverage(spec)
    return cov

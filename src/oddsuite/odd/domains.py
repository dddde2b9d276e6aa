"""Domains of ODD dimensions: a fixed value, a range, weighted choices, or a truncated normal.

YAML forms::

    fog_visibility_m: 200                    # fixed
    fog_visibility_m: [50, 1000]             # uniform range (shorthand)
    fog_visibility_m: {min: 50, max: 1000}   # uniform range
    fog_visibility_m: {normal: [300, 100], min: 50, max: 1000}   # truncated normal
    road_surface: {choices: {dry: 3, wet: 1}}                     # weighted choices
    road_surface: {choices: [dry, wet]}                           # equal weights
    lanes: {choices: {2: 1, 4: 1}}                                # numeric choices

Every domain maps a uniform number ``u`` in [0, 1) to a value (inverse CDF), so random,
grid and quasi-random (Halton) samplers all share one code path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

Value = Union[float, int, str, bool]


@dataclass(frozen=True)
class Domain:
    kind: str  # "fixed" | "range" | "choices" | "normal"
    value: Value | None = None
    lo: float | None = None
    hi: float | None = None
    mean: float | None = None
    std: float | None = None
    options: tuple[Value, ...] = ()
    weights: tuple[float, ...] = ()
    integer: bool = False

    # -- sampling
    def at(self, u: float) -> Value:
        """The value at quantile ``u`` ∈ [0, 1)."""
        u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
        if self.kind == "fixed":
            return self.value  # type: ignore[return-value]
        if self.kind == "choices":
            total = sum(self.weights)
            acc = 0.0
            for opt, w in zip(self.options, self.weights):
                acc += w / total
                if u < acc:
                    return opt
            return self.options[-1]
        if self.kind == "range":
            assert self.lo is not None and self.hi is not None
            if self.integer:
                return int(min(self.hi, math.floor(self.lo + u * (self.hi - self.lo + 1))))
            return float(self.lo + u * (self.hi - self.lo))
        if self.kind == "normal":
            from scipy.stats import truncnorm  # scipy.stats takes seconds to import: only when used

            a = (self.lo - self.mean) / self.std  # type: ignore[operator]
            b = (self.hi - self.mean) / self.std  # type: ignore[operator]
            x = float(truncnorm.ppf(u, a, b, loc=self.mean, scale=self.std))
            return int(round(x)) if self.integer else x
        raise AssertionError(self.kind)

    def grid(self, levels: int) -> list[Value]:
        """Points of this domain for a grid sampler: all choices, or ``levels`` points of a range."""
        if self.kind == "fixed":
            return [self.value]  # type: ignore[list-item]
        if self.kind == "choices":
            return list(self.options)
        assert self.lo is not None and self.hi is not None
        if self.integer:
            n = int(self.hi - self.lo + 1)
            if n <= levels:
                return list(range(int(self.lo), int(self.hi) + 1))
        if levels == 1:
            return [self.at(0.5)]
        pts = [self.lo + i * (self.hi - self.lo) / (levels - 1) for i in range(levels)]
        return sorted({int(round(p)) for p in pts}) if self.integer else [float(p) for p in pts]

    def values(self) -> tuple[Value, ...] | None:
        """Every value this domain can give, when there are finitely many (None for a
        continuous range or normal)."""
        if self.kind == "fixed":
            return (self.value,)  # type: ignore[return-value]
        if self.kind == "choices":
            return tuple(o for o, w in zip(self.options, self.weights) if w > 0)
        if self.integer:
            return tuple(range(int(math.ceil(self.lo)), int(math.floor(self.hi)) + 1))  # type: ignore[arg-type]
        return None

    @property
    def largest(self) -> Value:
        """The largest value this domain can give (numeric domains)."""
        vals = self.values()
        return max(vals) if vals is not None else self.hi  # type: ignore[type-var,return-value]

    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed" or (self.kind == "choices" and len(self.options) == 1)

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.value)
        if self.kind == "range":
            return f"[{self.lo}, {self.hi}]"
        if self.kind == "normal":
            return f"N({self.mean}, {self.std}) in [{self.lo}, {self.hi}]"
        return "{" + ", ".join(f"{o}: {w:g}" for o, w in zip(self.options, self.weights)) + "}"


def parse_domain(
    raw: Any,
    *,
    lo: float = 0,
    hi: float = 0,
    unit: str = "",
    integer: bool = False,
    choices: tuple[str, ...] | None = None,
    note: str = "",
) -> Domain:
    """Validate a raw YAML value as a domain. Raises ValueError with what was expected.

    ``lo``/``hi``: the values the dimension accepts, in ``unit``; ``integer``: whole numbers
    only; ``choices``: the words a categorical dimension accepts; ``note``: added to an
    out-of-range message (what the bounds mean). Every number must be finite."""
    u = f" {unit}" if unit else ""
    note_s = f" ({note})" if note else ""

    def finite(x: Any, what: str) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ValueError(f"{what}: expected a number{u}, got {x!r}")
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError(f"{what}: expected a finite number{u}, got {x!r}")
        return x

    def num(x: Any, what: str) -> float:
        x = finite(x, what)
        if not (lo <= x <= hi):  # int/float comparisons are exact, however large the int
            raise ValueError(f"{what}: {x!r} is out of range, expected {lo} to {hi}{u}{note_s}")
        if integer and float(x) != int(x):
            raise ValueError(f"{what}: expected a whole number{u}, got {x!r}")
        return int(x) if integer else float(x)

    def opt(x: Any) -> Value:
        if choices is not None:
            if x not in choices:
                raise ValueError(f"{x!r} is not allowed, expected one of: {', '.join(choices)}")
            return x
        return num(x, "choice")

    if isinstance(raw, dict):
        keys = set(raw)
        if "choices" in raw:
            if keys != {"choices"}:
                raise ValueError(f"a choices domain takes only 'choices', got extra keys {sorted(map(str, keys - {'choices'}))}")
            c = raw["choices"]
            if isinstance(c, list):
                opts, ws = [opt(x) for x in c], [1.0] * len(c)
            elif isinstance(c, dict):
                opts = [opt(x) for x in c]
                ws = []
                for k, w in c.items():
                    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                        raise ValueError(f"choice {k!r}: weight must be a finite number >= 0, got {w!r}")
                    ws.append(float(w))
                if not math.isfinite(sum(ws)):
                    raise ValueError("'choices': the weights add up to more than a float holds")
            else:
                raise ValueError("'choices' expects a list or a mapping of option: weight")
            if not opts or sum(ws) <= 0:
                raise ValueError("'choices' needs at least one option with a positive weight")
            if len(set(opts)) != len(opts):
                raise ValueError(f"'choices' lists an option twice: {opts}")
            return Domain("choices", options=tuple(opts), weights=tuple(ws), integer=integer)
        if choices is not None:
            raise ValueError(f"expected one of {', '.join(choices)} or {{choices: ...}}, got {raw!r}")
        allowed = {"min", "max", "normal"}
        if keys - allowed:
            raise ValueError(f"unknown key(s) {sorted(map(str, keys - allowed))} in a domain; expected min, max, normal or choices")
        if "min" not in raw or "max" not in raw:
            raise ValueError("a range needs both 'min' and 'max'")
        a, b = num(raw["min"], "min"), num(raw["max"], "max")
        if a > b:
            raise ValueError(f"min {a} is greater than max {b}")
        if "normal" in raw:
            nm = raw["normal"]
            if not (isinstance(nm, list) and len(nm) == 2):
                raise ValueError("'normal' expects [mean, std]")
            mean, std = float(finite(nm[0], "normal mean")), float(finite(nm[1], "normal std"))
            if std <= 0:
                raise ValueError(f"normal std must be > 0, got {std}")
            d = Domain("normal", lo=a, hi=b, mean=mean, std=std, integer=integer)
            for q in (0.0, 0.5, 1.0):
                x = d.at(q)
                if not (math.isfinite(x) and a <= x <= b):
                    raise ValueError(f"normal [{mean:g}, {std:g}] has no usable probability between min {a:g} "
                                     f"and max {b:g}; move the mean or widen std")
            return d
        return Domain("range", lo=a, hi=b, integer=integer) if a != b else Domain("fixed", value=a)
    if isinstance(raw, list):
        if choices is not None:
            return parse_domain({"choices": raw}, lo=lo, hi=hi, unit=unit, integer=integer, choices=choices, note=note)
        if len(raw) != 2:
            raise ValueError(f"a range is written [min, max], got a list of {len(raw)}")
        return parse_domain({"min": raw[0], "max": raw[1]}, lo=lo, hi=hi, unit=unit, integer=integer, note=note)
    if choices is not None:
        return Domain("fixed", value=opt(raw))
    return Domain("fixed", value=num(raw, "value"))

"""Spec rules over the global dimensions: what they mean, and their check at load.

A rule is ``exclude: {PATH: COND, …}`` (a sample is rejected when every condition holds)
or ``require: {if: {…}, then: {…}}`` (when every ``if`` condition holds, every ``then``
condition must hold). A condition is a value (equal to it), a list (one of its values)
or a mapping of comparisons (``gt``, ``ge``, ``lt``, ``le``, ``eq``, ``ne``).

``rule_problems`` type-checks every condition against the dimension's domain when the
spec loads: an unknown dimension or operator, a comparison of the wrong type for the
dimension (``gt: heavy`` on a number, ``gt: 3`` on road_surface), and a condition that no
value of the spec's domain can meet (a choice the spec never samples, ``gt: 500`` on a
range that ends at 200) are errors, never a silent no-op or a crash while sampling.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Iterator

from oddsuite.odd.domains import Domain

OPS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le, "eq": operator.eq, "ne": operator.ne}
_ORDER = ("gt", "ge", "lt", "le")


def holds(cond: Any, value: Any) -> bool:
    """Whether ``value`` meets the condition ``cond``."""
    if isinstance(cond, dict):
        return all(OPS[op](value, ref) for op, ref in cond.items())
    if isinstance(cond, list):
        return value in cond
    return value == cond


def conditions(rule: Any) -> Iterator[tuple[tuple, dict[str, Any]]]:
    """(YAML path under the rule, conditions) of each condition group of a rule."""
    if rule.exclude is not None:
        yield ("exclude",), rule.exclude
    else:
        yield ("require", "if"), rule.require["if"]
        yield ("require", "then"), rule.require["then"]


def broken_rule(rules: tuple, values: dict[str, Any]) -> int | None:
    """Index of the first rule that ``values`` (one value per dimension path) break, or None."""
    for i, rule in enumerate(rules):
        if rule.exclude is not None:
            if all(holds(c, values[p]) for p, c in rule.exclude.items()):
                return i
        elif all(holds(c, values[p]) for p, c in rule.require["if"].items()) and not all(
                holds(c, values[p]) for p, c in rule.require["then"].items()):
            return i
    return None


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _categorical(d: Domain) -> bool:
    vals = d.values()
    return vals is not None and all(isinstance(v, str) for v in vals)


def _can_meet(d: Domain, ops: dict[str, Any]) -> bool:
    """Whether some value of ``d`` meets every comparison in ``ops`` (types already checked)."""
    vals = d.values()
    if vals is not None:
        return any(all(OPS[op](v, ref) for op, ref in ops.items()) for v in vals)
    lo, hi, lo_open, hi_open = float(d.lo), float(d.hi), False, False  # type: ignore[arg-type]
    for op, ref in ops.items():
        if op in ("gt", "ge") and (ref > lo or (ref == lo and op == "gt")):
            lo, lo_open = ref, op == "gt"
        elif op in ("lt", "le") and (ref < hi or (ref == hi and op == "lt")):
            hi, hi_open = ref, op == "lt"
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        return False
    if "eq" in ops:
        x = ops["eq"]
        return (lo < x or (lo == x and not lo_open)) and (x < hi or (x == hi and not hi_open)) and ops.get("ne") != x
    if "ne" in ops and lo == hi:
        return ops["ne"] != lo
    return True


def _describe(d: Domain) -> str:
    vals = d.values()
    if vals is not None and len(vals) <= 12:
        return ", ".join(str(v) for v in vals)
    return d.describe()


def _check_value(path: str, d: Domain, x: Any) -> str | None:
    """A problem with one compared value (type only), or None."""
    if _categorical(d):
        if not isinstance(x, str):
            return f"{x!r} is not a value of {path}, which takes words ({_describe(d)})"
    elif not _is_num(x):
        return f"{x!r} is not a number; {path} is numeric ({_describe(d)})"
    return None


def condition_problems(path: str, d: Domain, cond: Any) -> list[tuple[tuple, str]]:
    """Problems of one condition on dimension ``path`` with domain ``d``: (sub-path, message)."""
    never = f"can never match: {path} takes {_describe(d)} in this spec"
    if isinstance(cond, dict):
        bad = sorted(set(cond) - set(OPS), key=str)
        if bad:
            return [((), f"unknown operator(s) {bad}; expected one of: {', '.join(OPS)}")]
        if not cond:
            return [((), "an empty comparison; expected one of: " + ", ".join(OPS))]
        out = []
        for op, ref in cond.items():
            if op in _ORDER and _categorical(d):
                out.append(((op,), f"{op} compares numbers, but {path} takes words ({_describe(d)}); "
                                   f"use a value or a list of values"))
                continue
            msg = _check_value(path, d, ref)
            if msg:
                out.append(((op,), msg))
        if not out and not _can_meet(d, cond):
            out.append(((), f"{cond} {never}"))
        return out
    if isinstance(cond, list):
        if not cond:
            return [((), "an empty list can never match")]
        out = []
        for i, x in enumerate(cond):
            msg = _check_value(path, d, x) or (None if _can_meet(d, {"eq": x}) else f"{x!r} {never}")
            if msg:
                out.append(((i,), msg))
        return out
    msg = _check_value(path, d, cond) or (None if _can_meet(d, {"eq": cond}) else f"{cond!r} {never}")
    return [((), msg)] if msg else []


def rule_problems(rules: tuple, dims: list[tuple[str, Domain]]) -> list[tuple[tuple, str]]:
    """Every problem of the spec's rules: (YAML path from the spec's top, message)."""
    known = dict(dims)
    out: list[tuple[tuple, str]] = []
    for i, rule in enumerate(rules):
        for group, conds in conditions(rule):
            for path, cond in conds.items():
                where = ("rules", i, *group, path)
                if path not in known:
                    out.append((where, f"unknown dimension {path!r}; expected one of: {', '.join(sorted(known))}"))
                    continue
                out.extend((where + sub, msg) for sub, msg in condition_problems(path, known[path], cond))
    return out

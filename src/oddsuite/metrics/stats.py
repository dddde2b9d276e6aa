"""Rates with their counts and 95% intervals: Wilson for a proportion of counted units,
a seeded bootstrap for a mean of per-unit fractions.

Every figure carries its count ``n``; a rate with ``n = 0`` is undefined (``None``),
never 0 (metrics.md, Rules).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from oddsuite.fileio import plain_json

#: two-sided 95% normal quantile, scipy.stats.norm.ppf(0.975)
Z95 = 1.959963984540054


def wilson_interval(k: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``k`` successes out of ``n`` trials.

    ``k`` may be fractional (a mean of per-unit fractions times the number of units).
    Returns ``None`` when ``n == 0`` (the rate is undefined).
    """
    if n <= 0:
        return None
    if k < 0 or k > n:
        raise ValueError(f"wilson_interval: k={k} outside [0, n={n}]")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)  # exact bounds, not 1 - 1e-16
    return (lo, hi)


def rate(k: int, n: int) -> dict[str, Any]:
    """``{"value": k/n, "k": k, "n": n, "ci95": [lo, hi]}``; value and ci95 are None when n = 0."""
    ci = wilson_interval(k, n)
    return {
        "value": (k / n) if n > 0 else None,
        "k": int(k),
        "n": int(n),
        "ci95": list(ci) if ci is not None else None,
    }


#: seed of every bootstrap interval: the same data give the same bytes
BOOTSTRAP_SEED = 0
#: bootstrap resamples (scipy's default)
BOOTSTRAP_RESAMPLES = 9999


def bootstrap_mean(values: Iterable[float], *, seed: int = BOOTSTRAP_SEED, n_resamples: int = BOOTSTRAP_RESAMPLES,
                   **counts: int) -> dict[str, Any]:
    """Mean of per-unit values with a seeded 95% bootstrap interval over the units.

    ``{"value": mean, "n": units, **counts, "ci95": [lo, hi]}``. The interval is
    ``scipy.stats.bootstrap``'s percentile interval (``n_resamples`` resamples of the units
    with replacement, ``numpy.random.default_rng(seed)``; Efron & Tibshirani 1993, ch. 13):
    the units are resampled, not the pairs behind them, so the pairs of one unit stay
    together. Percentile rather than BCa: BCa's jackknife costs O(n²) and takes seconds
    per figure from a few thousand units, where the percentile interval stays linear. value and
    ci95 are None when n = 0; ci95 is None when n = 1 (one unit shows no spread); when
    every unit has the same value the bootstrap distribution is that point and so is the
    interval. Extra keyword counts (e.g. ``n_pairs``) are added as ints.
    """
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    n = len(x)
    value = float(x.mean()) if n else None
    ci: list[float] | None = None
    if n >= 2:
        if np.all(x == x[0]):
            ci = [float(x[0]), float(x[0])]
        else:
            from scipy.stats import bootstrap

            res = bootstrap((x,), np.mean, n_resamples=n_resamples, batch=min(n_resamples, 1000), vectorized=True,
                            confidence_level=0.95, method="percentile", rng=np.random.default_rng(seed))
            ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    out: dict[str, Any] = {"value": value, "n": n}
    out.update({key: int(v) for key, v in counts.items()})
    out["ci95"] = ci
    return out


def mean_rate(fractions: Iterable[float], **counts: int) -> dict[str, Any]:
    """Average of per-unit fractions (each in [0, 1]) with a Wilson interval over the units.

    ``n`` is the number of units averaged; the interval treats the mean as a proportion
    over ``n`` units (``k = mean * n``). Extra keyword counts (e.g. ``n_pairs``) are added.
    Used where a figure is RANKED by its lower bound (trace's presence breaks): unlike a
    bootstrap, whose interval collapses to a point when every unit agrees, Wilson keeps a
    small n pessimistic (6 of 6 units gives [0.61, 1]). Context accuracy, a reported
    figure, uses :func:`bootstrap_mean` (metrics.md §3).
    """
    values = [float(f) for f in fractions]
    n = len(values)
    value = (sum(values) / n) if n else None
    ci = wilson_interval(min(max(value * n, 0.0), float(n)), n) if value is not None else None
    out: dict[str, Any] = {"value": value, "n": n}
    out.update({key: int(v) for key, v in counts.items()})
    out["ci95"] = list(ci) if ci is not None else None
    return out


def mean_or_none(values: Iterable[float]) -> dict[str, Any]:
    """``{"value": mean, "n": count}``; value None when there is nothing to average."""
    vals = [float(v) for v in values]
    return {"value": (sum(vals) / len(vals)) if vals else None, "n": len(vals)}


def ratio_or_none(num: float | None, den: float | None) -> float | None:
    """num / den, or None when either is undefined or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return num / den


json_clean = plain_json  # NaN/inf -> None, numpy -> Python: the one definition lives in oddsuite.fileio

"""Wilson intervals, bootstrap intervals of a mean, and undefined rates (metrics.md, Rules)."""
import json
import math

import pytest

import numpy as np
from scipy.stats import bootstrap

from oddsuite.metrics.stats import bootstrap_mean, json_clean, rate, wilson_interval


def test_wilson_interval_by_hand():
    # 8 of 10, z = 1.96: centre = (0.8 + 1.9208/10) / 1.38416 = 0.71672...,
    # half = 1.95996/1.38416 * sqrt(0.016 + 0.0096040) = 0.22661...; textbook values 0.4902, 0.9433
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-4)
    assert hi == pytest.approx(0.94332, abs=1e-4)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-15)


def test_wilson_extremes_stay_in_unit_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.27753, abs=1e-4)


def test_rate_with_n_zero_is_undefined_not_zero():
    r = rate(0, 0)
    assert r == {"value": None, "k": 0, "n": 0, "ci95": None}
    m = bootstrap_mean([], n_pairs=0)
    assert m["value"] is None and m["n"] == 0 and m["ci95"] is None
    # and it is written as null in strict JSON
    assert json.loads(json.dumps(json_clean({"x": float("nan"), "r": r}), allow_nan=False)) == {"x": None, "r": r}


def test_bootstrap_mean_averages_units_with_a_seeded_interval():
    m = bootstrap_mean([1.0, 0.0, 0.5], n_pairs=7)
    assert m["value"] == pytest.approx(0.5)
    assert m["n"] == 3 and m["n_pairs"] == 7
    # scipy's percentile bootstrap over the 3 units, seed 0: reproduced here, and every resampled
    # mean is a multiple of 1/6 (3 draws of 0, 1/2 or 1), so the bounds are such multiples
    want = bootstrap((np.array([1.0, 0.0, 0.5]),), np.mean, n_resamples=9999, method="percentile",
                     rng=np.random.default_rng(0)).confidence_interval
    assert m["ci95"] == [want.low, want.high]
    assert all(abs(6 * b - round(6 * b)) < 1e-9 for b in m["ci95"])
    assert 0.0 <= m["ci95"][0] < 0.5 < m["ci95"][1] <= 1.0
    assert bootstrap_mean([1.0, 0.0, 0.5], n_pairs=7) == m  # seeded: the same bytes every time


def test_bootstrap_mean_degenerate_samples():
    one = bootstrap_mean([0.75])
    assert one == {"value": 0.75, "n": 1, "ci95": None}  # one unit shows no spread
    same = bootstrap_mean([1.0, 1.0, 1.0])
    assert same["value"] == 1.0 and same["ci95"] == [1.0, 1.0]

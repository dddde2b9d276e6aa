"""ODD coverage (metrics.md §8): levels, forbidden tuples decided exactly over level ranges,
t-way coverage of hand-made tables with the answers worked out here, and the failure rate
per tuple."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oddsuite.metrics.coverage import coverage_section
from oddsuite.odd import parse_spec
from oddsuite.odd.coverage import MAX_VALUE_LEVELS, QUANTILE_BINS, OddCoverage

HEAD = """\
name: cov
objects:
  car: {count: 1}
"""

# three varying dimensions: road (dry, wet), rain (choices 0 and 5: none, moderate), lanes (2, 4)
SMALL = HEAD + """\
scenery:
  lanes: {choices: [2, 4]}
  road_surface: {choices: [dry, wet]}
environment:
  rain_mm_h: {choices: [0, 5]}
rules:
  - exclude: {environment.rain_mm_h: {gt: 0}, scenery.road_surface: dry}
"""


def small() -> OddCoverage:
    return OddCoverage(parse_spec(SMALL))


def test_levels_follow_trace_taxonomy_and_domains():
    cov = small()
    by = {a.path: a for a in cov.axes}
    assert by["scenery.road_surface"].labels() == ["dry", "wet"]
    assert by["scenery.lanes"].labels() == ["2", "4"]
    # a declared effect dimension takes the declared bins its domain reaches (trace's TAXONOMY)
    assert by["environment.rain_mm_h"].labels() == ["none (0)", "moderate (2.5–10 mm/h)"]
    assert [cov.axes[i].path for i in cov.varying] == ["scenery.lanes", "scenery.road_surface",
                                                       "environment.rain_mm_h"]
    # the counts trace uses for its quantile cut and for keeping values
    from oddsuite.metrics.tables import MAX_LEVELS, N_BINS
    from oddsuite.trace.dimensions import TAXONOMY

    assert (QUANTILE_BINS, MAX_VALUE_LEVELS) == (N_BINS, MAX_LEVELS)
    fog = next(b for b in TAXONOMY if "fog_visibility_m" in b.suffixes)
    spec = parse_spec(HEAD + "environment:\n  fog_visibility_m: [40, 1000]\n")
    axis = next(a for a in OddCoverage(spec).axes if a.path.endswith("fog_visibility_m"))
    assert axis.labels() == [lv.label for lv in fog.levels[:3]]  # dense, thick, fog: the range's bins
    # a range without bins: trace's quantile cut over the spec's distribution
    spec = parse_spec(HEAD + "environment:\n  cloud_cover: [0.0, 0.5]\n")
    axis = next(a for a in OddCoverage(spec).axes if a.path.endswith("cloud_cover"))
    assert axis.labels() == ["[0, 0.1]", "(0.1, 0.2]", "(0.2, 0.3]", "(0.3, 0.4]", "(0.4, 0.5]"]
    assert axis.index(0.1) == 0 and axis.index(0.1000001) == 1 and axis.index(0.7) == -1


def test_tuples_of_a_hand_made_table():
    """Worked answer. 1-way: 6 tuples (2 + 2 + 2), all allowed. 2-way: lanes x road 4, lanes x
    rain 4, road x rain 4 = 12, of which (dry, moderate) is forbidden by the rule: 11 allowed.
    Rows: (2, dry, none), (2, wet, moderate), (4, wet, none), (4, wet, none).
    1-way: every level hit -> 6/6. 2-way hit: lanes x road (2,dry) (2,wet) (4,wet): 3 of 4
    [missing (4,dry)]; lanes x rain (2,none) (2,moderate) (4,none): 3 of 4 [missing
    (4,moderate)]; road x rain (dry,none) (wet,moderate) (wet,none): 3 of 3 allowed -> 9/11.
    With k = 2 only the tuples of the repeated row count: (4,wet) (4,none) (wet,none) -> 3/11."""
    cov = small()
    table = pd.DataFrame({"scenery.lanes": [2, 2, 4, 4], "scenery.road_surface": ["dry", "wet", "wet", "wet"],
                          "environment.rain_mm_h": [0.0, 5.0, 0.0, 0.0]})
    codes = cov.codes(table)
    one, two = cov.tuples(1), cov.tuples(2)
    assert (len(one), int(one.allowed.sum())) == (6, 6)
    assert (len(two), int(two.allowed.sum())) == (12, 11)
    forbidden = [(tuple(d), tuple(lv)) for d, lv, a in zip(two.dims, two.levels, two.allowed) if not a]
    road, rain = cov.index["scenery.road_surface"], cov.index["environment.rain_mm_h"]
    assert forbidden == [((road, rain), (0, 1))]  # (dry, moderate)
    n1, n2 = one.counts(codes), two.counts(codes)
    assert int(((n1 >= 1) & one.allowed).sum()) == 6
    assert int(((n2 >= 1) & two.allowed).sum()) == 9
    assert int(((n2 >= 2) & two.allowed).sum()) == 3
    missing = {(tuple(d), tuple(lv)) for d, lv, a, n in zip(two.dims, two.levels, two.allowed, n2) if a and n == 0}
    lanes = cov.index["scenery.lanes"]
    assert missing == {((lanes, road), (1, 0)), ((lanes, rain), (1, 1))}
    # the first row that reaches each tuple
    first = two.first_hits(codes)
    assert first[(two.dims == [road, rain]).all(1) & (two.levels == [1, 0]).all(1)].tolist() == [2]


def test_coverage_section_counts_images_and_failures_per_tuple():
    """The same table as full-scene images with ROI outcomes: image 1 (2, dry, none) has a hit
    and a miss, image 2 (2, wet, moderate) a mislabel, image 3 a hit and an ignore region
    (not scored), image 4 no ROI. Tuple (lanes 2, road dry): 1 image, 1 failure of 2 ROIs;
    (lanes 2, *): images 1-2, 2 failures of 3; (road wet, rain none): images 3-4, 0 of 1.
    Images 5 (rain on a dry road: a rule broken, as a variant can) and 6 (40 mm/h: no level
    of the spec's rain) lie outside the ODD and count nowhere, their misses neither."""
    cov = small()
    images = pd.DataFrame({"image_id": [1, 2, 3, 4, 5, 6], "scenery.lanes": [2, 2, 4, 4, 4, 4],
                           "scenery.road_surface": ["dry", "wet", "wet", "wet", "dry", "wet"],
                           "environment.rain_mm_h": [0.0, 5.0, 0.0, 0.0, 5.0, 40.0]})
    outcomes = pd.DataFrame({"image_id": [1, 1, 2, 3, 3, 5, 6], "outcome": ["hit", "miss", "mislabel", "hit", "miss",
                                                                          "miss", "miss"],
                             "ignore": [False, False, False, False, True, False, False], "not_visible": [False] * 7})
    assert cov.inside(images).tolist() == [True, True, True, True, False, False]
    sec = coverage_section(cov, images, outcomes, ways=(1, 2), k=1)
    assert (sec["n_images"], sec["n_images_outside_odd"], sec["n_rois"], sec["n_failed"]) == (4, 2, 4, 2)
    w1, w2 = sec["ways"]["1"], sec["ways"]["2"]
    assert (w1["n_allowed"], w1["n_covered"], w1["coverage"]) == (6, 6, 1.0)
    assert (w2["n_tuples"], w2["n_allowed"], w2["n_forbidden"], w2["n_covered"]) == (12, 11, 1, 9)
    assert w2["coverage"] == pytest.approx(9 / 11)
    assert sorted(w2["missing"]) == [["scenery.lanes = 4", "environment.rain_mm_h = moderate (2.5–10 mm/h)"],
                                     ["scenery.lanes = 4", "scenery.road_surface = dry"]]
    t = w2["tuples"]
    lanes, road, rain = (cov.index[p] for p in ("scenery.lanes", "scenery.road_surface", "environment.rain_mm_h"))

    def cell(dims, levels):
        i = next(j for j, (d, lv) in enumerate(zip(t["dims"], t["levels"])) if d == dims and lv == levels)
        return t["n_images"][i], t["n_failed"][i], t["n_rois"][i], t["allowed"][i]

    assert cell([lanes, road], [0, 0]) == (1, 1, 2, True)
    assert cell([road, rain], [1, 0]) == (2, 0, 1, True)
    assert cell([road, rain], [0, 1]) == (0, 0, 0, False)
    by_level = next(d for d in sec["dimensions"] if d["path"] == "scenery.lanes")["by_level"]
    assert by_level[0]["n_images"] == 2 and (by_level[0]["failure"]["k"], by_level[0]["failure"]["n"]) == (2, 3)
    rain_dim = next(d for d in sec["dimensions"] if d["path"] == "environment.rain_mm_h")
    assert rain_dim["n_images_outside"] == 1  # the 40 mm/h image; the dry rainy one is in both levels


RANGE = HEAD + """\
scenery:
  road_surface: {choices: [dry, wet, icy]}
environment:
  rain_mm_h: [0, 40]
rules:
"""


@pytest.mark.parametrize("rules, forbidden", [
    # every point of moderate [2.5, 10) is >= 2.5: forbidden; light (0, 2.5) is not
    ("- exclude: {environment.rain_mm_h: {ge: 2.5}, scenery.road_surface: dry}",
     {("dry", "moderate"), ("dry", "heavy")}),
    # gt 2.5: the point 2.5 keeps the rule but has probability 0 in a range: still forbidden
    ("- exclude: {environment.rain_mm_h: {gt: 2.5}, scenery.road_surface: dry}",
     {("dry", "moderate"), ("dry", "heavy")}),
    # gt 5: (2.5, 5] of moderate keeps the rule: allowed
    ("- exclude: {environment.rain_mm_h: {gt: 5}, scenery.road_surface: dry}", {("dry", "heavy")}),
    # two rules that forbid moderate only together: (2, 5] by the first, (5, 10) by the second
    ("- exclude: {environment.rain_mm_h: {gt: 2, le: 5}, scenery.road_surface: dry}\n"
     "  - exclude: {environment.rain_mm_h: {gt: 5}, scenery.road_surface: dry}",
     {("dry", "moderate"), ("dry", "heavy")}),
    # require: icy roads only with rain <= 2.5 (light; 2.5 itself has probability 0)
    ("- require: {if: {scenery.road_surface: icy}, then: {environment.rain_mm_h: {le: 2.5}}}",
     {("icy", "moderate"), ("icy", "heavy")}),
])
def test_forbidden_tuples_are_exact_over_level_ranges(rules, forbidden):
    cov = OddCoverage(parse_spec(RANGE + "  " + rules + "\n"))
    road, rain = cov.index["scenery.road_surface"], cov.index["environment.rain_mm_h"]
    assert [lv.split(" ")[0] for lv in cov.axes[rain].labels()] == ["light", "moderate", "heavy"]
    two = cov.tuples(2)
    got = {(cov.axes[road].levels[lv[0]].label, cov.axes[rain].levels[lv[1]].label.split(" ")[0])
           for d, lv, a in zip(two.dims.tolist(), two.levels.tolist(), two.allowed) if d == [road, rain] and not a}
    assert got == forbidden


def test_a_discrete_value_on_the_boundary_keeps_its_tuple_allowed():
    """With choices {2.5, 10} the value 2.5 has a positive probability: gt 2.5 leaves
    (dry, moderate) allowed through it, and a drawn point of that tuple is 2.5."""
    spec = parse_spec(HEAD + "scenery:\n  road_surface: {choices: [dry, wet]}\nenvironment:\n"
                             "  rain_mm_h: {choices: [2.5, 10]}\nrules:\n"
                             "  - exclude: {environment.rain_mm_h: {gt: 2.5}, scenery.road_surface: dry}\n")
    cov = OddCoverage(spec)
    road, rain = cov.index["scenery.road_surface"], cov.index["environment.rain_mm_h"]
    assert cov.axes[rain].labels() == ["moderate (2.5–10 mm/h)", "heavy (10–50 mm/h)"]
    assert cov.allows({road: 0, rain: 0}) and not cov.allows({road: 0, rain: 1})
    levels = [0] * len(cov.axes)
    for seed in range(5):
        vals = cov.draw(levels, np.random.default_rng(seed))
        assert vals[rain] == 2.5 and vals[road] == "dry"

"""Acceptance criteria: their checks with file and line, and verdicts on hand-made counts at
the boundaries (pass, fail, inconclusive and the further data an inconclusive one needs)."""
from __future__ import annotations

import math

import pytest

from oddsuite.errors import SpecError
from oddsuite.metrics.stats import rate, wilson_interval
from oddsuite.odd import parse_spec
from oddsuite.report.verdicts import FAIL, INCONCLUSIVE, PASS, combine, judge, wilson_n_needed

SPEC = """\
name: t
objects:
  car: {count: [1, 2]}
  person: {count: [0, 1]}
scenery:
  road_surface: {choices: [dry, wet]}
acceptance:
  - id: REQ-1
    text: cars
    metric: hit_rate
    class: car
    min: 0.9
    per: scenery.road_surface
"""


def test_a_valid_block_parses():
    spec = parse_spec(SPEC)
    (c,) = spec.acceptance
    assert (c.id, c.metric, c.class_, c.threshold, c.per) == ("REQ-1", "hit_rate", "car", ("min", 0.9),
                                                              "scenery.road_surface")


@pytest.mark.parametrize("extra, line, message", [
    ("  - {id: REQ-1, text: again, metric: map, min: 0.3}", 14, "id 'REQ-1' is already used by criterion 0"),
    ("  - {id: R2, text: x, metric: hit_rat, min: 0.5}", 14, "unknown metric 'hit_rat'; expected one of: hit_rate"),
    ("  - {id: R2, text: x, metric: map, min: 0.3, max: 0.5}", 14, "give one threshold, min or max, not both"),
    ("  - {id: R2, text: x, metric: map}", 14, "a criterion needs a threshold"),
    ("  - {id: R2, text: x, metric: hit_rate, min: 1.0}", 14, "1 is out of range for hit_rate"),
    ("  - {id: R2, text: x, metric: fp_per_image, max: -1}", 14, "-1 is out of range for fp_per_image"),
    ("  - {id: R2, text: x, metric: coverage, max: 0.5}", 14, "coverage takes min"),
    ("  - {id: R2, text: x, metric: hit_rate, min: 0.5, class: bus}", 14, "unknown class 'bus'"),
    ("  - {id: R2, text: x, metric: hit_rate, min: 0.5, per: environment.fogg}", 14,
     "unknown dimension 'environment.fogg'; expected 'variant' or one of"),
    ("  - {id: R2, text: x, metric: hit_rate, min: 0.5, variant: night}", 14, "unknown variant 'night'"),
    ("  - {id: R2, text: x, metric: map, min: 0.5, k: 3}", 14, "'k' belongs to a coverage criterion"),
    ("  - {id: R2, text: x, metric: coverage, min: 1, per: scenery.road_surface}", 14,
     "coverage is judged over the whole ODD"),
    ("  - {id: R2, text: x, metric: coverage, min: 1, ways: 4}", 14, "ways: Input should be less than or equal to 3"),
    ("  - {id: R2, text: x, metric: map, min: 0.3, colour: red}", 14, "colour: unknown key (expected one of: id, "
                                                                      "text, metric, class, min, max"),
])
def test_bad_criteria_are_named_with_their_line(extra, line, message):
    with pytest.raises(SpecError) as e:
        parse_spec(SPEC + extra + "\n", source="s.yaml")
    text = str(e.value)
    assert f"s.yaml:{line}: acceptance.1" in text and message in text, text


# ----------------------------------------------------------------------------- verdicts

def fig(k: int, n: int, n_images: int | None = None) -> dict:
    return {**rate(k, n), "unit": "ROIs", "n_images": n if n_images is None else n_images}


def test_rate_at_the_pass_boundary():
    """min 0.8. 16/16: Wilson lower end 16/(16 + 1.96²) = 0.8064 >= 0.8: PASS. 15/15: 0.796:
    INCONCLUSIVE, and n* = ⌈1.96²·0.8·0.2/0.2²⌉ = ⌈15.37⌉ = 16: one more ROI, half an image."""
    assert judge(fig(16, 16), "min", 0.8, "rate")["status"] == PASS
    v = judge(fig(15, 15, n_images=30), "min", 0.8, "rate")
    assert v["status"] == INCONCLUSIVE
    assert v["more"]["units"] == 1 and v["more"]["towards"] == PASS and v["more"]["images"] == 2


def test_rate_at_the_fail_boundary():
    """min 0.5. 0/4: upper end 1.96²/(4 + 1.96²) = 0.4899 < 0.5: FAIL. 0/3: 0.5615: INCONCLUSIVE,
    towards a failure, which needs n > 1.96²·0.25/0.25 = 3.84: one more ROI."""
    assert judge(fig(0, 4), "min", 0.5, "rate")["status"] == FAIL
    v = judge(fig(0, 3), "min", 0.5, "rate")
    assert v["status"] == INCONCLUSIVE and v["more"]["towards"] == FAIL and v["more"]["units"] == 1


def test_max_thresholds_mirror_min():
    """max 0.5 on 0 of n: the upper end must reach 0.5 or below (n = 4 passes, n = 3 not yet);
    4 of 4 above max 0.5: lower end 0.5101 > 0.5 fails."""
    assert judge(fig(0, 4), "max", 0.5, "rate")["status"] == PASS
    assert judge(fig(0, 3), "max", 0.5, "rate")["status"] == INCONCLUSIVE
    assert judge(fig(4, 4), "max", 0.5, "rate")["status"] == FAIL


def test_nothing_to_judge_bootstrap_and_point_figures():
    assert judge(fig(0, 0), "min", 0.5, "rate")["status"] == INCONCLUSIVE
    # a bootstrap interval: v 0.6 [0.4, 0.8] from 10 images, min 0.5: n* = 10·(0.2/0.1)² = 40: 30 more
    v = judge({"value": 0.6, "ci95": [0.4, 0.8], "n": 10, "unit": "images", "n_images": 10}, "min", 0.5, "bootstrap")
    assert v["status"] == INCONCLUSIVE and (v["more"]["units"], v["more"]["images"]) == (30, 30)
    assert judge({"value": 0.6, "ci95": [0.52, 0.7], "n": 10}, "min", 0.5, "bootstrap")["status"] == PASS
    assert judge({"value": 0.6, "ci95": None, "n": 1}, "min", 0.5, "bootstrap")["status"] == INCONCLUSIVE
    # coverage: a fact, compared as it is
    assert judge({"value": 1.0, "n": 12}, "min", 1.0, "point")["status"] == PASS
    assert judge({"value": 11 / 12, "n": 12}, "min", 1.0, "point")["status"] == FAIL


def test_a_failure_wins_over_an_inconclusive_figure():
    assert combine([PASS, INCONCLUSIVE, FAIL]) == FAIL
    assert combine([PASS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([PASS, PASS]) == PASS


@pytest.mark.parametrize("p", [0.02, 0.3, 0.55, 0.75, 0.93, 1.0])
@pytest.mark.parametrize("t", [0.05, 0.5, 0.8, 0.9])
def test_wilson_count_is_the_smallest_that_clears(p, t):
    """The closed form against a search with the interval itself."""
    if p == t:
        return
    for to_fail in (False, True):
        want = wilson_n_needed(p, t, to_fail=to_fail)

        def clears(n: int) -> bool:
            lo, hi = wilson_interval(p * n, n)
            if to_fail:
                return lo > t if p > t else hi < t
            return lo >= t if p > t else hi <= t

        n = 1
        while not clears(n):
            n += 1
        assert want == n
    assert math.isclose(wilson_interval(16 * 1.0, 16)[0], 16 / (16 + 1.959963984540054 ** 2))


def test_map_interval_is_a_bootstrap_over_images():
    """Two images of one box each; the detector finds the first exactly and misses the
    second. mAP over both: precision 1 up to recall 0.5, so AP = 51/101 at every IoU
    threshold (COCO's 101 recall points), as pycocotools computes it. The resamples are
    {first, first}: 1, {second, second}: 0, mixed: 51/101; the 95% percentile interval
    runs from 0 to 1. Over the first image alone: 1 [1, 1]."""
    from oddsuite.metrics.coco import SliceEvaluator
    from oddsuite.report.verdicts import map_interval

    gt = {"images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 30, 30], "area": 900,
                           "iscrowd": 0}],
          "categories": [{"id": 1, "name": "car"}]}
    ev = SliceEvaluator(gt, [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.9}])
    value, ci, n_gt = map_interval(ev, gt["annotations"], [1, 2], None, "AP")
    assert n_gt == 2 and value == pytest.approx(51 / 101) and ci == pytest.approx([0.0, 1.0])
    assert value == pytest.approx(ev.slices({"all": [1, 2]})["all"]["map"])
    value, ci, n_gt = map_interval(ev, gt["annotations"], [1], 1, "AP50")
    assert (value, n_gt) == (pytest.approx(1.0), 1) and ci == pytest.approx([1.0, 1.0])
    assert map_interval(ev, gt["annotations"], [], None, "AP") == (None, None, 0)


def test_a_variant_beyond_the_odd_cannot_scope_a_criterion():
    text = SPEC.replace("acceptance:", "variants:\n  - name: base\n  - {name: fog, fog_visibility_m: 60}\nacceptance:")
    spec = parse_spec(text)
    from oddsuite.odd.coverage import odd_coverage

    assert odd_coverage(spec).beyond(spec.variants[1]) == ["environment.fog_visibility_m = 60"]
    assert odd_coverage(spec).beyond(spec.variants[0]) == []
    with pytest.raises(SpecError, match=r"acceptance.1.variant: variant 'fog' sets environment.fog_visibility_m = 60, "
                                        r"outside the spec's domains"):
        parse_spec(text + "  - {id: R2, text: x, metric: hit_rate, min: 0.5, variant: fog}\n")

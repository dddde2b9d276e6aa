"""COCO mAP with hotcoco as the engine: every one of the 12 figures of every slice EQUALS
pycocotools run on that slice alone (==, no tolerance), on randomized suite-shaped data and
on real suites (tests/test_metrics_coco_real.py); per-class AP and TIDE by hand."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coco_reference import per_class_reference, pycocotools_alone, suite_shaped, suite_slices
from oddsuite.metrics.coco import STAT_NAMES, TIDE_ERRORS, SliceEvaluator, engine_info

CATS = [{"id": 1, "name": "car"}, {"id": 2, "name": "pedestrian"}, {"id": 3, "name": "cyclist"}]


def assert_equals_pycocotools(gt, dets, per_class=True):
    """Every figure of every slice against pycocotools on the slice alone; returns the count."""
    ev = SliceEvaluator(gt, dets)
    slices = suite_slices(gt)
    got = ev.slices(slices)
    classed = ev.slices({k: slices[k] for k in ("full", "permutation")}, per_class=per_class)
    checked = 0
    for name, ids in slices.items():
        want, _, ref = pycocotools_alone(gt, dets, ids)
        for stat in STAT_NAMES:
            assert got[name][stat] == want[stat], (name, stat, got[name][stat], want[stat])  # exact
            checked += 1
        if per_class and name in classed and ids:
            assert {k: (v["ap"], v["ap50"]) for k, v in classed[name]["per_class"].items()} == \
                per_class_reference(ref), name
            assert {s: classed[name][s] for s in STAT_NAMES} == want
    return checked


@pytest.mark.parametrize("seed", range(4))
def test_suite_shaped_slices_equal_pycocotools_exactly(seed):
    # crowd regions, ROIs with no visible pixel, scenes without ROIs (images without ground
    # truth), images without detections, one image with 150 detections; ties on odd seeds
    gt, dets = suite_shaped(seed, n_scenes=4, tied_scores=bool(seed % 2))
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert max(np.bincount([d["image_id"] for d in dets])) > 100
    assert assert_equals_pycocotools(gt, dets) >= 12 * 15


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**31 - 1), n_scenes=st.integers(1, 3), max_rois=st.integers(0, 3),
       crowd=st.sampled_from([0.0, 0.3, 1.0]), tied=st.booleans(), crowded=st.booleans(),
       p_no_dets=st.sampled_from([0.0, 0.5, 1.0]))
def test_randomized_suites_equal_pycocotools_exactly(seed, n_scenes, max_rois, crowd, tied, crowded, p_no_dets):
    gt, dets = suite_shaped(seed, n_scenes=n_scenes, max_rois=max_rois, crowd=crowd, tied_scores=tied,
                            crowded_image=crowded, p_no_dets=p_no_dets)
    assert_equals_pycocotools(gt, dets)


def test_hand_made_map():
    # one car, one detection: IoU 0.52 (w 10, h 5.2 inside a 10 x 10 box) -> TP only at IoU .50
    gt = {"images": [{"id": 1, "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0,
                           "iscrowd": 0}],
          "categories": CATS[:1]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 5.2], "score": 0.9}]
    s = SliceEvaluator(gt, dets).stats([1])
    assert s["ap50"] == pytest.approx(1.0)
    assert s["ap75"] == pytest.approx(0.0)
    assert s["map"] == pytest.approx(0.1)  # 1 of 10 IoU thresholds
    assert (s["n_images"], s["n_gt"], s["n_ignore"], s["n_dets"]) == (1, 1, 0, 1)


def test_undefined_slices_and_no_detections():
    gt = {"images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0,
                           "iscrowd": 1}],
          "categories": CATS[:1]}
    ev = SliceEvaluator(gt, [])
    assert ev.stats([1])["map"] == 0.0  # ground truth, no detection: 0
    only_ignore = ev.stats([2])
    assert only_ignore["map"] is None and only_ignore["n_ignore"] == 1  # nothing to find: undefined
    empty = ev.stats([])
    assert empty["map"] is None and empty["n_images"] == 0
    # a slice may be named like hotcoco's own "_overall" entry
    assert ev.slices({"_overall": [1]})["_overall"]["map"] == 0.0
    with pytest.raises(ValueError, match="not in the ground truth"):
        ev.stats([99])
    with pytest.raises(ValueError, match="ground truth lacks"):
        SliceEvaluator(gt, [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])


def test_score_floor_drops_tiny_scores():
    gt, dets = suite_shaped(3, n_scenes=2)
    ids = [im["id"] for im in gt["images"]]
    low = [dict(d, score=0.0005) for d in dets[:5]]
    assert SliceEvaluator(gt, dets + low).stats(ids) == SliceEvaluator(gt, dets).stats(ids)


def test_per_class_ap_by_name():
    gt, dets = suite_shaped(5, n_scenes=3)
    ids = [im["id"] for im in gt["images"]]
    s = SliceEvaluator(gt, dets).stats(ids, per_class=True)
    assert set(s["per_class"]) == {"car", "person", "bicycle"}
    assert sum(v["n_gt"] for v in s["per_class"].values()) == s["n_gt"]
    aps = [v["ap"] for v in s["per_class"].values() if v["ap"] is not None]
    assert s["map"] == pytest.approx(float(np.mean(aps)))


def tide_case():
    """Two cars (image 1: A, image 2: B) and a pedestrian P (image 3).

    car detections, by score: 0.95 on empty road in image 2 (background error), 0.9 on A
    (IoU 1: TP), 0.85 on A again (IoU 0.9: duplicate), 0.7 a car box on P (IoU 1 with a
    pedestrian: classification error). B has no detection (missed). No pedestrian box.
    """
    gt = {"images": [{"id": i, "width": 100, "height": 100} for i in (1, 2, 3)],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0, "iscrowd": 0},
              {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0, "iscrowd": 0},
              {"id": 3, "image_id": 3, "category_id": 2, "bbox": [20, 20, 10, 10], "area": 100.0, "iscrowd": 0}],
          "categories": CATS[:2]}
    dets = [{"image_id": 2, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.95},
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.85},
            {"image_id": 3, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.7}]
    return gt, dets


def test_tide_error_breakdown_by_hand():
    gt, dets = tide_case()
    t = SliceEvaluator(gt, dets).tide([1, 2, 3])
    # AP50 per class with COCO's 101 recall points and precision envelope:
    # car: ranked FP(.95) TP(.9) FP(.85) FP(.7), 2 GT -> precision 0.5 up to recall 0.5, then nothing:
    #      AP = 0.5 * 51/101. pedestrian: no detection -> AP 0. Base (mean of 2 classes) = 51/404.
    base = 0.5 * 51 / 101 / 2
    assert t["ap_base"] == pytest.approx(base, abs=1e-12)
    # Bkg fixed (the .95 box gone): car precision 1 up to recall .5 -> 51/101; dAP = (51/101 - 51/202) / 2
    # Cls fixed (the .7 box becomes a pedestrian TP): pedestrian AP 1, car unchanged -> dAP = 1/2
    # Miss fixed (B dropped from car's ground truth): car 1 GT, precision .5 at recall 1 -> 0.5;
    #      P is not missed (the Cls error covers it) -> dAP = (0.5 - 51/202) / 2
    # Dupe fixed (the .85 box gone): it ranks after the last TP, AP unchanged -> 0. Loc, Both: none.
    want = {"Bkg": (51 / 101 - 51 / 202) / 2, "Cls": 0.5, "Miss": (0.5 - 51 / 202) / 2, "Dupe": 0.0, "Loc": 0.0,
            "Both": 0.0}
    for e, v in want.items():
        assert t["delta_ap"][e] == pytest.approx(v, abs=1e-12), e
    assert t["counts"] == {"Cls": 1, "Loc": 0, "Both": 0, "Dupe": 1, "Bkg": 1, "Miss": 1}
    assert set(t["delta_ap"]) == set(TIDE_ERRORS) | {"FP", "FN"}
    assert (t["n_images"], t["n_gt"], t["n_dets"], t["pos_thr"], t["bg_thr"]) == (3, 3, 4, 0.5, 0.1)


def test_tide_of_a_slice_equals_tide_of_those_images_alone():
    gt, dets = suite_shaped(8, n_scenes=3)
    ev = SliceEvaluator(gt, dets)
    full = [im["id"] for im in gt["images"] if im["mode"] == "full"]
    alone = {"images": [im for im in gt["images"] if im["id"] in full],
             "annotations": [a for a in gt["annotations"] if a["image_id"] in full], "categories": gt["categories"]}
    a = SliceEvaluator(alone, [d for d in dets if d["image_id"] in full]).tide(full)
    assert ev.tide(full) == a
    none = ev.tide([])
    assert none["ap_base"] is None and set(none["delta_ap"].values()) == {None}
    assert engine_info()["name"] == "hotcoco" and engine_info()["version"]

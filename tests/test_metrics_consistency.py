"""Pre/post consistency of two prediction sets (§6)."""
import numpy as np
import pandas as pd
import pytest

from oddsuite.metrics.consistency import consistency, match_sets
from oddsuite.metrics.matching import iou_xywh
from oddsuite.metrics.stats import wilson_interval

CAR, PED = 1, 2


def suite():
    images, anns = [], []
    for i, (variant, n) in enumerate([("clear", 2), ("fog", 2), ("fog", 1)], start=1):
        images.append({"id": i, "file_name": f"{i}.png", "width": 100, "height": 100, "scene_id": i,
                       "subset": list(range(n)), "n_rois": n, "variant": variant, "mode": "remove",
                       "is_full": True})
        for r in range(n):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": CAR if r == 0 else PED,
                         "bbox": [30.0 * r, 0.0, 20.0, 20.0], "area": 400.0, "iscrowd": 0, "roi_id": r,
                         "visible_fraction": 1.0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": CAR, "name": "car"}, {"id": PED, "name": "pedestrian"}]}


def preds_a():
    p = []
    for a in suite()["annotations"]:
        p.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.8})
    p.append({"image_id": 1, "category_id": CAR, "bbox": [70.0, 70.0, 10.0, 10.0], "score": 0.4})  # an fp
    return p


def test_self_consistency_is_full_agreement_and_no_flips():
    gt, a = suite(), preds_a()
    r = consistency(gt, a, [dict(d) for d in a], by=("variant",))
    o = r["overall"]
    assert o["agreement"]["value"] == 1.0 and o["agreement"]["k"] == 6 and o["agreement"]["n"] == 6
    assert o["flips"]["hit_to_not"]["value"] == 0.0 and o["flips"]["not_to_hit"]["value"] == 0.0
    assert o["flips"]["n"] == 5
    assert o["score_drift"] == {"value": 0.0, "n": 6}
    assert o["map"]["delta"]["map"] == 0.0 and o["map"]["a"]["map"] == o["map"]["b"]["map"]
    assert r["top_images"] == []
    assert set(r["slices"]["variant"]) == {"clear", "fog"}
    assert r["slices"]["variant"]["fog"]["n_images"] == 2


def test_a_lost_detection_and_score_drift():
    gt, a = suite(), preds_a()
    b = [dict(d, score=d["score"] + 0.1) for d in a if not (d["image_id"] == 2 and d["category_id"] == PED)]
    r = consistency(gt, a, b, by=("variant", "category"), scenes=None)
    o = r["overall"]
    # image 2 lost its pedestrian: 5 of 6 pairs matched, max(|A|, |B|) summed = 3 + 2 + 1 = 6
    assert (o["agreement"]["k"], o["agreement"]["n"]) == (5, 6)
    assert o["flips"]["hit_to_not"]["k"] == 1 and o["flips"]["not_to_hit"]["k"] == 0
    assert o["score_drift"]["value"] == pytest.approx(0.1) and o["score_drift"]["n"] == 5
    assert r["top_images"][0]["image_id"] == 2 and r["top_images"][0]["hit_to_not"] == 1
    fog = r["slices"]["variant"]["fog"]
    assert fog["flips"]["hit_to_not"]["k"] == 1 and fog["flips"]["n"] == 3
    assert r["slices"]["variant"]["clear"]["flips"]["hit_to_not"]["k"] == 0
    # a ROI-level column carries flips only
    ped = r["slices"]["category"]["pedestrian"]
    assert list(ped) == ["flips"]
    assert ped["flips"]["hit_to_not"] == {"value": 0.5, "k": 1, "n": 2, "ci95": list(wilson_interval(1, 2))}
    assert ped["flips"]["not_to_hit"]["value"] == 0.0 and ped["flips"]["n"] == 2
    assert o["map"]["delta"]["map"] < 0


def test_slices_by_scene_parameter_columns():
    gt, a = suite(), preds_a()
    scenes = pd.DataFrame({"image_id": [1, 2, 3], "environment.fog_visibility_m": [1000.0, 80.0, 80.0]})
    r = consistency(gt, a, a, scenes=scenes, by=("environment.fog_visibility_m",))
    assert set(r["slices"]["environment.fog_visibility_m"]) == {"1000.0", "80.0"}
    with pytest.raises(KeyError):
        consistency(gt, a, a, by=("no_such_column",))


def test_hungarian_beats_greedy():
    # a0 overlaps b0 best (IoU 9/11) but also b1 (7/13); a1 overlaps only b0 (7/13).
    # Greedy would pair a0-b0 and leave a1 alone; the assignment pairs both.
    a = np.array([[0, 0, 10, 10], [-2, 0, 10, 10]], float)
    b = np.array([[1, 0, 10, 10], [3, 0, 10, 10]], float)
    m = iou_xywh(a, b)
    assert m[0, 0] > m[0, 1] >= 0.5 and m[1, 0] >= 0.5 and m[1, 1] < 0.5
    pairs = match_sets(a, np.array([CAR, CAR]), b, np.array([CAR, CAR]), iou=0.5)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 0)]
    # other classes never match
    assert match_sets(a, np.array([CAR, CAR]), b, np.array([PED, PED])) == []

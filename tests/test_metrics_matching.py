"""ROI outcomes (hit / mislabel / miss), worked out by hand."""
import math

import numpy as np
import pytest

from oddsuite.metrics.matching import RoiTruth, match_image, outcome_tables

CAR, PED = 1, 2


def rois():
    return [
        RoiTruth(0, CAR, (0, 0, 10, 10), False, 1.0),      # A
        RoiTruth(1, PED, (20, 0, 10, 10), False, 1.0),     # B
        RoiTruth(2, CAR, (40, 0, 10, 10), True, 0.05),     # C: ignore region (visible < min_visible)
        RoiTruth(3, CAR, None, True, 0.0),                 # D: no visible pixel
    ]


def test_hit_mislabel_ignore_not_visible_and_statuses():
    boxes = np.array([
        [0, 0, 10, 10],    # d0 car .9  -> hit A
        [20, 0, 10, 10],   # d1 car .8  -> B is a pedestrian: mislabel
        [40, 0, 10, 10],   # d2 car .7  -> on the ignore region: neither TP nor FP
        [60, 60, 5, 5],    # d3 car .6  -> nothing there: fp
        [0, 0, 10, 10],    # d4 car .1  -> below conf 0.25: not considered
        [0, 1, 10, 10],    # d5 car .5  -> duplicate of A (IoU 0.82), A already taken: fp
    ], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.5])
    cats = np.array([CAR, CAR, CAR, CAR, CAR, CAR])
    m = match_image(rois(), boxes, scores, cats, iou=0.5, conf=0.25)
    assert m.outcome == ["hit", "mislabel", "hit", "miss"]
    assert m.score[:3] == [0.9, 0.8, 0.7] and math.isnan(m.score[3])
    assert m.iou[0] == 1.0 and math.isnan(m.iou[3])  # not visible: no IoU
    assert m.pred_category_id == [None, CAR, None, None]
    assert m.det_status == ["tp", "mislabel", "ignored", "fp", "below_conf", "fp"]
    assert m.det_roi == [0, 1, 2, -1, -1, -1]


def test_greedy_by_score_one_detection_per_roi():
    r = [RoiTruth(0, CAR, (0, 0, 10, 10), False, 1.0)]
    # the lower-scored box fits better, but the higher-scored one is matched first (as COCO)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10]], dtype=float)
    m = match_image(r, boxes, np.array([0.4, 0.9]), np.array([CAR, CAR]))
    assert m.outcome == ["hit"] and m.score == [0.9] and m.iou[0] == pytest.approx(90 / 110)
    assert m.det_status == ["fp", "tp"]


def test_detection_takes_best_iou_roi_and_hit_beats_mislabel():
    r = [RoiTruth(0, CAR, (0, 0, 10, 10), False, 1.0), RoiTruth(1, CAR, (4, 0, 10, 10), False, 1.0)]
    # one car box at x=3: IoU 0.54 with roi 0 (7*10/130), 0.82 with roi 1 (9*10/110) -> roi 1
    m = match_image(r, np.array([[3, 0, 10, 10]], float), np.array([0.9]), np.array([CAR]))
    assert m.outcome == ["miss", "hit"]
    assert m.iou[0] == pytest.approx(70 / 130)  # a miss still reports its best IoU
    # a higher-scored wrong-class box and a right-class box on the same ROI: hit
    r = [RoiTruth(0, CAR, (0, 0, 10, 10), False, 1.0)]
    m = match_image(r, np.array([[0, 0, 10, 10], [0, 0, 10, 9]], float), np.array([0.95, 0.3]),
                    np.array([PED, CAR]))
    assert m.outcome == ["hit"] and m.det_status == ["fp", "tp"]


def test_iou_threshold_is_inclusive_and_conf_threshold():
    r = [RoiTruth(0, CAR, (0, 0, 10, 10), False, 1.0)]
    half = np.array([[0, 0, 10, 5]], float)  # IoU exactly 0.5
    assert match_image(r, half, np.array([0.9]), np.array([CAR]), iou=0.5).outcome == ["hit"]
    assert match_image(r, half, np.array([0.9]), np.array([CAR]), iou=0.51).outcome == ["miss"]
    full = np.array([[0, 0, 10, 10]], float)
    assert match_image(r, full, np.array([0.25]), np.array([CAR]), conf=0.25).outcome == ["hit"]
    assert match_image(r, full, np.array([0.2499]), np.array([CAR]), conf=0.25).outcome == ["miss"]


def test_outcome_table_rows_and_not_visible_category():
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100, "scene_id": 4, "subset": [0, 1], "n_rois": 2,
                    "variant": "clear", "mode": "remove", "is_full": True}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": CAR, "bbox": [0, 0, 10, 10], "area": 100.0,
                         "iscrowd": 0, "roi_id": 0, "visible_fraction": 0.9}],
        "categories": [{"id": CAR, "name": "car"}, {"id": PED, "name": "pedestrian"}],
    }
    dets = [{"image_id": 1, "category_id": PED, "bbox": [0, 0, 10, 10], "score": 0.8}]
    out, det = outcome_tables(gt, dets, roi_categories={(4, 1): PED})
    assert out["roi_id"].tolist() == [0, 1]
    assert out["outcome"].tolist() == ["mislabel", "miss"]
    assert out["pred_category"].tolist()[0] == "pedestrian"
    assert out["not_visible"].tolist() == [False, True]
    assert out["category"].tolist() == ["car", "pedestrian"]  # from rois.parquet for the invisible ROI
    assert out["subset"].tolist() == ["0,1", "0,1"] and out["subset_size"].tolist() == [2, 2]
    assert det["status"].tolist() == ["mislabel"] and det["roi_id"].tolist() == [0]

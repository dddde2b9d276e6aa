"""Inference conditions (metrics.md §7) as Detector wrappers: parsing, the exact geometry of
tiles, scale and crop worked out by hand, and sahi's merge of boxes a tile border cuts.

The wrapped detector is a real one of a user's kind: it finds pure-red blobs in the pixels it
is given (tests/test_evaluate.PixelDetector), so each tile reports the part of a red box that
lies in it, in the tile's own pixels."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from oddsuite.models.conditions import (ConditionDetector, ConditionRecipe, InferenceCondition, merge_tiles,
                                        parse_condition, parse_conditions, tile_windows)
from test_evaluate import RED, PixelDetector

# A 200 x 100 frame, 2 x 2 tiles, overlap 0.2 (sahi.slicing.get_slice_bboxes):
#   tile width  = ceil(200 / (2 - 1 * 0.2)) = ceil(111.1) = 112; x overlap = int(0.2 * 112) = 22
#   tile height = ceil(100 / 1.8) = ceil(55.6) = 56;            y overlap = int(0.2 * 56) = 11
#   columns: [0, 112]; next x0 = 112 - 22 = 90, x1 = 202 > 200, so moved back: [200 - 112, 200] = [88, 200]
#   rows:    [0, 56];  next y0 = 56 - 11 = 45, y1 = 101 > 100, so moved back: [100 - 56, 100] = [44, 100]
TILES = [(0, 0, 112, 56), (88, 0, 200, 56), (0, 44, 112, 100), (88, 44, 200, 100)]


def frame(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """A grey 200 x 100 frame with pure-red rectangles (x0, y0, x1, y1; x1, y1 exclusive)."""
    img = np.full((100, 200, 3), 40, np.uint8)
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = RED
    return img


def test_parse_names_and_errors():
    assert parse_condition("tiles:2x2:0.2") == InferenceCondition("tiles", cols=2, rows=2, overlap=0.2)
    assert parse_condition("tiles:3x2").overlap == 0.2  # sahi's default overlap
    assert parse_condition("scale:0.50").name == "scale:0.5"
    assert parse_condition("crop:0.6").folder == "inference/crop-0.6"
    assert [c.name for c in parse_conditions("scale:0.25,tiles:2x2:0.2")] == ["reference", "scale:0.25",
                                                                              "tiles:2x2:0.2"]
    for bad, why in [("scale:1.5", "factor must be in"), ("tiles:2x2:0.7", "overlap ratio"), ("tiles:1x1", "at least 2"),
                     ("zoom:2", "expected reference, scale:F"), ("crop:0", "factor must be in")]:
        with pytest.raises(ValueError, match=why):
            parse_condition(bad)
    with pytest.raises(ValueError, match="given twice"):
        parse_conditions("scale:0.5,scale:0.50")
    with pytest.raises(ValueError, match="empty entry"):
        parse_conditions("reference,,scale:0.5")


def test_tile_windows_by_hand():
    assert tile_windows(100, 200, 2, 2, 0.2) == TILES
    c = parse_condition("tiles:2x2:0.2")
    assert [v.box for v in c.views(100, 200)] == TILES
    # a 640 x 480 frame (the shipped specs): width ceil(640 / 1.8) = 356, step 356 - int(71.2) = 285, the
    # second column moved back to [640 - 356, 640] = [284, 640]; height ceil(480 / 1.8) = 267 -> [213, 480]
    assert tile_windows(480, 640, 2, 2, 0.2) == [(0, 0, 356, 267), (284, 0, 640, 267),
                                                 (0, 213, 356, 480), (284, 213, 640, 480)]


def test_box_across_a_tile_border_is_mapped_back_and_merged():
    # A = [80, 120) x [10, 30): crosses the border of tile 0 (x1 = 112) and of tile 1 (x0 = 88), top row only.
    # B = [40, 160) x [60, 90): wider than the 24-pixel overlap band [88, 112), bottom row only.
    inner = PixelDetector()
    det = ConditionDetector(inner, parse_condition("tiles:2x2:0.2"))
    views = det.predict_views([frame((80, 10, 120, 30), (40, 60, 160, 90))])[0]
    # tile 0 [0,112)x[0,56) sees A's x 80..111       -> tile box [80, 10, 112, 30]  -> frame + (0, 0)
    # tile 1 [88,200)x[0,56) sees A's x 88..119      -> tile box [0, 10, 32, 30]    -> frame + (88, 0) = [88, 10, 120, 30]
    # tile 2 [0,112)x[44,100) sees B's x 40..111     -> tile box [40, 16, 112, 46]  -> frame + (0, 44) = [40, 60, 112, 90]
    # tile 3 [88,200)x[44,100) sees B's x 88..159    -> tile box [0, 16, 72, 46]    -> frame + (88, 44) = [88, 60, 160, 90]
    assert views.boxes.tolist() == [[80, 10, 112, 30], [88, 10, 120, 30], [40, 60, 112, 90], [88, 60, 160, 90]]
    merged = det.predict([frame((80, 10, 120, 30), (40, 60, 160, 90))])[0]
    # A's halves: intersection [88, 112) x [10, 30) = 24 * 20 = 480; each half 32 * 20 = 640;
    #   IOS = 480 / 640 = 0.75 >= 0.5 -> merged into the union [80, 10, 120, 30]: A exactly.
    # B's halves: intersection [88, 112) x [60, 90) = 24 * 30 = 720; each half 72 * 30 = 2160;
    #   IOS = 720 / 2160 = 0.33 < 0.5 -> both kept (B is reported as two boxes, each IoU 2160 / 3600 = 0.6).
    assert sorted(merged.boxes.tolist()) == [[40, 60, 112, 90], [80, 10, 120, 30], [88, 60, 160, 90]]
    assert merged.scores.tolist() == pytest.approx([0.9, 0.9, 0.9])
    assert (inner.calls, inner.images_seen) == (2, 8)  # one inner predict call per frame, with its four tiles


def test_low_scores_do_not_widen_a_confident_box():
    # a confident half-box and a low-score box around both A halves and more: merged apart
    boxes = np.array([[80, 10, 112, 30], [88, 10, 120, 30], [0, 0, 150, 50]], float)
    m = merge_tiles(boxes, np.array([0.9, 0.8, 0.01]), np.array([0, 0, 0]), merge_conf=0.25)
    # the two confident boxes: IOS 0.75 -> [80, 10, 120, 30] at 0.9; the low box alone: kept as it is
    assert m.boxes.tolist() == [[80, 10, 120, 30], [0, 0, 150, 50]]
    assert m.scores.tolist() == pytest.approx([0.9, 0.01])
    # merged at a floor below every score, the low box (IOS 1 with each half) widens A to [0, 0, 150, 50]
    assert merge_tiles(boxes, np.array([0.9, 0.8, 0.01]), np.array([0, 0, 0]), merge_conf=0.0).boxes.tolist() == \
        [[0, 0, 150, 50]]
    # another class is never merged
    assert len(merge_tiles(boxes[:2], np.array([0.9, 0.8]), np.array([0, 1]), merge_conf=0.25)) == 2


def test_scale_and_crop_map_back_by_hand():
    img = frame((80, 10, 120, 30))
    inner = PixelDetector()
    small = ConditionDetector(inner, parse_condition("scale:0.5"))
    # 200 x 100 -> 100 x 50 (INTER_AREA averages 2 x 2 blocks; A's blocks are all red): [40, 5, 60, 15] x 2
    assert small.predict([img])[0].boxes.tolist() == [[80, 10, 120, 30]]
    crop = parse_condition("crop:0.6")
    # keeps round(0.6 * 200) = 120 x round(0.6 * 100) = 60 from ((200 - 120) // 2, (100 - 60) // 2) = (40, 20)
    assert crop.window(100, 200) == (40, 20, 160, 80)
    # A's rows 20..29 are in view: crop box [40, 0, 80, 10] + (40, 20) = [80, 20, 120, 30]
    assert ConditionDetector(inner, crop).predict([img])[0].boxes.tolist() == [[80, 20, 120, 30]]


def test_wrapper_info_and_recipe_wrap_the_inner_detector(lively_model):
    from oddsuite.models import load_detector

    base = load_detector(lively_model)
    c = parse_condition("tiles:2x2:0.2")
    det = c.wrap(base, merge_conf=0.3)
    assert det.name == f"{base.name}@tiles:2x2:0.2"
    assert det.info.sha256 == base.info.sha256 and det.info.input_hw == base.info.input_hw
    assert det.info.recipe == ConditionRecipe(base.info.recipe, c, 0.3)
    again = pickle.loads(pickle.dumps(det.info.recipe)).load()  # as a worker re-creates it
    img = np.asarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3)), np.uint8)
    a, b = det.predict([img])[0], again.predict([img])[0]
    assert a.boxes.tolist() == b.boxes.tolist() and a.scores.tolist() == b.scores.tolist()
    assert parse_condition("reference").wrap(base) is base

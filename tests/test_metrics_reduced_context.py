"""Reduced context (metrics.md §7) on hand-made cases: the ground truth of a crop, the tile
cut, and context retention, each worked out in the test."""
from __future__ import annotations

import pandas as pd
import pytest

from oddsuite.metrics.reduced_context import clip_ground_truth, context_retention, tile_cut

TILES = [(0, 0, 112, 56), (88, 0, 200, 56), (0, 44, 112, 100), (88, 44, 200, 100)]  # 2 x 2 of 200 x 100


def test_clip_ground_truth_by_hand():
    gt = {"info": {"min_visible": 0.3}, "categories": [{"id": 1, "name": "car"}],
          "images": [{"id": 1, "width": 200, "height": 100}],
          "annotations": [
              # A: box [80, 120) x [10, 30) (800 px^2), visible 0.9. The crop [40, 160) x [20, 80) keeps [20, 30)
              #    of it: 40 x 10 = 400, share 0.5 -> visible 0.9 * 0.5 = 0.45 >= 0.3: still scored, area 600 * 0.5
              {"id": 1, "image_id": 1, "category_id": 1, "roi_id": 0, "bbox": [80, 10, 40, 20], "area": 600.0,
               "iscrowd": 0, "visible_fraction": 0.9},
              # B: box [30, 50) x [50, 70) (400), visible 0.5; in view [40, 50) x [50, 70) = 200, share 0.5
              #    -> 0.25 < 0.3: an ignore region now
              {"id": 2, "image_id": 1, "category_id": 1, "roi_id": 1, "bbox": [30, 50, 20, 20], "area": 300.0,
               "iscrowd": 0, "visible_fraction": 0.5},
              # C: box [0, 30) x [0, 15): nothing of it in view -> dropped (not visible under the crop)
              {"id": 3, "image_id": 1, "category_id": 1, "roi_id": 2, "bbox": [0, 0, 30, 15], "area": 450.0,
               "iscrowd": 0, "visible_fraction": 1.0},
          ]}
    out = clip_ground_truth(gt, lambda h, w: (40, 20, 160, 80))
    a, b = out["annotations"]
    assert a["bbox"] == [80, 20, 40, 10] and a["visible_fraction"] == pytest.approx(0.45) and a["iscrowd"] == 0
    assert a["area"] == pytest.approx(300.0)
    assert b["bbox"] == [40, 50, 10, 20] and b["visible_fraction"] == pytest.approx(0.25) and b["iscrowd"] == 1
    assert [x["roi_id"] for x in out["annotations"]] == [0, 1]
    assert len(gt["annotations"]) == 3 and gt["annotations"][0]["bbox"] == [80, 10, 40, 20]  # input unchanged
    # with the suite's default min_visible (0.1 when info has none) B stays scored
    del gt["info"]
    assert clip_ground_truth(gt, lambda h, w: (40, 20, 160, 80))["annotations"][1]["iscrowd"] == 0


def test_tile_cut_by_hand():
    boxes = [
        [80, 10, 40, 20],   # x 80..120: tile 0 ends at 112, tile 1 starts at 88 -> no tile holds it: cut
        [20, 10, 40, 20],   # x 20..60, y 10..30: whole in tile 0
        [95, 10, 10, 20],   # x 95..105 lies in the overlap band 88..112: whole in tiles 0 and 1
        [20, 40, 20, 10],   # y 40..50 lies in row 0 (0..56): whole in tile 0, though row 1's border (44) cuts it
        [20, 50, 20, 10],   # y 50..60: tile 0 ends at 56 (cut), tile 2 holds 44..100: whole in tile 2
        [100, 40, 10, 30],  # x 100..110 (in both columns), y 40..70: row 0 ends at 56, row 1 starts at 44 -> cut
    ]
    assert tile_cut(boxes, TILES).tolist() == [True, False, False, False, False, True]


def _rows(rows):
    cols = ["image_id", "scene_id", "roi_id", "variant", "mode", "category", "ignore", "not_visible", "outcome"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_context_retention_by_hand():
    # full-scene image 1 (scene 0): ROIs 0..4; permutation images 2 and 3 (mode remove) of ROIs 0 and 1
    ref = _rows([
        (1, 0, 0, "base", "full", "car", False, False, "hit"),
        (1, 0, 1, "base", "full", "car", False, False, "hit"),
        (1, 0, 2, "base", "full", "person", False, False, "hit"),
        (1, 0, 3, "base", "full", "person", False, False, "miss"),
        (1, 0, 4, "base", "full", "person", True, False, "miss"),      # ignore region: never a unit
        (2, 0, 0, "base", "remove", "car", False, False, "hit"),
        (2, 0, 1, "base", "remove", "car", False, False, "hit"),
        (3, 0, 0, "base", "remove", "car", False, False, "hit"),
    ])
    cond = _rows([
        (1, 0, 0, "base", "full", "car", False, False, "hit"),
        (1, 0, 1, "base", "full", "car", False, False, "miss"),
        (1, 0, 2, "base", "full", "person", False, True, "miss"),    # out of view under the condition
        (1, 0, 3, "base", "full", "person", False, False, "hit"),    # gained
        (1, 0, 4, "base", "full", "person", True, False, "miss"),
        (2, 0, 0, "base", "remove", "car", False, False, "miss"),
        (2, 0, 1, "base", "remove", "car", False, False, "hit"),
        (3, 0, 0, "base", "remove", "car", False, False, "hit"),
    ]).assign(tile_cut=[True, False, False, False, False, True, False, False])
    r = context_retention(ref, cond)
    # full scenes: reference hits = ROIs 0, 1, 2; ROI 2 is out of view -> n = 2, k = 1 (ROI 0)
    assert (r["full"]["k"], r["full"]["n"], r["full"]["n_out_of_view"]) == (1, 2, 1)
    assert r["full"]["value"] == 0.5
    assert r["by_class"]["car"]["value"] == 0.5 and r["by_class"]["person"]["n"] == 0
    assert r["by_class"]["person"]["value"] is None and r["by_class"]["person"]["n_out_of_view"] == 1
    # tile cut: ROI 0 is cut (and kept), ROI 1 is whole (and lost)
    assert (r["by_tile_cut"]["cut"]["k"], r["by_tile_cut"]["cut"]["n"]) == (1, 1)
    assert (r["by_tile_cut"]["whole"]["k"], r["by_tile_cut"]["whole"]["n"]) == (0, 1)
    # permutations: unit (ROI 0, remove) kept in 1 of its 2 images -> 0.5; unit (ROI 1, remove) 1 of 1 -> 1.0
    assert r["permutation"]["value"] == pytest.approx(0.75)
    assert (r["permutation"]["n"], r["permutation"]["n_pairs"]) == (2, 3)
    # gained: reference non-hit scored = ROI 3, a hit under the condition -> 1 / 1
    assert (r["gained"]["k"], r["gained"]["n"]) == (1, 1)
    assert context_retention(ref, cond.drop(columns="tile_cut"))["by_tile_cut"] is None
    with pytest.raises(ValueError, match="no row for"):
        context_retention(ref, cond.iloc[1:])

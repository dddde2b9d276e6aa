"""COCO mAP: per-slice figures from one evaluate() equal pycocotools run on each slice alone."""
import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from oddsuite.metrics.coco import STAT_NAMES, SliceEvaluator

CATS = [{"id": 1, "name": "car"}, {"id": 2, "name": "pedestrian"}, {"id": 3, "name": "cyclist"}]


def synthetic(n_images=120, seed=0):
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": 640, "height": 480, "file_name": f"{i}.png"})
        for _ in range(int(rng.integers(0, 5))):
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(4, 150, 2)
            c = int(rng.integers(1, 4))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": int(rng.random() < 0.1)})
            if rng.random() < 0.8:
                dets.append({"image_id": i, "category_id": c if rng.random() < 0.85 else 1,
                             "bbox": [x + rng.normal(0, 4), y + rng.normal(0, 4), w * rng.uniform(0.8, 1.2), h],
                             "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 3))):
            dets.append({"image_id": i, "category_id": int(rng.integers(1, 4)),
                         "bbox": [float(v) for v in rng.uniform(0, 500, 2)] + [30.0, 20.0],
                         "score": float(rng.random() * 0.6)})
    return {"images": images, "annotations": anns, "categories": CATS}, dets


def pycocotools_alone(gt, dets, img_ids, tmp_path):
    """The reference: plain pycocotools, from a file, on the slice only."""
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
        res = coco.loadRes(copy.deepcopy([d for d in dets if d["score"] >= 0.001]))
        ev = COCOeval(coco, res, "bbox")
        ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("method", ["fast", "pycocotools"])
def test_per_slice_equals_pycocotools_alone_exactly(tmp_path, method):
    gt, dets = synthetic()
    ev = SliceEvaluator(gt, dets, method=method)
    rng = np.random.default_rng(1)
    slices = {
        "first_half": range(1, 61),
        "odd": range(1, 121, 2),
        "random": rng.choice(np.arange(1, 121), size=37, replace=False).tolist(),
        "one": [17],
        "all": range(1, 121),
        "no_dets": [i for i in range(1, 121) if i not in {d["image_id"] for d in dets}],
    }
    got = ev.slices(slices, per_class=True)
    for name, ids in slices.items():
        ref = pycocotools_alone(gt, dets, list(ids), tmp_path)
        for k, stat in enumerate(STAT_NAMES):
            want = None if ref[k] < 0 else float(ref[k])
            assert got[name][stat] == want, (name, stat)  # float equality, no tolerance


def test_fast_accumulate_equals_pycocotools_arrays():
    gt, dets = synthetic(80, seed=11)
    fast, orig = SliceEvaluator(gt, dets), SliceEvaluator(gt, dets, method="pycocotools")
    for ids in (range(1, 81), range(5, 50, 3), [2, 3]):
        a, b = fast._slice_eval(sorted(ids)).eval, orig._slice_eval(sorted(ids)).eval
        for key in ("precision", "recall", "scores"):
            assert np.array_equal(a[key], b[key]), key


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
    ev = SliceEvaluator(gt, [])  # loadRes cannot take [], the evaluator still works
    assert ev.stats([1])["map"] == 0.0  # ground truth, no detection: 0
    only_ignore = ev.stats([2])
    assert only_ignore["map"] is None and only_ignore["n_ignore"] == 1  # nothing to find: undefined
    empty = ev.stats([])
    assert empty["map"] is None and empty["n_images"] == 0
    with pytest.raises(ValueError, match="not in the ground truth"):
        ev.stats([99])


def test_score_floor_drops_tiny_scores():
    gt, dets = synthetic(20, seed=3)
    low = [dict(d, score=0.0005) for d in dets[:5]]
    assert SliceEvaluator(gt, dets + low).stats(range(1, 21)) == SliceEvaluator(gt, dets).stats(range(1, 21))


def test_per_class_ap_by_name():
    gt, dets = synthetic(30, seed=5)
    s = SliceEvaluator(gt, dets).stats(range(1, 31), per_class=True)
    assert set(s["per_class"]) == {"car", "pedestrian", "cyclist"}
    assert sum(v["n_gt"] for v in s["per_class"].values()) == s["n_gt"]
    aps = [v["ap"] for v in s["per_class"].values() if v["ap"] is not None]
    assert s["map"] == pytest.approx(float(np.mean(aps)))

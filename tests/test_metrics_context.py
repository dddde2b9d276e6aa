"""Context accuracy (§3), context-induced false positives (§4), ROI influence (§5), by hand."""
from itertools import combinations

import pytest

from oddsuite.metrics.coco import SliceEvaluator
from oddsuite.metrics.context import context_accuracy, roi_influence
from oddsuite.metrics.stats import bootstrap_mean
from oddsuite.metrics.summary import score_predictions

CAR, PED = 1, 2
BOX = {0: [0, 0, 10, 10], 1: [20, 0, 10, 10], 2: [40, 0, 10, 10]}
SCENE_CATS = {0: {0: CAR, 1: PED}, 1: {0: CAR, 1: CAR, 2: CAR}}


def build():
    """Scene 0: a car (roi 0) and a pedestrian (roi 1); images {0}, {1}, {0,1} (remove) and the
    full scene (mode full). Scene 1: three cars, every non-empty subset (remove)."""
    images, anns, ids = [], [], {}

    def add(scene, subset, mode="remove"):
        image_id = len(images) + 1
        n = len(SCENE_CATS[scene])
        images.append({"id": image_id, "file_name": f"images/{scene:06d}/{image_id}.png", "width": 100,
                       "height": 100, "scene_id": scene, "subset": list(subset), "n_rois": n,
                       "variant": "clear", "mode": mode, "is_full": len(subset) == n})
        for r in subset:
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": SCENE_CATS[scene][r],
                         "bbox": list(map(float, BOX[r])), "area": 100.0, "iscrowd": 0, "roi_id": r,
                         "visible_fraction": 1.0})
        ids[(scene, tuple(subset), mode)] = image_id

    for s in ([0], [1], [0, 1]):
        add(0, s)
    add(0, [0, 1], mode="full")
    for k in (1, 2, 3):
        for s in combinations(range(3), k):
            add(1, list(s))
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": CAR, "name": "car"}, {"id": PED, "name": "pedestrian"}], "info": {"min_visible": 0.1}}
    return gt, ids


def det(image_id, cat, box, score=0.9):
    return {"image_id": image_id, "category_id": cat, "bbox": list(map(float, box)), "score": score}


def predictions(ids):
    p = [
        det(ids[(0, (0,), "remove")], CAR, BOX[0]),
        det(ids[(0, (0,), "remove")], CAR, [70, 70, 10, 10], 0.3),   # fp, also seen alone
        det(ids[(0, (1,), "remove")], PED, BOX[1]),
        det(ids[(0, (0,), "remove")], CAR, [30, 30, 10, 10], 0.2),  # below conf: explains nothing
        # context: the car (a hit alone) becomes a miss; one fp explained by the isolated image,
        # one fp that no single-ROI image has: context-induced
        det(ids[(0, (0, 1), "remove")], PED, BOX[1]),
        det(ids[(0, (0, 1), "remove")], CAR, [70, 70, 10, 10], 0.3),
        det(ids[(0, (0, 1), "remove")], CAR, [50, 50, 10, 10], 0.6),
        # a car box on the pedestrian (already found by the .9 box): a wrong-class box on a ROI,
        # which is a mislabel matter, not a context FP, though no single-ROI image has a car there
        det(ids[(0, (0, 1), "remove")], CAR, BOX[1], 0.7),
        # a car box where the isolated car image has one only below conf: context-induced
        det(ids[(0, (0, 1), "remove")], CAR, [30, 30, 10, 10], 0.4),
        # full scene: its mode has no single-ROI image, so its fp cannot be judged (unscored)
        det(ids[(0, (0, 1), "full")], CAR, BOX[0]),
        det(ids[(0, (0, 1), "full")], PED, BOX[1]),
        det(ids[(0, (0, 1), "full")], CAR, [80, 80, 5, 5], 0.5),
    ]
    hits = {(0,): [0], (1,): [1], (2,): [2], (0, 1): [0, 1], (0, 2): [0], (1, 2): [], (0, 1, 2): []}
    for subset, hit in hits.items():
        p += [det(ids[(1, subset, "remove")], CAR, BOX[r]) for r in hit]
    return p


@pytest.fixture(scope="module")
def scored():
    gt, ids = build()
    return gt, ids, score_predictions(gt, predictions(ids))


def test_context_turns_a_hit_into_a_miss(scored):
    _, ids, s = scored
    o = s.outcomes.set_index(["image_id", "roi_id"])["outcome"]
    assert o[(ids[(0, (0,), "remove")], 0)] == "hit"
    assert o[(ids[(0, (0, 1), "remove")], 0)] == "miss"
    assert o[(ids[(0, (0, 1), "remove")], 1)] == "hit"


def test_context_accuracy_per_roi_then_averaged(scored):
    _, _, s = scored
    ca = s.metrics["context_accuracy"]
    # units (scene, roi): s0r0 0/1, s0r1 1/1, s1r0 2/3, s1r1 1/3, s1r2 0/3 -> mean 2/5 (pooled would be 4/11)
    assert ca["overall"]["value"] == pytest.approx(0.4)
    assert ca["overall"]["n"] == 5 and ca["overall"]["n_pairs"] == 11
    assert ca["overall"]["n_occluded_in_context"] == 0
    # the interval is the seeded bootstrap over the 5 units' fractions (not a Wilson interval)
    assert ca["overall"]["ci95"] == bootstrap_mean([0.0, 1.0, 2 / 3, 1 / 3, 0.0])["ci95"]
    assert ca["by_class"]["car"]["value"] == pytest.approx(0.25)   # (0 + 2/3 + 1/3 + 0) / 4
    assert (ca["by_class"]["car"]["n"], ca["by_class"]["car"]["n_pairs"]) == (4, 10)
    assert ca["by_class"]["pedestrian"]["value"] == 1.0
    assert ca["by_subset_size"]["2"]["value"] == pytest.approx(0.5)  # 0, 1, 1, 1/2, 0
    assert (ca["by_subset_size"]["2"]["n"], ca["by_subset_size"]["2"]["n_pairs"]) == (5, 8)
    assert ca["by_subset_size"]["3"]["value"] == 0.0 and ca["by_subset_size"]["3"]["n"] == 3
    assert set(ca["by_variant"]) == {"clear"} and set(ca["by_mode"]) == {"remove"}


def test_context_accuracy_undefined_without_isolated_hits(scored):
    _, _, s = scored
    no_iso = s.outcomes.loc[s.outcomes["subset_size"] != 1]
    r = context_accuracy(no_iso)
    assert r["value"] is None and r["n"] == 0 and r["ci95"] is None
    assert context_accuracy(no_iso, "category") == {}


def test_context_induced_false_positives(scored):
    _, ids, s = scored
    fp = s.metrics["context_fp"]
    # image {0,1} remove: background boxes (score >= .25, IoU < .5 with every annotated box) at
    # (70,70) .3, (50,50) .6, (30,30) .4 -> 3; the car box on the pedestrian overlaps a ROI: not one.
    # (70,70) matches the .3 car of image {0}; (30,30) matches only a .2 car there, below conf:
    # context-induced are (50,50) and (30,30) -> 2
    assert fp["n_context_fp"] == 2
    assert fp["by_image"] == [{"image_id": ids[(0, (0, 1), "remove")], "n_context_fp": 2}]
    # scored: the 5 images with |S| >= 2 of a (scene, variant, mode) with single-ROI images
    # (scene 0 {0,1}; scene 1 {0,1} {0,2} {1,2} {0,1,2}); the full-mode image has none to compare with
    assert fp["n_images"] == 5 and fp["n_images_unscored"] == 1
    assert fp["per_image"] == {"value": pytest.approx(2 / 5), "n": 5}
    assert fp["images_with_context_fp"]["k"] == 1 and fp["images_with_context_fp"]["n"] == 5
    scene0 = [x for x in fp["by_scene"] if x["scene_id"] == 0][0]
    assert scene0 == {"scene_id": 0, "n_context_fp": 2, "n_images": 1, "per_image": 2.0}
    row = s.images.set_index("image_id").loc[ids[(0, (0, 1), "remove")]]
    assert row["n_fp"] == 3 and row["n_context_fp"] == 2
    status = s.detections.set_index("det_index")
    wrong_class = [i for i, d in enumerate(predictions(ids)) if d["image_id"] == ids[(0, (0, 1), "remove")]
                   and d["category_id"] == CAR and d["bbox"] == list(map(float, BOX[1]))][0]
    assert status.loc[wrong_class, "status"] == "fp" and not status.loc[wrong_class, "background"]


def test_roi_influence(scored):
    _, _, s = scored
    inf = roi_influence(s.outcomes).set_index(["scene_id", "target_roi", "other_roi"])
    want = {  # (scene, target, other): (influence, pairs)
        (0, 0, 1): (1.0, 1), (0, 1, 0): (0.0, 1),
        (1, 0, 1): (0.5, 2), (1, 0, 2): (0.5, 2), (1, 1, 0): (0.0, 2),
        (1, 1, 2): (1.0, 2), (1, 2, 0): (0.5, 2), (1, 2, 1): (0.5, 2),
    }
    assert len(inf) == len(want)
    for key, (value, n) in want.items():
        assert inf.loc[key, "influence"] == pytest.approx(value), key
        assert inf.loc[key, "n"] == n, key
    # roi 2 hurts roi 1 in scene 1: hit alone and with roi 0, missed whenever roi 2 is there
    assert (inf.loc[(1, 1, 2), "p_hit_without"], inf.loc[(1, 1, 2), "p_hit_with"]) == (1.0, 0.0)
    summary = s.metrics["influence"]
    assert summary["n"] == 14 and summary["n_roi_pairs"] == 8
    assert summary["pairs"][0]["influence"] == 1.0
    car_car = [x for x in summary["by_class"] if (x["target_category"], x["other_category"]) == ("car", "car")][0]
    # scene 1 only (all cars): hit differences summed over its pairs 1 + 1 + 0 + 2 + 1 + 1 = 6, over 12 pairs
    assert car_car["influence"] == pytest.approx(6.0 / 12) and car_car["n"] == 12


def test_map_groups_and_rpc(scored):
    gt, ids, s = scored
    m = s.metrics
    full_ids = [ids[(0, (0, 1), "full")]]
    perm_ids = [i for k, i in ids.items() if k[2] == "remove"]
    iso_ids = [i for k, i in ids.items() if k[2] == "remove" and len(k[1]) == 1]
    ev = SliceEvaluator(gt, predictions(ids))
    assert m["map"]["full"]["map"] == ev.stats(full_ids)["map"]
    assert m["map"]["permutation"]["map"] == ev.stats(perm_ids)["map"]
    assert m["map"]["isolated"]["map"] == ev.stats(iso_ids)["map"]
    assert m["map"]["permutation_by_subset_size"]["1"]["map"] == m["map"]["isolated"]["map"]
    assert m["rpc"]["value"] == pytest.approx(m["map"]["permutation"]["map"] / m["map"]["isolated"]["map"])
    assert m["counts"]["full_images"] == 1 and m["counts"]["permutation_images"] == 10
    assert m["outcomes"]["isolated"]["hit"]["value"] == 1.0 and m["outcomes"]["isolated"]["hit"]["n"] == 5


def occlusion_case():
    """One scene, three cars (ROIs 0, 1, 2), variant clear, mode remove: each alone (all hits)
    and all three together, where car 0 is missed, car 1 is an ignore region (visible 5% <
    min_visible) that a car box still covers, and car 2 has no visible pixel (no annotation)."""
    boxes = {0: [0, 0, 10, 10], 1: [20, 0, 10, 10], 2: [40, 0, 10, 10]}
    images, anns = [], []
    for i, subset in enumerate(([0], [1], [2], [0, 1, 2]), start=1):
        images.append({"id": i, "file_name": f"{i}.png", "width": 100, "height": 100, "scene_id": 0,
                       "subset": subset, "n_rois": 3, "variant": "clear", "mode": "remove",
                       "is_full": len(subset) == 3})
        for r in subset:
            if i == 4 and r == 2:
                continue  # not visible in the context image
            crowd = int(i == 4 and r == 1)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": CAR, "bbox": list(map(float, boxes[r])),
                         "area": 5.0 if crowd else 100.0, "iscrowd": crowd, "roi_id": r,
                         "visible_fraction": 0.05 if crowd else 1.0})
    gt = {"images": images, "annotations": anns, "categories": [{"id": CAR, "name": "car"}],
          "info": {"min_visible": 0.1}}
    preds = [det(i, CAR, boxes[i - 1]) for i in (1, 2, 3)] + [det(4, CAR, boxes[1])]
    return gt, preds


def test_context_accuracy_leaves_out_rois_occluded_in_context():
    gt, preds = occlusion_case()
    s = score_predictions(gt, preds)
    ca = s.metrics["context_accuracy"]["overall"]
    # pairs (ROI, {0,1,2}) of the three cars, each a hit alone: car 0 scored (a miss); car 1 is an
    # ignore region there and car 2 not visible: both left out, "occluded in context".
    # Counting them as before would give (0 + 1 (the box on the ignore region) + 0) / 3 = 1/3.
    assert ca["value"] == 0.0 and ca["n"] == 1 and ca["n_pairs"] == 1 and ca["n_occluded_in_context"] == 2
    assert ca["ci95"] is None  # one ROI: a bootstrap has no spread to show
    # n_ignore and n_not_visible: one meaning each, disjoint, in the outcome table and in metrics.json
    o = s.outcomes.set_index(["image_id", "roi_id"])
    assert (bool(o.loc[(4, 1), "ignore"]), bool(o.loc[(4, 1), "not_visible"])) == (True, False)
    assert (bool(o.loc[(4, 2), "ignore"]), bool(o.loc[(4, 2), "not_visible"])) == (False, True)
    perm = s.metrics["outcomes"]["permutation"]
    # scored ROI rows: 3 alone (hits) + car 0 in context (miss) = 4; apart: 1 ignore, 1 not visible
    assert (perm["n"], perm["n_ignore"], perm["n_not_visible"]) == (4, 1, 1)
    assert perm["hit"]["k"] == 3 and perm["miss"]["k"] == 1
    assert s.metrics["map"]["permutation"]["n_ignore"] == 1  # the crowd box, the same ignore region

"""False positives on full scenes (metrics.md §4b), by hand, and on a rendered suite of empty
roads where the detector fires twice at the vanishing point."""
import json

import numpy as np
import pandas as pd

from oddsuite.metrics.stats import rate, wilson_interval
from oddsuite.metrics.summary import score_predictions

CAR, PERSON = 1, 2


def hand_case():
    """Scene 0 (urban): a car (ROI 0) and a person (ROI 1); in fog the person is an ignore region.
    Scene 1 (rural): an empty road. Full images 1 (s0 clear), 2 (s0 fog), 4 (s1 clear), 5 (s1
    fog); image 3 is a permutation image of scene 0 (car alone)."""
    def image(i, scene, subset, variant, mode="full"):
        n = 2 if scene == 0 else 0
        return {"id": i, "file_name": f"{i}.png", "width": 160, "height": 120, "scene_id": scene,
                "subset": subset, "n_rois": n, "variant": variant, "mode": mode, "is_full": len(subset) == n}

    def ann(aid, i, cat, roi, box, crowd=0):
        return {"id": aid, "image_id": i, "category_id": cat, "bbox": box, "area": box[2] * box[3],
                "iscrowd": crowd, "roi_id": roi, "visible_fraction": 0.05 if crowd else 1.0}

    car, person = [10.0, 10.0, 20.0, 20.0], [50.0, 10.0, 10.0, 20.0]
    gt = {"images": [image(1, 0, [0, 1], "clear"), image(2, 0, [0, 1], "fog"), image(3, 0, [0], "clear", "remove"),
                     image(4, 1, [], "clear"), image(5, 1, [], "fog")],
          "annotations": [ann(1, 1, CAR, 0, car), ann(2, 1, PERSON, 1, person), ann(3, 2, CAR, 0, car),
                          ann(4, 2, PERSON, 1, person, crowd=1), ann(5, 3, CAR, 0, car)],
          "categories": [{"id": CAR, "name": "car"}, {"id": PERSON, "name": "person"}],
          "info": {"min_visible": 0.1}}

    def det(i, cat, box, score):
        return {"image_id": i, "category_id": cat, "bbox": box, "score": score}

    preds = [
        det(1, CAR, car, 0.9),                        # hit
        det(1, PERSON, car, 0.8),                     # wrong class on the car: a mislabel matter, not a FP
        det(1, CAR, [80.0, 80.0, 10.0, 10.0], 0.5),   # background: FP
        det(1, CAR, [25.0, 10.0, 20.0, 20.0], 0.4),   # IoU 100 / 700 = 0.14 with the car: FP
        det(1, PERSON, [100.0, 100.0, 10.0, 10.0], 0.2),  # below conf 0.25: not counted
        det(2, CAR, car, 0.9),                        # hit
        det(2, PERSON, person, 0.6),                  # on the ignore region: neither TP nor FP
        det(2, CAR, person, 0.55),                    # wrong class on the ignore region: neither
        det(3, CAR, [80.0, 80.0, 10.0, 10.0], 0.9),   # a permutation image: not a full scene
        det(4, CAR, [75.0, 55.0, 10.0, 10.0], 0.7),   # the empty road: twice at the vanishing point
        det(4, CAR, [74.0, 54.0, 12.0, 12.0], 0.6),
        det(4, PERSON, [0.0, 0.0, 5.0, 5.0], 0.3),
    ]
    scenes = pd.DataFrame({"image_id": [1, 2, 3, 4, 5],
                           "scenery.road_type": ["urban", "urban", "urban", "rural", "rural"],
                           "environment.fog_visibility_m": [10000.0, 60.0, 10000.0, 10000.0, 60.0],
                           "camera.fov_deg": [60.0] * 5, "file_name": [f"{i}.png" for i in range(1, 6)]})
    return gt, preds, scenes


def test_full_scene_false_positives_by_hand():
    gt, preds, scenes = hand_case()
    s = score_predictions(gt, preds, scenes=scenes)
    fp = s.metrics["full_scene_fp"]
    # FPs per full image: 1 -> 2 (the (80,80) car, the car at IoU 0.14), 2 -> 0, 4 -> 3, 5 -> 0
    assert fp["n_fp"] == 5 and fp["n_images"] == 4
    assert fp["per_image"] == {"value": 5 / 4, "n": 4}
    assert fp["images_with_fp"] == rate(2, 4) and fp["images_with_fp"]["ci95"] == list(wilson_interval(2, 4))
    # by the detection's class: car 2 + 0 + 2 + 0 = 4 in 2 images; person 0 + 0 + 1 + 0 = 1 in 1 image
    assert {k: (v["n_fp"], v["per_image"]["value"], v["images_with_fp"]["k"]) for k, v in fp["by_class"].items()} \
        == {"car": (4, 1.0, 2), "person": (1, 0.25, 1)}
    # by variant: clear = images 1, 4 -> 2 + 3 = 5 over 2; fog = images 2, 5 -> 0 over 2
    assert {k: (v["n_fp"], v["n_images"], v["per_image"]["value"]) for k, v in fp["by_variant"].items()} \
        == {"clear": (5, 2, 2.5), "fog": (0, 2, 0.0)}
    assert fp["by_variant"]["fog"]["images_with_fp"] == rate(0, 2)
    # by scene condition (constant columns and non-conditions left out)
    assert set(fp["by_condition"]) == {"scenery.road_type", "environment.fog_visibility_m"}
    road = fp["by_condition"]["scenery.road_type"]
    assert (road["urban"]["n_fp"], road["urban"]["n_images"], road["rural"]["n_fp"], road["rural"]["n_images"]) \
        == (2, 2, 3, 2)
    fog = fp["by_condition"]["environment.fog_visibility_m"]
    assert (fog["10000"]["n_fp"], fog["60"]["n_fp"]) == (5, 0)
    assert fp["by_image"] == [{"image_id": 1, "n_fp": 2}, {"image_id": 4, "n_fp": 3}]
    # the permutation image's background box is a FP of that image, not of a full scene
    assert s.images.set_index("image_id")["n_fp"].to_dict() == {1: 2, 2: 0, 3: 1, 4: 3, 5: 0}


def test_full_scene_false_positives_undefined_without_full_scenes():
    gt, preds, _ = hand_case()
    gt = dict(gt, images=[im for im in gt["images"] if im["mode"] != "full"],
              annotations=[a for a in gt["annotations"] if a["image_id"] == 3])
    fp = score_predictions(gt, [p for p in preds if p["image_id"] == 3]).metrics["full_scene_fp"]
    assert fp["n_images"] == 0 and fp["per_image"]["value"] is None and fp["images_with_fp"]["value"] is None


EMPTY_ROAD = """\
name: empty_road
sampler: random
scenery: {road_type: rural, lanes: 2}
environment: {sun_elevation_deg: [20, 60]}
camera: {fov_deg: 60, pitch_deg: 0, width: 160, height: 120}
objects:
  car: {count: 0, distance_m: [8, 25], lateral_m: [-3, 3]}
permutations: {plan: ablation, modes: [remove]}
variants:
  - name: base
  - {name: fog, fog_visibility_m: 60}
"""


class VanishingPointDetector:
    """Fires twice at the image centre (the vanishing point of a level camera on a straight
    road), and once more below the operating threshold: the false alarm of §4b."""

    name = "vanishing-point"
    classes = {0: "car"}

    def predict(self, images, conf=0.001):
        from oddsuite.models.base import Detections

        out = []
        for im in images:
            h, w = im.shape[:2]
            cx, cy = w / 2, h / 2
            boxes = np.array([[cx - 6, cy - 4, cx + 6, cy + 4], [cx - 5, cy - 5, cx + 7, cy + 3],
                              [0, 0, 8, 8]], dtype=np.float32)
            out.append(Detections(boxes, np.array([0.8, 0.6, 0.1], np.float32), np.zeros(3, np.int64)))
        return out


def test_empty_roads_report_the_false_positives_at_the_vanishing_point(tmp_path, capsys):
    from oddsuite.commands.evaluate import summary_lines
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.suite import generate_suite

    spec = tmp_path / "empty.yaml"
    spec.write_text(EMPTY_ROAD)
    generate_suite(spec, tmp_path / "suite", scenes=2, seed=1, workers=1)
    gt = json.loads((tmp_path / "suite" / "annotations.json").read_text())
    assert not gt["annotations"] and all(im["mode"] == "full" for im in gt["images"])
    m = evaluate_suite(tmp_path / "suite", VanishingPointDetector(), tmp_path / "res", progress=False)
    fp = m["full_scene_fp"]
    # 2 scenes x 2 variants = 4 full images, 2 FPs each at score >= 0.25 (the 0.1 one is below)
    assert (fp["n_fp"], fp["n_images"]) == (8, 4)
    assert fp["per_image"] == {"value": 2.0, "n": 4}
    assert fp["images_with_fp"] == rate(4, 4)
    assert fp["by_class"]["car"]["n_fp"] == 8
    assert {k: v["n_fp"] for k, v in fp["by_variant"].items()} == {"base": 4, "fog": 4}
    # nothing else sees them: no ground truth for mAP or TIDE, no multi-ROI image for §4
    assert m["map"]["full"]["map"] is None and m["tide"]["full"]["ap_base"] is None
    assert m["context_fp"]["n_images"] == 0
    lines = "\n".join(summary_lines(m))
    assert "full-scene FP / image" in lines and "2.000" in lines and "4 with a FP" in lines
    assert "wrong-class box on a ROI is a mislabel" in lines

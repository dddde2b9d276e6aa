"""The evaluation loop on a tiny suite written here (real PNGs), with a small real detector
that finds coloured rectangles in the pixels (the loop, not the model, is under test)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from oddsuite.errors import ModelError, OddsuiteError, SuiteError
from oddsuite.evaluate import evaluate_suite, score
from oddsuite.suite import load_suite
from oddsuite.metrics.stats import json_clean
from oddsuite.models.base import Detections

W, H = 64, 48
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
CATS = [{"id": 1, "name": "car", "supercategory": "object"},
        {"id": 2, "name": "pedestrian", "supercategory": "object"}]
# scene -> roi -> (category id, colour, xywh box or None when it has no visible pixel)
SCENES = {
    0: {0: (1, RED, (5, 5, 15, 10)), 1: (2, GREEN, (30, 10, 10, 20))},
    1: {0: (1, RED, (10, 20, 20, 10)), 1: (1, RED, None)},
}
SUBSETS = [((0, 1), "full"), ((0,), "remove"), ((1,), "remove"), ((0, 1), "remove")]


def write_suite(root: Path) -> Path:
    images, anns, scene_rows = [], [], []
    for scene_id, rois in SCENES.items():
        for subset, mode in SUBSETS:
            image_id = len(images) + 1
            name = f"images/{scene_id:06d}/s{'-'.join(map(str, subset))}_clear_{mode}.png"
            px = np.full((H, W, 3), 40, np.uint8)
            if mode == "full" and scene_id == 0:
                px[30:38, 50:58] = BLUE  # background clutter: a 'traffic light' the suite lacks
            for r in subset:
                cat, colour, box = rois[r]
                if box is None:
                    continue
                x, y, w, h = box
                px[y:y + h, x:x + w] = colour
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                             "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h), "iscrowd": 0,
                             "roi_id": r, "visible_fraction": 1.0, "truncation": 0.0,
                             "full_bbox": [float(x), float(y), float(w), float(h)]})
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(px).save(root / name)
            rec = {"id": image_id, "file_name": name, "width": W, "height": H, "scene_id": scene_id,
                   "subset": list(subset), "n_rois": len(rois), "variant": "clear", "mode": mode,
                   "is_full": len(subset) == len(rois)}
            images.append(rec)
            scene_rows.append({"image_id": image_id, "file_name": name, "scene_id": scene_id,
                               "subset": ",".join(map(str, subset)), "subset_size": len(subset),
                               "n_rois": len(rois), "variant": "clear", "mode": mode,
                               "is_full": len(subset) == len(rois),
                               "environment.fog_visibility_m": 1000.0 if scene_id == 0 else 60.0})
    gt = {"info": {"min_visible": 0.1, "suite_seed": 7}, "images": images, "annotations": anns, "categories": CATS}
    (root / "annotations.json").write_text(json.dumps(gt))
    pd.DataFrame(scene_rows).to_parquet(root / "scenes.parquet", index=False)
    rois = [{"scene_id": s, "roi_id": r, "category": CATS[c - 1]["name"], "category_id": c,
             "distance_m": 10.0 + 5 * r} for s, rr in SCENES.items() for r, (c, _, _) in rr.items()]
    pd.DataFrame(rois).to_parquet(root / "rois.parquet", index=False)
    from oddsuite.suite.manifest import FORMAT, canonical_bytes, folder_files

    n = len(images)
    (root / "manifest.json").write_bytes(canonical_bytes({"format": FORMAT, "seed": 7, "scenes": len(SCENES),
                                                          "images": n, "files": folder_files(root)}))
    return root


class PixelDetector:
    """Each 4-connected blob of pure red / green / blue is one detection (score 0.9)."""

    name = "pixels"
    classes = {0: "car", 1: "person", 2: "traffic light"}
    colours = {0: RED, 1: GREEN, 2: BLUE}

    def __init__(self, fail_on_call: int | None = None):
        self.calls = 0
        self.images_seen = 0
        self.fail_on_call = fail_on_call

    def predict(self, images, conf=0.001):
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash in the middle of a run")
        self.images_seen += len(images)
        out = []
        for img in images:
            boxes, classes = [], []
            for cls, colour in self.colours.items():
                labels, n = ndimage.label(np.all(img == colour, axis=-1))
                for sl in ndimage.find_objects(labels):
                    ys, xs = sl
                    boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                    classes.append(cls)
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4),
                                   np.full(len(boxes), 0.9, np.float32), np.array(classes, np.int64)))
        return out


@pytest.fixture()
def suite_dir(tmp_path):
    return write_suite(tmp_path / "suite")


def test_evaluate_writes_every_result_file(suite_dir, tmp_path):
    out = tmp_path / "res"
    metrics = evaluate_suite(suite_dir, PixelDetector(), out, batch=3, class_map={"person": "pedestrian"},
                             progress=False)
    for name in ("predictions.json", "outcomes.parquet", "metrics.json", "run.json"):
        assert (out / name).is_file(), name
    preds = json.loads((out / "predictions.json").read_text())
    assert {p["category_id"] for p in preds} == {1, 2}  # suite ids; the blue blob was dropped
    assert set(preds[0]) == {"image_id", "category_id", "bbox", "score"}
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(json_clean(metrics)))
    assert metrics["map"]["full"]["map"] == pytest.approx(1.0)  # every visible object found exactly
    assert metrics["map"]["full"]["n_images"] == 2 and metrics["map"]["permutation"]["n_images"] == 6
    assert metrics["dropped_classes"]["by_class"] == {"traffic light": {"n": 1, "n_above_conf": 1}}
    assert metrics["context_accuracy"]["overall"]["value"] == 1.0

    outcomes = pd.read_parquet(out / "outcomes.parquet")
    assert len(outcomes) == 12  # one row per (image, ROI of its subset)
    for col in ["image_id", "scene_id", "roi_id", "subset", "subset_size", "variant", "mode", "is_full",
                "category", "category_id", "visible_fraction", "ignore", "outcome", "score", "iou",
                "pred_category", "not_visible", "environment.fog_visibility_m", "roi.distance_m"]:
        assert col in outcomes.columns, col
    invisible = outcomes[(outcomes["scene_id"] == 1) & (outcomes["roi_id"] == 1)]
    assert len(invisible) == 3 and set(invisible["outcome"]) == {"miss"} and invisible["not_visible"].all()
    assert set(invisible["category"]) == {"car"}
    assert set(outcomes.loc[~outcomes["not_visible"], "outcome"]) == {"hit"}

    run = json.loads((out / "run.json").read_text())
    assert run["detector"]["name"] == "pixels"
    assert run["settings"]["class_mapping"] == {"car": "car", "person": "pedestrian"}
    assert run["settings"]["dropped_classes"] == ["traffic light"]
    assert len(run["suite"]["manifest_sha256"]) == 64
    assert (run["images_predicted"], run["images_resumed"]) == (8, 0)


def test_resume_after_a_crash_predicts_only_the_rest(suite_dir, tmp_path):
    out = tmp_path / "res"
    crashing = PixelDetector(fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_suite(suite_dir, crashing, out, batch=3, class_map={"person": "pedestrian"}, progress=False)
    chunks = sorted((out / ".state" / "predictions").glob("chunk-*.jsonl"))
    assert len(chunks) == 1 and len(chunks[0].read_text().splitlines()) == 3
    assert not (out / "predictions.json").exists()
    assert not list((out / ".state" / "predictions").glob("*.tmp"))

    second = PixelDetector()
    evaluate_suite(suite_dir, second, out, batch=3, class_map={"person": "pedestrian"}, progress=False)
    assert second.images_seen == 5  # 8 images, 3 already done
    run = json.loads((out / "run.json").read_text())
    assert (run["images_predicted"], run["images_resumed"]) == (5, 3)

    fresh = tmp_path / "fresh"
    evaluate_suite(suite_dir, PixelDetector(), fresh, batch=3, class_map={"person": "pedestrian"}, progress=False)
    assert (out / "predictions.json").read_bytes() == (fresh / "predictions.json").read_bytes()
    assert (out / "metrics.json").read_bytes() == (fresh / "metrics.json").read_bytes()

    third = PixelDetector()
    evaluate_suite(suite_dir, third, out, batch=3, class_map={"person": "pedestrian"}, progress=False)
    assert third.images_seen == 0


def test_results_of_another_detector_are_not_mixed(suite_dir, tmp_path):
    out = tmp_path / "res"
    with pytest.raises(RuntimeError):
        evaluate_suite(suite_dir, PixelDetector(fail_on_call=2), out, batch=2,
                       class_map={"person": "pedestrian"}, progress=False)
    other = PixelDetector()
    other.name = "another-model"
    with pytest.raises(OddsuiteError, match="another run"):
        evaluate_suite(suite_dir, other, out, batch=2, class_map={"person": "pedestrian"}, progress=False)


def test_score_recomputes_from_saved_predictions(suite_dir, tmp_path):
    out = tmp_path / "res"
    metrics = evaluate_suite(suite_dir, PixelDetector(), out, class_map={"person": "pedestrian"}, progress=False)
    again = score(suite_dir, out / "predictions.json")
    assert again["dropped_classes"] is None  # not known from predictions alone
    metrics = dict(metrics, dropped_classes=None)
    assert json_clean(again) == json_clean(metrics)
    # a stricter IoU / an extra slice need no detector
    sliced = score(suite_dir, out / "predictions.json", slices={"scene0": [1, 2, 3, 4]}, iou=0.9)
    assert sliced["map"]["slices"]["scene0"]["n_images"] == 4 and sliced["settings"]["iou"] == 0.9


def test_classes_without_map_are_dropped_and_counted(suite_dir, tmp_path):
    m = evaluate_suite(suite_dir, PixelDetector(), tmp_path / "res", progress=False)
    assert set(m["dropped_classes"]["by_class"]) == {"person", "traffic light"}
    assert m["dropped_classes"]["by_class"]["person"]["n"] == 3  # scene 0's pedestrian is in 3 images
    assert m["map"]["full"]["per_class"]["pedestrian"]["ap"] == 0.0
    with pytest.raises(ModelError, match="bicycle"):
        evaluate_suite(suite_dir, PixelDetector(), tmp_path / "res2", class_map={"bicycle": "pedestrian"},
                       progress=False)
    with pytest.raises(ModelError, match="cyclist"):
        evaluate_suite(suite_dir, PixelDetector(), tmp_path / "res3", class_map={"person": "cyclist"},
                       progress=False)


def test_malformed_inputs_name_file_and_field(suite_dir, tmp_path):
    gt = json.loads((suite_dir / "annotations.json").read_text())
    del gt["annotations"][0]["roi_id"]
    (suite_dir / "annotations.json").write_text(json.dumps(gt))
    with pytest.raises(SuiteError, match=r"annotations\.json: annotations\[0\]\.roi_id"):
        load_suite(suite_dir)

    good = write_suite(tmp_path / "suite2")
    pd.read_parquet(good / "scenes.parquet").drop(columns=["variant"]).to_parquet(good / "scenes.parquet")
    with pytest.raises(SuiteError, match=r"scenes\.parquet: missing column\(s\) \['variant'\]"):
        load_suite(good)

    good = write_suite(tmp_path / "suite3")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, -3, 4], "score": 0.5}]))
    with pytest.raises(SuiteError, match=r"bad\.json: \[0\]\.bbox"):
        score(good, bad)
    bad.write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [0, 0, 3, 4], "score": 0.5}]))
    with pytest.raises(SuiteError, match=r"\[0\]\.image_id"):
        score(good, bad)


def test_cli_evaluate(suite_dir, tmp_path, monkeypatch, capsys):
    import oddsuite.models
    from oddsuite import cli

    model = tmp_path / "model.bin"
    model.write_bytes(b"not a real model: load_detector is replaced below")
    seen = {}

    def load_detector(path, sha256=None, trust_pickle=False, weights=None, model_args=None):
        """What the real loader does for the command: the detector with its ModelInfo (the pin)."""
        import hashlib

        from oddsuite.models import ModelInfo

        seen.update(path=path, sha256=sha256, trust_pickle=trust_pickle)
        det = PixelDetector()
        det.info = ModelInfo(sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest(), source=str(path))
        return det

    monkeypatch.setattr(oddsuite.models, "load_detector", load_detector)
    out = tmp_path / "res"
    code = cli.main(["evaluate", str(suite_dir), "--model", str(model), "--class-map", "person=pedestrian",
                     "--batch", "4", "--no-progress", "--out", str(out)])
    assert code == 0
    assert seen == {"path": str(model), "sha256": None, "trust_pickle": False}
    text = capsys.readouterr().out
    assert "full-scene mAP@[.5:.95]" in text and "1.000" in text and "context accuracy" in text
    run = json.loads((out / "run.json").read_text())
    import hashlib
    assert run["detector"]["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    code = cli.main(["evaluate", str(suite_dir), "--model", str(model), "--class-map", "person=bicycle",
                     "--no-progress", "--out", str(tmp_path / "res2")])
    assert code == 2 and "bicycle" in capsys.readouterr().err


def test_compare_saved_predictions(suite_dir, tmp_path):
    from oddsuite.evaluate import compare_predictions

    out = tmp_path / "res"
    evaluate_suite(suite_dir, PixelDetector(), out, class_map={"person": "pedestrian"}, progress=False)
    preds = json.loads((out / "predictions.json").read_text())
    same = compare_predictions(suite_dir, out / "predictions.json", preds,
                               by=("mode", "environment.fog_visibility_m", "roi.distance_m"))
    assert same["overall"]["agreement"]["value"] == 1.0
    assert same["overall"]["flips"]["hit_to_not"]["k"] == 0 and same["overall"]["flips"]["not_to_hit"]["k"] == 0
    assert set(same["slices"]["environment.fog_visibility_m"]) == {"1000.0", "60.0"}
    assert set(same["slices"]["roi.distance_m"]) == {"10.0", "15.0"}
    no_peds = [p for p in preds if p["category_id"] != 2]
    diff = compare_predictions(suite_dir, preds, no_peds, by=("category",))
    assert diff["slices"]["category"]["pedestrian"]["flips"]["hit_to_not"]["k"] == 3
    assert diff["slices"]["category"]["car"]["flips"]["hit_to_not"]["k"] == 0

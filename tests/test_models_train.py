"""YOLO data-set export and offline CPU training (tiny: 64x96 images, imgsz 128, 1 epoch)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from oddsuite.errors import ModelError, SuiteError
from oddsuite.models import Detections, load_detector
from oddsuite.training import export_yolo, train_detector

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_network")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from oddsuite.training.toy import make_toy_suite

    s = make_toy_suite(tmp_path_factory.mktemp("toy") / "suite", scenes=6, size=(64, 96), seed=1)
    coco = json.loads((s / "annotations.json").read_text())
    coco["annotations"][0]["iscrowd"] = 1  # one ignore region, to be left out
    (s / "annotations.json").write_text(json.dumps(coco))
    return s


def _read_labels(path: Path) -> np.ndarray:
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def test_export_yolo_labels_match_annotations(tmp_path, suite):
    import yaml

    coco = json.loads((suite / "annotations.json").read_text())
    data_yaml = export_yolo(suite, tmp_path / "ds", images="all", val_fraction=0.34, seed=0)
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == {0: "box", 1: "disc"} and data["nc"] == 2  # suite category order
    assert Path(data["path"]) == (tmp_path / "ds").resolve()
    card = json.loads((tmp_path / "ds" / "export.json").read_text())
    assert card["counts"]["images"] == len(coco["images"]) and card["counts"]["ignored"] == 1
    cat_idx = {c["id"]: i for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
    images = {im["id"]: im for im in coco["images"]}
    scene_split: dict[int, set] = {}
    n_checked = 0
    for f in card["files"]:
        im = images[f["image_id"]]
        img_path = tmp_path / "ds" / f["file"]
        assert img_path.is_symlink() and img_path.resolve() == (suite / im["file_name"]).resolve()
        assert f["file"].startswith(f"images/{f['split']}/")
        scene_split.setdefault(im["scene_id"], set()).add(f["split"])
        lbl = tmp_path / "ds" / "labels" / f["split"] / (Path(f["file"]).stem + ".txt")
        got = _read_labels(lbl)
        want = []
        for a in coco["annotations"]:
            if a["image_id"] != im["id"] or a["iscrowd"]:
                continue
            x, y, w, h = a["bbox"]
            want.append([cat_idx[a["category_id"]], (x + w / 2) / im["width"], (y + h / 2) / im["height"],
                         w / im["width"], h / im["height"]])
        want = np.asarray(want, dtype=np.float64).reshape(-1, 5)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)
        n_checked += len(got)
    assert n_checked == card["counts"]["boxes"] > 5
    assert all(len(s) == 1 for s in scene_split.values()), "a scene must not be in both train and val"
    assert {"train", "val"} <= set().union(*scene_split.values())


def test_export_yolo_selection_copy_and_rerun(tmp_path, suite):
    coco = json.loads((suite / "annotations.json").read_text())
    n_full = sum(im["is_full"] and im["mode"] == "full" for im in coco["images"])
    assert n_full < len(coco["images"])
    out = tmp_path / "ds"
    export_yolo(suite, out, images="full", link=False, val_fraction=0.0)
    files = sorted((out / "images" / "train").iterdir())
    assert len(files) == n_full and not any(p.is_symlink() for p in files)
    assert not (out / "images" / "val").exists()
    assert "val: images/train" in (out / "data.yaml").read_text()  # no held-out scenes: val = train
    # exporting again into the same folder replaces the earlier export
    export_yolo(suite, out, images="all", val_fraction=0.0)
    assert len(list((out / "images" / "train").iterdir())) == len(coco["images"])
    # ... but a folder that is not an export is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(SuiteError, match="not an oddsuite YOLO export"):
        export_yolo(suite, other)
    with pytest.raises(SuiteError, match="no annotations.json"):
        export_yolo(tmp_path / "nowhere", tmp_path / "x")


def test_export_cli(tmp_path, suite, capsys):
    from oddsuite.cli import main

    assert main(["export", str(suite), "--format", "yolo", "--out", str(tmp_path / "ds"), "--images", "all",
                 "--val-fraction", "0"]) == 0
    assert "exported" in capsys.readouterr().out
    assert (tmp_path / "ds" / "data.yaml").is_file()
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "ds2")]) == 2


def test_train_tiny_model_loads(tmp_path, suite):
    data_yaml = export_yolo(suite, tmp_path / "ds", images="all", val_fraction=0.34)
    epochs_seen = []
    out = train_detector(data_yaml, tmp_path / "model", epochs=1, imgsz=128, batch=4, seed=0,
                         on_epoch=lambda e, n, m: epochs_seen.append((e, n, "metrics/mAP50-95(B)" in m)))
    assert epochs_seen == [(1, 1, True)]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["model.json", "model.safetensors", "model.yaml", "train_log"]
    assert not list(out.rglob("*.pt")), "no pickles are left behind"
    card = json.loads((out / "model.json").read_text())
    assert card["classes"] == {"0": "box", "1": "disc"} and card["imgsz"] == 128
    assert card["seed"] == 0 and card["epochs"] == 1 and "train_detector(" in card["command"]
    assert card["training"]["versions"]["ultralytics"]
    det = load_detector(out, sha256=card["sha256"])
    assert det.classes == {0: "box", 1: "disc"} and det.imgsz == 128
    from PIL import Image

    coco = json.loads((suite / "annotations.json").read_text())
    images = [np.asarray(Image.open(suite / im["file_name"]).convert("RGB")) for im in coco["images"][:4]]
    dets = det.predict(images)
    assert len(dets) == 4 and all(isinstance(d, Detections) for d in dets)
    assert sum(len(d) for d in dets) > 0  # after 1 epoch: low scores, but boxes at the mAP floor
    # the same seed gives the same weights (deterministic CPU training), byte for byte; imgsz 120 is
    # rounded up to the stride multiple 128 by ultralytics, and the card records what was used
    out2 = train_detector(data_yaml, tmp_path / "model2", epochs=1, imgsz=120, batch=4, seed=0)
    card2 = json.loads((out2 / "model.json").read_text())
    assert card2["sha256"] == card["sha256"] and card2["imgsz"] == 128


def test_train_refuses_pickles_and_bad_data(tmp_path):
    with pytest.raises(ModelError, match="architecture yaml"):
        train_detector(tmp_path / "data.yaml", tmp_path / "m", arch="yolov8n.pt")
    with pytest.raises(ModelError, match="no such data set"):
        train_detector(tmp_path / "data.yaml", tmp_path / "m")


def test_training_seeds_are_disjoint_from_validation_seeds():
    from oddsuite.training.train import is_training_seed, training_suite_seed

    seeds = [training_suite_seed(s) for s in (0, 1, 2 ** 32 - 1)]
    assert all(is_training_seed(s) for s in seeds) and not any(is_training_seed(s) for s in (0, 1, 2 ** 31))
    # the scene Generators differ from every validation scene's (numpy pads entropy with zeros,
    # so naive offsets like seed + 2**32 would collide: [s + 2**32, i] == [s, 1, i])
    val = {tuple(np.random.SeedSequence([v, i]).generate_state(4)) for v in range(4) for i in range(4)}
    train = {tuple(np.random.SeedSequence([training_suite_seed(t), i]).generate_state(4))
             for t in range(4) for i in range(4)}
    assert not val & train
    with pytest.raises(ValueError):
        training_suite_seed(2 ** 32)


@pytest.mark.slow
def test_train_cli_end_to_end(tmp_path):
    """oddsuite train SPEC: render a 1-scene training suite, export, train 1 epoch, load the result."""
    import yaml

    from oddsuite.cli import main

    spec_src = Path(__file__).resolve().parents[1] / "odd_specs" / "urban_day.yaml"
    if not spec_src.is_file():
        pytest.skip("example spec missing")
    spec = yaml.safe_load(spec_src.read_text())
    spec["camera"]["width"], spec["camera"]["height"] = 160, 120
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "det"
    rc = main(["train", str(tmp_path / "spec.yaml"), "--out", str(out), "--scenes", "2", "--epochs", "1",
               "--imgsz", "128", "--batch", "4", "--seed", "3"])
    assert rc == 0
    card = json.loads((out / "model.json").read_text())
    assert card["seed"] == 3 and card["epochs"] == 1 and card["command"].startswith("oddsuite ")
    assert card["training_suite"]["seed"] == 2 ** 62 + 3
    man = json.loads((out / "train_suite" / "manifest.json").read_text())
    assert man["seed"] == 2 ** 62 + 3
    det = load_detector(out)
    assert list(det.classes.values()) == [c for c in spec["objects"]]
    assert os.path.islink(next((out / "train_data" / "images" / "train").iterdir()))


def test_train_on_several_specs_unifies_their_classes(tmp_path):
    """oddsuite train A B: one detector over both suites; classes in built-in order; labels agree."""
    from oddsuite.cli import main

    a = tmp_path / "a.yaml"
    a.write_text("name: a\ncamera: {width: 96, height: 72}\nobjects:\n  person: {count: 1, distance_m: [6, 10], lateral_m: [-1, 1]}\n"
                 "  car: {count: 1, distance_m: [8, 15]}\n")
    b = tmp_path / "b.yaml"
    b.write_text("name: b\ncamera: {width: 96, height: 72}\nscenery: {road_type: highway}\n"
                 "objects:\n  traffic cone: {count: 1, distance_m: [5, 8], lateral_m: [-1, 1]}\n  car: {count: 1, distance_m: [8, 15]}\n")
    out = tmp_path / "det"
    rc = main(["train", str(a), str(b), "--out", str(out), "--scenes", "2,1", "--epochs", "1", "--imgsz", "64",
               "--batch", "2", "--seed", "1", "--val-fraction", "0"])
    assert rc == 0
    det = load_detector(out)
    assert list(det.classes.values()) == ["car", "person", "traffic cone"]
    card = json.loads((out / "model.json").read_text())
    assert [s["scenes"] for s in card["training_suite"]["suites"]] == [2, 1]
    assert card["command"].startswith("oddsuite train ") and "--scenes 2,1" in card["command"]
    # the cone suite's labels use the unified index 2, the person suite's persons index 1
    cones = {ln.split()[0] for f in (out / "train_data" / "b" / "labels").rglob("*.txt") for ln in f.read_text().splitlines()}
    persons = {ln.split()[0] for f in (out / "train_data" / "a" / "labels").rglob("*.txt") for ln in f.read_text().splitlines()}
    assert cones <= {"0", "2"} and "2" in cones
    assert persons <= {"0", "1"} and "1" in persons

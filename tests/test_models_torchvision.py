"""torchvision detection models by builder name with a local state dict: no download, the pin
checked first, whole pickles refused, COCO names matched to the suite, and the same predictions
on the process pool as in this process."""
from __future__ import annotations

import json

import numpy as np
import pytest

from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models import load_detector, map_classes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "ssdlite320_mobilenet_v3_large"
REF = f"torchvision:{NAME}"


@pytest.fixture(scope="module")
def ssd_model():
    import torch
    from torchvision.models import detection

    torch.manual_seed(0)
    return detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()


@pytest.fixture(scope="module")
def ssd_weights(ssd_model, tmp_path_factory):
    """Random-init weights, saved as a state dict the way a user saves theirs."""
    import torch

    path = tmp_path_factory.mktemp("tv") / "ssdlite.pt"
    torch.save(ssd_model.state_dict(), path)
    return path


def test_built_by_name_filled_from_the_state_dict_and_pinned(ssd_model, ssd_weights, no_network):
    import torch

    sha = sha256_file(ssd_weights)
    det = load_detector(REF, sha256=sha, weights=ssd_weights, model_args={"threads": 1})
    info = det.info
    assert (info.sha256, info.files, info.format, info.precision, info.input_hw) == \
        (sha, {"ssdlite.pt": sha}, "torchvision", "fp32", (320, 320))
    assert info.source == str(ssd_weights.resolve())
    assert (info.recipe.path, info.recipe.weights, dict(info.recipe.model_args)) == \
        (REF, str(ssd_weights.resolve()), {"threads": 1})
    assert det.classes[1] == "person" and det.classes[3] == "car" and det.classes[13] == "stop sign"
    assert len(det.classes) == 91

    img = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    d = det.predict([img], conf=0.001)[0]
    ssd_model.score_thresh = 0.001
    with torch.inference_mode():
        ref = ssd_model([torch.from_numpy(img).permute(2, 0, 1).float() / 255])[0]
    assert len(d) > 0
    np.testing.assert_array_equal(d.boxes, ref["boxes"].numpy())  # input image pixels, as the network gives them
    np.testing.assert_array_equal(d.scores, ref["scores"].numpy())
    np.testing.assert_array_equal(d.class_ids, ref["labels"].numpy())
    assert (d.boxes[:, [0, 2]] <= 160).all() and (d.boxes[:, [1, 3]] <= 120).all()
    conf = float(d.scores.max())  # predict's conf is the model's own score threshold
    above = det.predict([img], conf=conf)[0]
    assert 0 < len(above) and (above.scores >= conf).all()


def test_what_is_refused_before_anything_is_built(ssd_model, ssd_weights, tmp_path):
    import torch

    with pytest.raises(ModelError, match="SHA-256 mismatch.*not loaded"):
        load_detector(REF, sha256="0" * 64, weights=ssd_weights)
    whole = tmp_path / "whole.pt"
    torch.save(ssd_model, whole)  # a pickled module: unpickling would run code
    with pytest.raises(ModelError, match=r"weights_only=True.*state_dict\(\)"):
        load_detector(REF, weights=whole)
    with pytest.raises(ModelError, match="not a torchvision detection model.*fasterrcnn_resnet50_fpn"):
        load_detector("torchvision:resnet50", weights=ssd_weights)
    with pytest.raises(ModelError, match="needs its weights file"):
        load_detector(REF)
    with pytest.raises(ModelError, match="num_classes=3 needs its class names"):
        load_detector(REF, weights=ssd_weights, model_args={"num_classes": 3})
    with pytest.raises(ModelError, match="does not fit.*num_classes=N"):
        load_detector(REF, weights=ssd_weights, model_args={"num_classes": 3, "classes": ["bg", "car", "person"]})


@pytest.fixture(scope="module")
def suite_class_weights(tmp_path_factory):
    """A model for the suite's classes (as if fine-tuned), as safetensors: random, so with three
    classes its scores spread around 1/3 and it detects cars and persons everywhere."""
    import torch
    from safetensors.torch import save_file
    from torchvision.models import detection

    torch.manual_seed(1)
    m = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path_factory.mktemp("tv3") / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, path)
    return path


SUITE_CLASSES = {"num_classes": 3, "classes": ["__background__", "car", "person"]}


def test_a_model_trained_for_the_suite_classes(suite_class_weights):
    """num_classes and classes for a fine-tuned model; safetensors weights load too."""
    det = load_detector(REF, weights=suite_class_weights, model_args=SUITE_CLASSES)
    assert det.classes == {0: "__background__", 1: "car", 2: "person"}
    assert det.info.recipe.load().classes == det.classes


def test_coco_names_match_the_suite_categories(tiny_suite, ssd_weights):
    det = load_detector(REF, weights=ssd_weights)
    cats = {c["id"]: c["name"] for c in json.loads((tiny_suite / "annotations.json").read_text())["categories"]}
    mapping, unmatched = map_classes(det.classes, cats)
    assert {det.classes[i]: cats[c] for i, c in mapping.items()} == {"car": "car", "person": "person"}
    assert "truck" in unmatched and "__background__" in unmatched


def test_on_the_pool_two_workers_predict_what_one_does(tiny_suite, suite_class_weights, tmp_path):
    """The CLI with --workers 2 (each worker re-creates the model from its recipe) against the
    same model in this process, both on one torch thread: identical bytes."""
    import pandas as pd

    from oddsuite.cli import main
    from oddsuite.evaluate import evaluate_suite

    sha = sha256_file(suite_class_weights)
    det = load_detector(REF, sha256=sha, weights=suite_class_weights, model_args={**SUITE_CLASSES, "threads": 1})
    evaluate_suite(tiny_suite, det, tmp_path / "one", progress=False)
    rc = main(["evaluate", str(tiny_suite), "--model", REF, "--weights", str(suite_class_weights), "--sha256", sha,
               "--model-arg", "num_classes=3", "--model-arg", "classes=['__background__', 'car', 'person']",
               "--model-arg", "threads=1", "--workers", "2", "--out", str(tmp_path / "two"), "--no-progress"])
    assert rc == 0
    for f in ("predictions.json", "outcomes.parquet", "metrics.json"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    preds = json.loads((tmp_path / "two" / "predictions.json").read_text())
    assert {p["category_id"] for p in preds} == {1, 2}  # cars and persons, in suite ids
    assert len(pd.read_parquet(tmp_path / "two" / "outcomes.parquet")) > 0
    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["detector"]["model"]["files"] == {"mine.safetensors": sha} and run["detector"]["model_sha256"] == sha
    assert run["detector"]["model"]["format"] == "torchvision"
    assert run["settings"]["class_mapping"] == {"car": "car", "person": "person"}


@pytest.mark.slow
def test_on_ray_two_workers_predict_what_one_does(tiny_suite, suite_class_weights, tmp_path):
    pytest.importorskip("ray")
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.run.ray_executor import RayExecutor

    det = load_detector(REF, weights=suite_class_weights, model_args={**SUITE_CLASSES, "threads": 1})
    evaluate_suite(tiny_suite, det, tmp_path / "one", progress=False)
    ex = RayExecutor(workers=2)
    try:
        evaluate_suite(tiny_suite, det, tmp_path / "ray", progress=False, executor=ex)
    finally:
        ex.shutdown()
    for f in ("predictions.json", "outcomes.parquet", "metrics.json"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "ray" / f).read_bytes(), f

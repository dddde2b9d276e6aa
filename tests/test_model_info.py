"""The Detector contract (#14): what the code needs beyond name / classes / predict comes from
one optional ``info: ModelInfo``; every adapter fills it, a plain object without it still
works, the evaluation loop looks up nothing else, and executors take the worker recipe from
it (also for the simulated accelerator)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from oddsuite.accelerator import AcceleratorDetector, FaultMap, SystolicArray
from oddsuite.evaluate import evaluate_suite
from oddsuite.models import DetectorRecipe, ModelInfo, TorchDetector, load_detector, model_info, save_model_dir
from oddsuite.models.yolo import random_model
from oddsuite.run import LocalExecutor

from test_evaluate import PixelDetector, write_suite

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLASSES = {0: "car", 1: "pedestrian"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_model_dir(random_model(nc=2, seed=0), tmp_path_factory.mktemp("m") / "rnd", CLASSES, 64, name="rnd")


@pytest.fixture()
def suite_dir(tmp_path) -> Path:
    return write_suite(tmp_path / "suite")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_the_ultralytics_adapter_fills_model_info(model_dir):
    det = load_detector(model_dir, class_map={"pedestrian": "person"})
    info = det.info
    assert isinstance(det, TorchDetector) and isinstance(info, ModelInfo)
    assert dict(info.files) == {"model.safetensors": _sha(model_dir / "model.safetensors"),
                                "model.yaml": _sha(model_dir / "model.yaml")}
    assert info.sha256 == info.files["model.safetensors"] == json.loads((model_dir / "model.json").read_text())["sha256"]
    assert (info.format, info.precision, info.input_hw) == ("safetensors", "fp32", (64, 64))
    assert info.source == str(model_dir / "model.safetensors") and dict(info.class_map) == {"pedestrian": "person"}
    assert info.recipe == DetectorRecipe(str(model_dir.resolve()), info.sha256, False, {"pedestrian": "person"})
    again = info.recipe.load()
    assert again.info.sha256 == info.sha256 and again.info.recipe == info.recipe
    assert info.record()["files"] == dict(info.files) and "recipe" not in info.record()


def test_the_onnx_adapter_fills_model_info(model_dir, tmp_path):
    from oddsuite.models import export_onnx

    path = export_onnx(load_detector(model_dir), tmp_path / "rnd.onnx")
    info = load_detector(path).info
    assert dict(info.files) == {"rnd.onnx": _sha(path)} and info.sha256 == _sha(path)
    assert (info.format, info.precision, info.input_hw, info.source) == ("onnx", "fp32", (64, 64), str(path))
    assert info.recipe.load().info == info


def test_a_plain_detector_has_no_info_and_still_evaluates(suite_dir, tmp_path):
    det = PixelDetector()
    assert not hasattr(det, "info") and model_info(det) == ModelInfo()
    evaluate_suite(suite_dir, det, tmp_path / "res", class_map={"person": "pedestrian"}, progress=False)
    run = json.loads((tmp_path / "res" / "run.json").read_text())
    assert run["detector"]["model_sha256"] is None and run["detector"]["model"]["files"] == {}


class _Recording:
    """A detector that records every attribute the code looks up on it."""

    def __init__(self, inner):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "seen", set())

    def __getattribute__(self, name):
        if name not in ("_inner", "seen", "__class__", "__dict__"):
            object.__getattribute__(self, "seen").add(name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_inner"), name)


def test_the_evaluation_loop_reads_only_the_protocol_and_info(suite_dir, tmp_path):
    det = _Recording(PixelDetector())
    evaluate_suite(suite_dir, det, tmp_path / "res", class_map={"person": "pedestrian"}, progress=False)
    assert det.seen <= {"name", "classes", "predict", "info"}, det.seen
    assert {"name", "classes", "predict"} <= det.seen


def test_an_executor_takes_the_recipe_from_model_info(suite_dir, model_dir, tmp_path):
    det = load_detector(model_dir, class_map={"pedestrian": "pedestrian"})
    evaluate_suite(suite_dir, det, tmp_path / "here", progress=False)
    evaluate_suite(suite_dir, det, tmp_path / "pool", progress=False, executor=LocalExecutor(1))  # no recipe given
    for f in ("predictions.json", "metrics.json"):
        assert (tmp_path / "here" / f).read_bytes() == (tmp_path / "pool" / f).read_bytes(), f
    run = json.loads((tmp_path / "pool" / "run.json").read_text())
    assert run["images_predicted"] == 8 and run["detector"]["model"]["files"] == dict(det.info.files)
    with pytest.raises(ValueError, match="no recipe"):
        evaluate_suite(suite_dir, PixelDetector(), tmp_path / "plain", class_map={"person": "pedestrian"},
                       progress=False, executor=LocalExecutor(1))


def test_the_accelerator_detector_fills_info_and_runs_on_an_executor(suite_dir, model_dir, tmp_path):
    from PIL import Image

    base = load_detector(model_dir)
    calib = sorted((suite_dir / "images").rglob("*.png"))[:2]
    from_arrays = AcceleratorDetector(base, SystolicArray(16, 16),
                                      calibration_images=[np.asarray(Image.open(p).convert("RGB")) for p in calib])
    assert from_arrays.info.recipe is None  # calibrated from arrays: nothing to repeat it in a worker
    adet = AcceleratorDetector(base, SystolicArray(16, 16), calibration_files=calib)
    adet.configure(FaultMap.random(16, 16, 4, seed=1, bits=[30]), mitigation="fap")
    info = adet.info
    assert (info.sha256, dict(info.files), info.format) == (base.info.sha256, dict(base.info.files), "safetensors")
    assert info.precision == "int8" and info.recipe.base == base.info.recipe
    worker = info.recipe.load()
    assert worker.name == adet.name == "rnd@16x16+4pe-fap-s1"
    evaluate_suite(suite_dir, adet, tmp_path / "here", progress=False, class_map={"pedestrian": "pedestrian"})
    evaluate_suite(suite_dir, adet, tmp_path / "pool", progress=False, class_map={"pedestrian": "pedestrian"},
                   executor=LocalExecutor(1))
    for f in ("predictions.json", "metrics.json"):
        assert (tmp_path / "here" / f).read_bytes() == (tmp_path / "pool" / f).read_bytes(), f
    assert json.loads((tmp_path / "here" / "run.json").read_text())["detector"]["model"]["precision"] == "int8"

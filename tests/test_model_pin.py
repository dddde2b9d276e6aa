"""A model is pinned whole (#12): an ONNX model with external data is pinned over the .onnx
AND every external data file (a documented canonical hash), and run.json records each file's
hash. A real tiny ONNX detector is written with ``onnx.save_model(save_as_external_data=True)``."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from oddsuite.errors import ModelError
from oddsuite.models import load_detector
from oddsuite.models.common import files_pin

from test_evaluate import write_suite

DATA = "tiny.onnx.data"


def _weights(scale: float = 1.0) -> np.ndarray:
    """Conv weights (6, 3, 32, 32): box channels give boxes of a few pixels, class channels scores in (0, 1)."""
    rng = np.random.default_rng(np.random.SeedSequence([12, 0]))
    w = rng.uniform(0.0, 0.02, (6, 3, 32, 32)).astype(np.float32)
    w[4:] *= 0.02
    return w * np.float32(scale)


def write_tiny_onnx(folder: Path, weights: np.ndarray, *, location: str = DATA) -> Path:
    """A YOLO-layout ONNX detector: images (N, 3, 32, 32) -> output0 (N, 4 + 2, 1), weights in ``location``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = numpy_helper.from_array(weights, "W")
    shape = numpy_helper.from_array(np.array([-1, 6, 1], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "W"], ["c"], name="/model.0/conv/Conv"),
         helper.make_node("Reshape", ["c", "shape"], ["output0"], name="/model.0/Reshape")],
        "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 1])], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    e = model.metadata_props.add()
    e.key, e.value = "names", str({0: "car", 1: "person"})
    path = folder / "tiny.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=1024)
    return path


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return write_tiny_onnx(tmp_path / "model", _weights())


def test_the_pin_covers_the_onnx_and_its_external_data(tiny):
    assert (tiny.parent / DATA).stat().st_size == 6 * 3 * 32 * 32 * 4 > 50 * tiny.stat().st_size  # weights outside
    det = load_detector(tiny)
    files = {"tiny.onnx": _sha(tiny), DATA: _sha(tiny.parent / DATA)}
    assert dict(det.info.files) == files
    # the documented canonical hash: SHA-256 of the sorted "<sha256>  <path>\n" lines
    listing = "".join(f"{files[n]}  {n}\n" for n in sorted(files))
    assert det.info.sha256 == hashlib.sha256(listing.encode()).hexdigest() == files_pin(files)
    assert det.info.sha256 not in files.values()
    if shutil.which("sha256sum") and shutil.which("sort"):  # the loader's doc: coreutils give the same value
        out = subprocess.run("LC_ALL=C sha256sum tiny.onnx tiny.onnx.data | sort -k2 | sha256sum", shell=True,
                             cwd=tiny.parent, capture_output=True, text=True, check=True).stdout.split()[0]
        assert out == det.info.sha256
    assert load_detector(tiny, sha256=det.info.sha256).info.files == det.info.files


def test_swapping_the_external_data_fails_the_old_pin(tiny):
    img = np.full((48, 64, 3), 180, np.uint8)
    det = load_detector(tiny)
    pin, before = det.info.sha256, det.predict([img])[0]
    assert len(before) == 1
    write_tiny_onnx(tiny.parent / "other", _weights(scale=1.5))
    shutil.copyfile(tiny.parent / "other" / DATA, tiny.parent / DATA)  # same size, other weights
    with pytest.raises(ModelError, match=r"SHA-256 mismatch.*tiny\.onnx\.data.*the model was not loaded"):
        load_detector(tiny, sha256=pin)
    swapped = load_detector(tiny)  # unpinned it loads: the swap changes the predictions and the pin
    assert swapped.info.sha256 != pin and swapped.info.files["tiny.onnx"] == det.info.files["tiny.onnx"]
    assert not np.allclose(swapped.predict([img])[0].boxes, before.boxes)


def test_run_json_lists_every_model_file(tiny, tmp_path):
    from oddsuite.evaluate import evaluate_suite

    suite = write_suite(tmp_path / "suite")
    det = load_detector(tiny, class_map="person=pedestrian")
    evaluate_suite(suite, det, tmp_path / "res", progress=False)
    run = json.loads((tmp_path / "res" / "run.json").read_text())
    model = run["detector"]["model"]
    assert model["files"] == {"tiny.onnx": _sha(tiny), DATA: _sha(tiny.parent / DATA)}
    assert run["detector"]["model_sha256"] == model["sha256"] == det.info.sha256
    assert (model["format"], model["precision"], model["class_map"]) == ("onnx", "fp32", {"person": "pedestrian"})


def test_a_single_file_model_is_pinned_by_its_own_sha256(tmp_path):
    import onnx

    tiny = write_tiny_onnx(tmp_path / "m", _weights())
    single = tmp_path / "single" / "tiny.onnx"
    single.parent.mkdir()
    onnx.save_model(onnx.load(str(tiny)), str(single))  # external data loaded back in
    det = load_detector(single, sha256=_sha(single))
    assert dict(det.info.files) == {"tiny.onnx": _sha(single)} and det.info.sha256 == _sha(single)


def test_external_data_outside_the_model_folder_or_missing_is_refused(tmp_path):
    import onnx

    tiny = write_tiny_onnx(tmp_path / "m", _weights())
    proto = onnx.load(str(tiny), load_external_data=False)
    for t in proto.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = "../stolen.bin"
    shutil.copyfile(tiny.parent / DATA, tmp_path / "stolen.bin")
    tiny.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_detector(tiny)
    missing = write_tiny_onnx(tmp_path / "m2", _weights())
    (missing.parent / DATA).unlink()
    with pytest.raises(ModelError, match="not a file"):
        load_detector(missing)

"""Detectors: safe loading, the ultralytics and ONNX Runtime adapters, class mapping.

Real models throughout (random-weight yolov8n whose outputs vary with the input, see
``oddsuite.training.toy.lively_random_model``), small inputs (imgsz 160), and no network:
every test runs with sockets and DNS blocked and fails if anything tried to connect.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from oddsuite.errors import ModelError
from oddsuite.models import Detections, Detector, load_detector, map_classes, parse_class_map

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_network")


IMGSZ = 160


# --------------------------------------------------------------------------- no network


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from PIL import Image

    from oddsuite.training.toy import make_toy_suite

    suite = make_toy_suite(tmp_path_factory.mktemp("toy") / "suite", scenes=4, size=(96, 128), seed=3)
    coco = json.loads((suite / "annotations.json").read_text())
    images = [np.asarray(Image.open(suite / im["file_name"]).convert("RGB")) for im in coco["images"]]
    return suite, images


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, toy):
    from oddsuite.models import save_model_dir
    from oddsuite.training.toy import lively_random_model

    _, images = toy
    model = lively_random_model(nc=2, images=images, imgsz=IMGSZ, seed=0)
    return save_model_dir(model, tmp_path_factory.mktemp("m") / "lively", {0: "box", 1: "disc"}, IMGSZ,
                          name="lively")


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, model_dir):
    from oddsuite.models import export_onnx

    det = load_detector(model_dir)
    return export_onnx(det, tmp_path_factory.mktemp("onnx") / "lively.onnx", IMGSZ)


def _varied_images(toy):
    """Toy scenes plus sizes/aspects the letterbox must handle (tall, wide, tiny, 640x480)."""
    _, images = toy
    rng = np.random.default_rng(0)
    big = np.kron(images[0], np.ones((5, 5, 1), np.uint8))[:480, :640]
    return [images[0], images[1], images[2][:, :64].copy(), images[3][:48].copy(), big,
            rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)]


def _check_detections(dets, images, nc, conf):
    assert len(dets) == len(images)
    for d, im in zip(dets, images):
        assert isinstance(d, Detections)
        assert d.boxes.dtype == np.float32 and d.boxes.shape == (len(d), 4)
        assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int64
        assert len(d) > 0, "a lively random model outputs boxes at conf 0.001"
        assert np.all(d.scores >= conf) and np.all(d.scores <= 1)
        assert np.all((d.class_ids >= 0) & (d.class_ids < nc))
        h, w = im.shape[:2]
        assert np.all(d.boxes[:, 0] <= d.boxes[:, 2]) and np.all(d.boxes[:, 1] <= d.boxes[:, 3])
        assert d.boxes[:, [0, 2]].min() >= 0 and d.boxes[:, [0, 2]].max() <= w
        assert d.boxes[:, [1, 3]].min() >= 0 and d.boxes[:, [1, 3]].max() <= h


def _match(a: Detections, b: Detections, min_score: float, tol_px: float = 1.0, tol_score: float = 2e-3):
    """Every detection of ``a`` scoring >= min_score has one in ``b``: same class, boxes within tol_px."""
    keep = a.scores >= min_score
    assert keep.sum() > 0
    for box, s, c in zip(a.boxes[keep], a.scores[keep], a.class_ids[keep]):
        d = np.abs(b.boxes - box).max(1)
        cand = (b.class_ids == c) & (d <= tol_px) & (np.abs(b.scores - s) <= tol_score)
        assert cand.any(), f"no match for class {c} score {s:.4f} box {box} (closest {d.min():.3f} px)"
    return int(keep.sum())


# --------------------------------------------------------------------------- adapters


def test_model_dir_loads_and_predicts_batches(model_dir, toy):
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.json", "model.safetensors", "model.yaml"]
    det = load_detector(model_dir)
    assert isinstance(det, Detector)
    assert det.classes == {0: "box", 1: "disc"} and det.imgsz == IMGSZ and det.name == "lively"
    assert det.info.sha256 == json.loads((model_dir / "model.json").read_text())["sha256"]
    import torch

    assert isinstance(det.torch_model, torch.nn.Module)
    images = _varied_images(toy)
    dets = det.predict(images)
    _check_detections(dets, images, 2, 0.001)
    assert det.predict([]) == []
    # a higher floor keeps a subset
    hi = det.predict(images[:2], conf=0.05)
    for a, b in zip(hi, dets[:2]):
        assert len(a) <= len(b) and np.all(a.scores >= 0.05)
    # batching does not change the answer
    det.batch_size = 2
    one_by_one = [det.predict([im])[0] for im in images]
    for a, b in zip(dets, one_by_one):  # same detections (near-ties may come in another order)
        assert len(a) == len(b)
        _match(a, b, min_score=0.001, tol_px=0.05, tol_score=1e-4)
        _match(b, a, min_score=0.001, tol_px=0.05, tol_score=1e-4)


def test_outputs_vary_with_input(model_dir, toy):
    """The model is doing real work: different images give different top detections."""
    det = load_detector(model_dir)
    d = det.predict(toy[1][:4], conf=0.01)
    tops = {tuple(np.round(x.boxes[np.argmax(x.scores)]).astype(int)) for x in d if len(x)}
    assert len(tops) >= 3


def test_ultralytics_and_onnx_agree(model_dir, onnx_path, toy):
    torch_det = load_detector(model_dir)
    onnx_det = load_detector(onnx_path)
    assert type(onnx_det).__name__ == "OnnxDetector"
    assert onnx_det.classes == torch_det.classes  # from the ONNX metadata, no sidecar
    assert onnx_det.input_hw == (IMGSZ, IMGSZ)
    images = _varied_images(toy)
    a, b = torch_det.predict(images), onnx_det.predict(images)
    _check_detections(b, images, 2, 0.001)
    matched = 0
    for da, db in zip(a, b):
        matched += _match(da, db, min_score=0.01)
        matched += _match(db, da, min_score=0.01)
        # counts at the mAP floor agree up to a few boxes at the NMS / threshold margins
        assert abs(len(da) - len(db)) <= max(2, 0.02 * len(da))
    assert matched > 20


def test_onnx_fixed_batch_and_sidecar_card(tmp_path, model_dir, toy):
    from oddsuite.models import export_onnx

    det = load_detector(model_dir)
    path = export_onnx(det, tmp_path / "fixed.onnx", IMGSZ, dynamic_batch=False)
    od = load_detector(path)
    assert od.fixed_batch == 1
    images = toy[1][:3]
    for x, y in zip(od.predict(images), det.predict(images)):
        _match(y, x, min_score=0.01)
    # a sidecar card names the classes (and wins over the metadata)
    (tmp_path / "fixed.json").write_text(json.dumps({"classes": ["square", "circle"], "name": "renamed"}))
    od2 = load_detector(path)
    assert od2.classes == {0: "square", 1: "circle"} and od2.name == "renamed"


def test_int8_onnx_runs(tmp_path, onnx_path, toy):
    """A post-training int8 (QDQ) quantised ONNX file loads and predicts like any other."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from oddsuite.models.common import preprocess

    images = toy[1]

    class Calib(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"images": preprocess([im], (IMGSZ, IMGSZ))[0]} for im in images[:4]])

        def get_next(self):
            return next(self.it, None)

    q = tmp_path / "int8.onnx"
    # convolutions only: quantising the decoded output (pixels and scores in one tensor) would zero the scores
    quantize_static(str(onnx_path), str(q), Calib(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(q)).graph.node)
    det = load_detector(q)
    assert det.classes == {0: "box", 1: "disc"}  # metadata survives quantisation
    _check_detections(det.predict(images[:3]), images[:3], 2, 0.001)


def test_export_onnx_metadata(onnx_path):
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert meta["names"] == str({0: "box", 1: "disc"})
    assert meta["imgsz"] == str([IMGSZ, IMGSZ]) and meta["task"] == "detect"


def test_export_writes_the_dfl_element_wise(onnx_path, model_dir):
    """The exported DFL is the same expectation as ultralytics' softmax + ramp conv (to float
    rounding, large logits included: it subtracts the max first), in element-wise ops, with no
    Softmax (which ONNX Runtime runs row by row over the 16 bins); a DFL whose ramp was edited
    is exported as it is."""
    import copy

    import onnx
    import torch
    from ultralytics.nn.modules.block import DFL

    from oddsuite.models.onnx_rt import _dfl_as_elementwise

    ops = [n.op_type for n in onnx.load(str(onnx_path)).graph.node if "/dfl/" in n.name]
    assert "Softmax" not in ops and "Exp" in ops and "Conv" not in ops
    dfl = DFL(16)
    x = torch.randn(2, 64, 50, generator=torch.Generator().manual_seed(0)) * 30
    x[0, :16, 0] = 500.0  # exp would overflow without the max subtracted
    ref = dfl(x)
    fast = copy.deepcopy(dfl)
    assert _dfl_as_elementwise(fast) == 1
    assert torch.allclose(fast(x), ref, atol=1e-4) and torch.isfinite(fast(x)).all()
    edited = copy.deepcopy(dfl)
    edited.conv.weight.data[0, 3] = 7.0
    assert _dfl_as_elementwise(edited) == 0 and "forward" not in vars(edited)
    det = load_detector(model_dir)
    assert _dfl_as_elementwise(copy.deepcopy(det.torch_model)) == 1
    assert "forward" not in vars(det.torch_model.model[-1].dfl)  # the detector itself is untouched


def test_export_splits_each_c2f_with_constant_sizes(onnx_path, model_dir, toy):
    """Each C2f is exported as one Split with constant sizes, as ultralytics' exporter does, not
    chunk()'s Shape-derived Slices (ONNX Runtime materialised the int8 cv1 output in float just
    to read its shape); the ONNX model still gives torch's outputs; the detector is untouched."""
    import copy

    import onnx
    import onnxruntime as ort
    import torch

    from oddsuite.models.common import preprocess
    from oddsuite.models.onnx_rt import _split_with_constant_sizes

    g = onnx.load(str(onnx_path)).graph
    det = load_detector(model_dir)
    n_c2f = sum(type(m).__name__ == "C2f" for m in det.torch_model.modules())
    assert n_c2f > 0
    splits = [n for n in g.node if n.op_type == "Split"]
    assert len(splits) == n_c2f
    consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    assert all(n.input[1] in consts for n in splits)  # sizes are constants, not computed
    produced_by = {o: n for n in g.node for o in n.output}
    assert not [n.name for n in g.node if n.op_type == "Slice" and "/dfl/" not in n.name
                and any(i in produced_by and produced_by[i].op_type in ("Div", "Mul", "Gather") for i in n.input[1:3])
                and "/model.22/" not in n.name]
    assert _split_with_constant_sizes(copy.deepcopy(det.torch_model)) == n_c2f
    assert not any("forward" in vars(m) for m in det.torch_model.modules() if type(m).__name__ == "C2f")
    _, images = toy
    x, _ = preprocess(list(images[:2]), (IMGSZ, IMGSZ))
    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = s.run(None, {"images": x})[0]
    m = copy.deepcopy(det.torch_model).eval()
    with torch.inference_mode():
        ref = m(torch.from_numpy(x))
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    assert got.shape == ref.shape
    assert np.abs(got[:, :4] - ref[:, :4]).max() < 0.05  # box coordinates, pixels (float rounding)
    assert np.abs(got[:, 4:] - ref[:, 4:]).max() < 1e-4  # class scores


# --------------------------------------------------------------------------- integrity and trust


def test_sha256_pins(tmp_path, model_dir, onnx_path):
    good = json.loads((model_dir / "model.json").read_text())["sha256"]
    assert load_detector(model_dir, sha256=good).info.sha256 == good
    assert load_detector(model_dir / "model.safetensors", sha256="SHA256:" + good.upper()).info.sha256 == good
    wrong = "0" * 64
    for target in (model_dir, model_dir / "model.safetensors", onnx_path):
        with pytest.raises(ModelError) as e:
            load_detector(target, sha256=wrong)
        msg = str(e.value)
        weights = target / "model.safetensors" if target.is_dir() else target
        assert str(weights) in msg and wrong in msg and "actual" in msg
        from oddsuite.models.common import sha256_file

        assert sha256_file(weights) in msg


def test_card_hashes_checked(tmp_path, model_dir):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    # the architecture yaml is pinned by the card too
    with open(d / "model.yaml", "a") as f:
        f.write("# edited\n")
    with pytest.raises(ModelError, match="model.yaml.*SHA-256 mismatch"):
        load_detector(d)
    shutil.copy2(model_dir / "model.yaml", d / "model.yaml")
    card = json.loads((d / "model.json").read_text())
    card["sha256"] = card["files"]["model.safetensors"] = "1" * 64
    (d / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_detector(d)


def _ultralytics_checkpoint(model_dir, path: Path, half: bool = True) -> Path:
    """A pickled checkpoint laid out the way ultralytics saves one (EMA model, fp16 by default, + train args)."""
    import torch

    det = load_detector(model_dir)
    m = copy.deepcopy(det.torch_model)
    m = m.half() if half else m
    m.names = dict(det.classes)
    torch.save({"model": None, "ema": m, "train_args": {"imgsz": IMGSZ}, "epoch": 0}, path)
    return path


def test_pickle_refused_without_trust_loaded_with(tmp_path, model_dir, toy, caplog):
    import torch

    pt = _ultralytics_checkpoint(model_dir, tmp_path / "best.pt", half=False)
    with pytest.raises(ModelError, match="trust_pickle"):
        load_detector(pt)
    # a directory holding only a pickle is not loaded either, and the message says why
    with pytest.raises(ModelError, match="trust_pickle"):
        load_detector(tmp_path)
    with caplog.at_level(logging.WARNING, logger="oddsuite.models.loader"):
        det = load_detector(pt, trust_pickle=True)
    assert any("arbitrary code" in r.getMessage() for r in caplog.records)
    assert det.classes == {0: "box", 1: "disc"} and det.imgsz == IMGSZ
    ref = load_detector(model_dir)
    images = toy[1][:2]
    for a, b in zip(ref.predict(images), det.predict(images)):
        _match(a, b, min_score=0.01)
    # ultralytics keeps fp16 weights in its checkpoints; they load as float32
    half = load_detector(_ultralytics_checkpoint(model_dir, tmp_path / "half.pt"), trust_pickle=True)
    assert next(half.torch_model.parameters()).dtype == torch.float32
    _check_detections(half.predict(images), images, 2, 0.001)


class _Evil:
    """Unpickling this creates a file: stands in for arbitrary code in a malicious model."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_never_runs(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    pt = tmp_path / "evil.pt"
    torch.save({"model": _Evil(marker)}, pt)
    with pytest.raises(ModelError, match="trust_pickle"):
        load_detector(pt)
    assert not marker.exists()
    with pytest.raises(ModelError, match="SHA-256 mismatch"):  # trusted, but pinned to other bytes
        load_detector(pt, trust_pickle=True, sha256="f" * 64)
    assert not marker.exists()


@pytest.mark.parametrize("edit, match", [
    (lambda c, m: c.__setitem__("activation", f"__import__('pathlib').Path({str(m)!r}).touch()"), "activation"),
    (lambda c, m: c["backbone"].__setitem__(0, [-1, 1, "torch_safe_load", [str(m)]]), "torch_safe_load"),
    (lambda c, m: c["head"].__setitem__(-1, [[15, 18, 21], 1, "Segment", ["nc", 32, 256]]), "detection heads"),
    (lambda c, m: c.__setitem__("extra_code", "x"), "unknown keys"),
])
def test_unsafe_arch_yaml_refused(tmp_path, model_dir, edit, match):
    import shutil

    import yaml

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    (d / "model.json").unlink()  # no card hashes: the yaml check itself must refuse
    cfg = yaml.safe_load((d / "model.yaml").read_text())
    marker = tmp_path / "pwned"
    edit(cfg, marker)
    (d / "model.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ModelError, match=match):
        load_detector(d)
    assert not marker.exists()


def test_bad_paths(tmp_path, model_dir):
    with pytest.raises(ModelError, match="no such model"):
        load_detector(tmp_path / "missing.onnx")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match="unsupported model file type"):
        load_detector(tmp_path / "weights.bin")
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="broken.onnx"):
        load_detector(tmp_path / "broken.onnx")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "w.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="architecture yaml"):
        load_detector(lone / "w.safetensors")
    # with its yaml beside it, a bare .safetensors loads; names come from its own metadata
    (lone / "w.yaml").write_text((model_dir / "model.yaml").read_text())
    det = load_detector(lone / "w.safetensors")
    assert det.classes == {0: "box", 1: "disc"} and det.imgsz == IMGSZ and det.name == "w"


# --------------------------------------------------------------------------- class mapping


def test_parse_class_map():
    assert parse_class_map("person=pedestrian, car = car,") == {"person": "pedestrian", "car": "car"}
    assert parse_class_map("") == {} and parse_class_map(None) == {}
    for bad in ("person", "person=", "=car", "a=b=c", "a=b,a=c"):
        with pytest.raises(ValueError):
            parse_class_map(bad)


def test_map_classes_by_name_explicit_and_unmatched(caplog):
    det = {0: "person", 1: "bicycle", 2: "Car", 3: "truck", 4: "bus", 5: "traffic light"}
    cats = {1: "car", 2: "pedestrian", 3: "cyclist", 4: "vehicle"}
    mapping, unmatched = map_classes(det, cats, "person=pedestrian")
    assert mapping == {0: 2, 2: 1}  # explicit, and by name ignoring case
    assert unmatched == ["bicycle", "truck", "bus", "traffic light"]  # reported, not merged
    # merging is allowed only when each merged class is named explicitly
    mapping, unmatched = map_classes(det, cats, {"person": "pedestrian", "truck": "vehicle", "bus": "vehicle",
                                                 "bicycle": "cyclist"})
    assert mapping == {0: 2, 1: 3, 2: 1, 3: 4, 4: 4} and unmatched == ["traffic light"]
    with pytest.raises(ModelError, match="'persn'"):  # a typo in the map is an error
        map_classes(det, cats, "persn=pedestrian")
    with pytest.raises(ModelError, match="no category 'walker'"):
        map_classes(det, cats, "person=walker")
    with pytest.raises(ModelError, match="explicit"):  # 'car' by name + 'truck=car' explicitly
        map_classes(det, cats, "truck=car")
    with caplog.at_level(logging.WARNING):
        map_classes({0: "car"}, cats)
    assert "pedestrian" in caplog.text  # suite categories no detector class covers are warned about


def test_load_detector_checks_class_map(model_dir):
    det = load_detector(model_dir, class_map="disc=wheel")
    assert det.info.class_map == {"disc": "wheel"}
    assert map_classes(det.classes, {1: "box", 2: "wheel"}, det.info.class_map) == ({0: 1, 1: 2}, [])
    with pytest.raises(ModelError, match="not classes of the detector"):
        load_detector(model_dir, class_map={"circle": "wheel"})

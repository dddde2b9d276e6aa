"""oddsuite.studies.compare and the layer-level SQNR, on hand-made cases (no torch, no renderer).

The full comparison of real detectors (fp32 vs int8 vs a damaged copy) is in
test_quantize.py, which builds a YOLO model once for all of those tests.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from oddsuite.studies.compare import consistency_table, per_class, slice_columns
from oddsuite.studies.compare_draw import draw_pair
from oddsuite.metrics.consistency import consistency
from oddsuite.quant.debug import DQ_SUFFIX, layer_divergence, plot_layers, sqnr_db

CAR, PED = 1, 2


# --------------------------------------------------------------------------- §6 extras


def _gt():
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100, "scene_id": i, "subset": [0, 1],
               "n_rois": 2, "variant": "clear", "mode": "full", "is_full": True} for i in (1, 2)]
    anns = []
    for i in (1, 2):
        for r, cat in ((0, CAR), (1, PED)):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "bbox": [40.0 * r, 0.0, 20.0, 20.0],
                         "area": 400.0, "iscrowd": 0, "roi_id": r, "visible_fraction": 1.0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": CAR, "name": "car"}, {"id": PED, "name": "pedestrian"}]}


def _det(image_id, cat, box, score):
    return {"image_id": image_id, "category_id": cat, "bbox": list(map(float, box)), "score": score}


def test_per_class_agreement_drift_and_ap_by_hand():
    gt = _gt()
    a = [_det(1, CAR, (0, 0, 20, 20), 0.9), _det(1, PED, (40, 0, 20, 20), 0.8),
         _det(2, CAR, (0, 0, 20, 20), 0.9), _det(2, PED, (40, 0, 20, 20), 0.7), _det(2, PED, (80, 80, 10, 10), 0.6)]
    # B: image 1 identical but car score -0.2; image 2 loses its pedestrian hit and its extra ped, gains a car fp
    b = [_det(1, CAR, (0, 0, 20, 20), 0.7), _det(1, PED, (40, 0, 20, 20), 0.8),
         _det(2, CAR, (0, 0, 20, 20), 0.9), _det(2, CAR, (60, 60, 10, 10), 0.5)]
    pc = per_class(gt, a, b, iou=0.5, conf=0.25)
    # car: image 1 max(1,1)=1 matched 1; image 2 max(1,2)=2 matched 1 -> 2 of 3
    assert (pc["car"]["agreement"]["k"], pc["car"]["agreement"]["n"]) == (2, 3)
    assert pc["car"]["score_drift"]["value"] == pytest.approx((-0.2 + 0.0) / 2) and pc["car"]["score_drift"]["n"] == 2
    # pedestrian: image 1 1 of 1; image 2 max(2, 0) = 2, none matched -> 1 of 3
    assert (pc["pedestrian"]["agreement"]["k"], pc["pedestrian"]["agreement"]["n"]) == (1, 3)
    assert pc["pedestrian"]["score_drift"] == {"value": 0.0, "n": 1}
    # AP: A finds every pedestrian (AP 1 at every threshold); B only one of two -> AP 0.5
    assert pc["pedestrian"]["ap"]["a"] == pytest.approx(1.0)
    assert pc["pedestrian"]["ap"]["b"] == pytest.approx(0.5, abs=0.01)
    assert pc["pedestrian"]["ap"]["delta"] == pytest.approx(pc["pedestrian"]["ap"]["b"] - 1.0)

    report = consistency(gt, a, b, by=("variant", "category"))
    report["per_class"] = pc
    table = consistency_table(report)
    assert list(table["column"][:2]) == ["overall", "variant"]
    ped = table.loc[(table["column"] == "category") & (table["value"] == "pedestrian")].iloc[0]
    assert ped["level"] == "class" and ped["agreement_k"] == 1 and ped["agreement_n"] == 3
    assert ped["hit_to_not_k"] == 1 and ped["n_rois"] == 2  # the pedestrian of image 2 is lost
    overall = table.iloc[0]
    assert overall["n_images"] == 2 and overall["hit_to_not_k"] == 1 and overall["not_to_hit_k"] == 0
    assert str(table["n_images"].dtype) == "Int64"


def test_slice_columns_keeps_varying_odd_columns_and_reports_constant_ones():
    scenes = pd.DataFrame({"image_id": [1, 2, 3], "file_name": ["a", "b", "c"], "scene_id": [0, 0, 1],
                           "subset": ["0", "0,1", "1"], "subset_size": [1, 2, 1], "n_rois": [2, 2, 2],
                           "variant": ["x", "y", "x"], "mode": ["full"] * 3, "is_full": [False, True, False],
                           "environment.fog_visibility_m": [60.0, 1000.0, 60.0], "camera.fov_deg": [60.0] * 3,
                           "scenery.road_type": ["urban"] * 3})
    cols, constant = slice_columns(scenes, ["category", "visible_fraction", "roi.distance_m", "roi.asset"])
    assert cols == ["variant", "subset_size", "mode", "is_full", "environment.fog_visibility_m", "category",
                    "visible_fraction", "roi.distance_m"]
    assert constant == {"camera.fov_deg": 60.0, "scenery.road_type": "urban"}


def test_draw_pair_writes_side_by_side_png(tmp_path):
    from PIL import Image

    img = np.full((60, 80, 3), 90, np.uint8)
    Image.fromarray(img).save(tmp_path / "im.png")
    rois = [{"roi_id": 0, "bbox": [5, 5, 20, 20], "ignore": False, "outcome_a": "hit", "outcome_b": "miss",
             "flipped": True},
            {"roi_id": 1, "bbox": None, "ignore": False, "outcome_a": "miss", "outcome_b": "miss", "flipped": False}]
    out = draw_pair(tmp_path / "im.png", tmp_path / "f" / "01.png", rois=rois,
                    dets_a=[_det(1, CAR, (5, 5, 20, 20), 0.9)], dets_b=[], cat_names={CAR: "car"},
                    name_a="fp32", name_b="int8", caption="image 1: 1 hit->not")
    with Image.open(out) as im:
        w, h = im.size
    scale = math.ceil(480 / 80)
    assert w == 2 * 80 * scale + 6 and h == 60 * scale + 22 + 22


# --------------------------------------------------------------------------- layer-level SQNR


def test_sqnr_matches_onnxruntime_formula():
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio as ort_sqnr

    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(2, 3, 4)) for _ in range(3)]
    ys = [x + rng.normal(scale=0.05, size=x.shape) for x in xs]
    sig = sum(float(np.sum(x * x)) for x in xs)
    noise = sum(float(np.sum((x - y) ** 2)) for x, y in zip(xs, ys))
    assert sqnr_db(sig, noise) == pytest.approx(ort_sqnr(xs, ys), rel=1e-9)
    assert sqnr_db(sig, 0.0) == pytest.approx(ort_sqnr(xs, xs), rel=1e-9)  # identical: clamped at eps


def _tiny_net(path, scale_conv2: float = 1.0):
    """images (N,3,16,16) -> conv1 -> relu -> conv2 -> relu -> conv3 (a chain, then a side branch from relu1)."""
    rng = np.random.default_rng(1)
    w1 = rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)
    w2 = (rng.normal(0, 0.5, (4, 4, 3, 3)) * scale_conv2).astype(np.float32)
    w3 = rng.normal(0, 0.5, (6, 4, 1, 1)).astype(np.float32)
    w4 = rng.normal(0, 0.5, (6, 4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], name="/model.0/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="/model.0/act/Relu"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="/model.1/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="/model.1/act/Relu"),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], name="/model.2/conv/Conv"),
        helper.make_node("Conv", ["r1", "w4"], ["c4"], name="/model.3/conv/Conv"),  # side branch, not after conv2
        helper.make_node("Add", ["c3", "c4"], ["out"], name="/model.4/Add"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 6, 16, 16])],
        [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"), (w4, "w4"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)]


def test_layer_divergence_finds_the_damaged_layer(tmp_path):
    a = _tiny_net(tmp_path / "a.onnx")
    b = _tiny_net(tmp_path / "b.onnx", scale_conv2=3.0)
    r = layer_divergence(a, b, _images(), image_names=["i0", "i1", "i2"])
    by = {t["tensor"]: t for t in r["tensors"]}
    assert set(by) == {"images", "c1", "r1", "c2", "r2", "c3", "c4", "out"}
    for t in ("images", "c1", "r1", "c4"):  # before conv2, or on a branch that does not pass through it
        assert by[t]["identical"] and by[t]["sqnr_db"] > 200
    # conv2's output is 3x: ||x|| / ||3x - x|| = 1/2 -> -6.02 dB, and the error starts there
    assert by["c2"]["sqnr_db"] == pytest.approx(20 * math.log10(0.5), abs=1e-4)
    assert [o["tensor"] for o in r["origins"]] == ["c2"]
    assert by["c2"]["origin"] and by["c2"]["drop_db"] is None and by["c2"]["input_sqnr_db"] is None
    assert by["c3"]["sqnr_db"] < 0 and not by["c3"]["identical"]
    assert r["n_images"] == 3 and r["images"] == ["i0", "i1", "i2"] and r["n_quantized"] == 0
    assert [m["module"] for m in r["modules"]] == ["input", "model.0", "model.1", "model.2", "model.3", "model.4"]
    assert r["modules"][1]["identical"] and not r["modules"][2]["identical"]
    png = plot_layers(r, tmp_path / "layers.png")
    assert png.stat().st_size > 1000


def test_layer_divergence_of_a_qdq_model(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from oddsuite.models.common import preprocess

    a = _tiny_net(tmp_path / "a.onnx")
    imgs = _images(6, seed=3)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"images": preprocess([im], (16, 16))[0]} for im in imgs])

        def get_next(self):
            return next(self.it, None)

    q = tmp_path / "q.onnx"
    quantize_static(str(a), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    r = layer_divergence(a, q, imgs[:2])
    by = {t["tensor"]: t for t in r["tensors"]}
    assert r["n_quantized"] >= 5
    # only the input can survive quantization exactly (uint8 / 255 with a [0, 1] range)
    assert all(t["tensor"] == "images" for t in r["tensors"] if t["identical"])
    qm = onnx.load(str(q))
    assert any(o == "c4" + DQ_SUFFIX for n in qm.graph.node for o in n.output)
    c4 = by["c4"]
    assert c4["quantized"] and c4["qdq_sqnr_db"] is not None and 15 < c4["sqnr_db"] < 80
    # the local rounding of one tensor is at most as bad as the error accumulated up to it
    assert c4["qdq_sqnr_db"] >= c4["sqnr_db"] - 1e-6
    # the quantizer folds relu1 into conv1's QDQ pair: conv1's output is gone from B, and B's
    # tensor before the pair is the pre-activation, not comparable with A's relu output
    assert "c1" not in by and by["r1"]["quantized"] and by["r1"]["qdq_sqnr_db"] is None
    # the graph output keeps its name in B (T_QuantizeLinear_Input -> T)
    assert by["out"]["quantized"] and by["out"]["qdq_sqnr_db"] is not None
    assert by["out"]["sqnr_db"] < by["images"]["sqnr_db"]


def test_layer_divergence_refuses_unrelated_models(tmp_path):
    from oddsuite.errors import ModelError

    a = _tiny_net(tmp_path / "a.onnx")
    m = onnx.load(str(a))
    for n in m.graph.node:
        n.output[:] = [o + "_x" if o != "out" else o for o in n.output]
        n.input[:] = [i + "_x" if i in {"c1", "r1", "c2", "r2", "c3", "c4"} else i for i in n.input]
    onnx.save(m, str(tmp_path / "renamed.onnx"))
    r = layer_divergence(a, tmp_path / "renamed.onnx", _images(1))
    assert {t["tensor"] for t in r["tensors"]} == {"images", "out"}  # only what the two share
    with pytest.raises(ValueError):
        layer_divergence(a, a, [])
    bad = onnx.load(str(a))
    bad.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 32
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelError, match="input sizes differ"):
        layer_divergence(a, tmp_path / "bad.onnx", _images(1))

"""int8 quantization (oddsuite quantize) and pre/post comparison (oddsuite compare) of a real
YOLO detector: a random-weight yolov8n whose outputs vary with the input
(``oddsuite.training.toy.lively_random_model``, imgsz 160), built once for the module, on the
toy shapes suite completed with its scenes/rois tables. Everything runs on the CPU, offline.

The random model seldom *hits* an object at the default operating point (IoU 0.5, score
0.25), so the tests that need hits to flip use IoU 0.3 and score 0.01: the §6 definitions
are the same at any operating point.
"""
from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

from oddsuite.errors import ModelError, OddsuiteError
from oddsuite.models import load_detector
from oddsuite.models.common import sha256_file
from oddsuite.quant.quantize import auto_reduce_range, cpu_int8_isa

IMGSZ = 160
LOW = {"iou": 0.3, "conf": 0.01}
DAMAGED_CONV = "/m/model.6/cv1/conv/Conv"


def _complete_toy_suite(root: Path) -> Path:
    """Add scenes.parquet, rois.parquet and a manifest to a toy suite so that load_suite reads it.
    ODD columns: illumination (2 values), sun elevation (one per scene), fog (one per image:
    more values than the slicer lists, so it is binned) and a constant camera fov."""
    gt = json.loads((root / "annotations.json").read_text())
    rows = [{"image_id": im["id"], "file_name": im["file_name"], "scene_id": im["scene_id"],
             "subset": ",".join(map(str, im["subset"])), "subset_size": len(im["subset"]), "n_rois": im["n_rois"],
             "variant": im["variant"], "mode": im["mode"], "is_full": im["is_full"],
             "environment.illumination": ["day", "dusk"][im["scene_id"] % 2],
             "environment.sun_elevation_deg": float(10 + 7 * im["scene_id"]),
             "environment.fog_visibility_m": float(50 + 25 * im["id"]), "camera.fov_deg": 60.0}
            for im in gt["images"]]
    pd.DataFrame(rows).to_parquet(root / "scenes.parquet", index=False)
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    scene_of = {im["id"]: im["scene_id"] for im in gt["images"]}
    rois = {(scene_of[a["image_id"]], a["roi_id"]): a["category_id"] for a in gt["annotations"]}
    pd.DataFrame([{"scene_id": s, "roi_id": r, "category": cats[c], "category_id": c, "distance_m": 5.0 + 3 * r + s}
                  for (s, r), c in sorted(rois.items())]).to_parquet(root / "rois.parquet", index=False)
    (root / "manifest.json").write_text(json.dumps({"seed": 3, "note": "toy suite for tests"}))
    return root


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from oddsuite.training.toy import make_toy_suite

    return _complete_toy_suite(make_toy_suite(tmp_path_factory.mktemp("toy") / "suite", scenes=8,
                                              size=(96, 128), seed=3))


@pytest.fixture(scope="module")
def images(suite):
    from oddsuite.suite import read_image as load_rgb

    gt = json.loads((suite / "annotations.json").read_text())
    return [load_rgb(suite / im["file_name"]) for im in gt["images"]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, images):
    from oddsuite.models import save_model_dir
    from oddsuite.training.toy import lively_random_model

    model = lively_random_model(nc=2, images=images[:8], imgsz=IMGSZ, seed=0)
    return save_model_dir(model, tmp_path_factory.mktemp("m") / "lively", {0: "box", 1: "disc"}, IMGSZ, name="lively")


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, model_dir):
    from oddsuite.models import export_onnx

    return export_onnx(load_detector(model_dir), tmp_path_factory.mktemp("onnx") / "lively.onnx", IMGSZ)


@pytest.fixture(scope="module")
def int8(tmp_path_factory, model_dir, suite):
    from oddsuite.quant.quantize import quantize_model

    return quantize_model(model_dir, suite, tmp_path_factory.mktemp("q") / "lively-int8.onnx", calib_images=6, seed=0)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, fp32):
    """A copy of the fp32 model with one mid-network conv's weights x3."""
    m = onnx.load(str(fp32))
    node = next(n for n in m.graph.node if n.name == DAMAGED_CONV)
    init = next(i for i in m.graph.initializer if i.name == node.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 3, init.name))
    out = tmp_path_factory.mktemp("dmg") / "damaged.onnx"
    onnx.save(m, str(out))
    return out


# --------------------------------------------------------------------------- quantize


def test_int8_model_record_lists_calibration_images_and_hashes(int8, model_dir, suite):
    rec_path = int8.path.with_name(int8.path.name + ".json")
    assert int8.record_path == rec_path and rec_path.is_file()
    rec = json.loads(rec_path.read_text())
    assert rec == json.loads(json.dumps(int8.record))
    assert rec["output"]["sha256"] == sha256_file(int8.path)
    # the source was a safetensors model directory: exported to fp32 ONNX first
    assert rec["source"]["kind"] == "exported"
    assert rec["source"]["sha256"] == sha256_file(model_dir / "model.safetensors")
    assert rec["source"]["classes"] == {"0": "box", "1": "disc"} and rec["source"]["input_hw"] == [IMGSZ, IMGSZ]
    cal = rec["calibration"]
    assert cal["n_images"] == cal["n_requested"] == 6 and len(cal["images"]) == 6 and cal["seed"] == 0
    gt = json.loads((suite / "annotations.json").read_text())
    names = {im["file_name"]: im["id"] for im in gt["images"]}
    for im in cal["images"]:
        assert names[im["file_name"]] == im["image_id"]
        assert im["sha256"] == sha256_file(suite / im["file_name"])
    assert cal["suite_manifest_sha256"] == sha256_file(suite / "manifest.json")
    st = rec["settings"]
    assert (st["method"], st["quant_format"], st["weight_type"], st["activation_type"], st["per_channel"]
            ) == ("minmax", "QDQ", "QInt8", "QUInt8", True)
    # the weights' range chosen for the CPU that quantized (the test's own)
    reduce, why = auto_reduce_range(cpu_int8_isa(), platform.machine())
    assert st["reduce_range"] is reduce and st["weights_range"] == f"auto: {why}"
    assert st["keep_float"] == "decode+stem" and st["n_nodes_kept_float"] == len(rec["nodes_kept_float"]) > 0
    assert rec["warnings"] == []
    assert all("/model.22/" in n or "/model.0/" in n for n in rec["nodes_kept_float"])
    assert sum("/model.0/" in n for n in rec["nodes_kept_float"]) == 3  # the stem: Conv, Sigmoid, Mul
    assert not any("/cv2." in n or "/cv3." in n for n in rec["nodes_kept_float"])  # the head's convolutions: int8
    assert {"onnx", "onnxruntime", "torch"} <= set(rec["versions"])


def test_int8_model_loads_runs_and_is_int8(int8, images):
    from oddsuite.models.onnx_rt import OnnxDetector

    det = load_detector(int8.path)
    assert isinstance(det, OnnxDetector) and det.classes == {0: "box", 1: "disc"} and det.input_hw == (IMGSZ, IMGSZ)
    assert json.loads(det.metadata["quantization"])["calibration_images"] == 6
    info = det.info  # the int8 adapter fills its ModelInfo: pin, file, format, precision, recipe
    assert (info.format, info.precision, info.input_hw) == ("onnx", "int8", (IMGSZ, IMGSZ))
    assert info.files == {int8.path.name: int8.record["output"]["sha256"]} == {int8.path.name: info.sha256}
    assert info.recipe.load().info.sha256 == info.sha256
    dets = det.predict(images[:3])
    assert len(dets) == 3 and all(len(d) > 0 for d in dets)
    m = onnx.load(str(int8.path))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 50
    int8_weights = [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    scales = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    assert any(v.ndim == 1 and v.size > 1 for k, v in scales.items() if k.endswith("_scale"))
    # the stem reads float weights (the DFL is exported without a conv); every other conv, the
    # head's branches included, a DequantizeLinear output of int8 weights
    produced_by = {o: n for n in m.graph.node for o in n.output}
    float_convs = [n for n in m.graph.node if n.op_type == "Conv" and "/model.0/" in n.name]
    int8_convs = [n for n in m.graph.node if n.op_type == "Conv" and n not in float_convs]
    assert len(float_convs) == 1 and all(n.input[1] not in produced_by for n in float_convs)
    # the stem's output is quantized once, before the next convolution reads it
    stem_out = next(n for n in m.graph.node if n.name.endswith("/model.0/act/Mul")).output[0]
    assert [n.op_type for n in m.graph.node if stem_out in n.input] == ["QuantizeLinear"]
    assert all(produced_by[n.input[1]].op_type == "DequantizeLinear" for n in int8_convs)
    assert any("/model.22/cv3." in n.name for n in int8_convs)
    assert len(int8_weights) == len(int8_convs) > 40
    # symmetric weights over the range chosen for this CPU: 7-bit (reduce_range) |w| <= 64, so two
    # uint8 x int8 products fit in int16 (AVX2); 8-bit |w| <= 127 (VNNI, AMX, ARM)
    w = np.concatenate([numpy_helper.to_array(i).ravel() for i in int8_weights])
    assert np.abs(w.astype(int)).max() == (64 if int8.record["settings"]["reduce_range"] else 127)


def test_nearest_upsamples_are_quantized_as_channels_last_expands(int8):
    """The int8 model has no Resize: each nearest upsample of the neck became Transpose,
    Reshape, Expand, Reshape, Transpose (exact; see test_the_upsample_rewrite_is_exact), the
    record lists them, and ONNX Runtime's optimiser cancels the Transposes against its own
    channels-last layout, leaving the Expand on uint8 between int8 nodes."""
    import onnxruntime as ort

    m = onnx.load(str(int8.path))
    ops = [n.op_type for n in m.graph.node]
    assert "Resize" not in ops and ops.count("Expand") == 2
    done = int8.record["pre_process"]["nearest_upsample_as_expand"]
    assert [d["node"] for d in done] == ["/m/model.10/Resize", "/m/model.13/Resize"]
    assert all(d["scale"] == [2, 2] for d in done)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(int8.path.parent / "optimised.onnx")
    ort.InferenceSession(str(int8.path), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(so.optimized_model_filepath).graph
    produced_by = {o: n for n in opt.node for o in n.output}
    expands = [n for n in opt.node if n.op_type == "Expand"]
    assert len(expands) == 2 and not [n for n in opt.node if n.op_type == "Resize"]
    for e in expands:  # fed by the int8 SiLU through a Reshape, no Transpose or float on the way
        src = produced_by[produced_by[e.input[0]].input[0]]
        assert src.op_type == "QLinearMul", src.op_type


def test_the_upsample_rewrite_is_exact_and_only_for_nearest_integer_scales():
    """nearest_upsample_as_expand gives ONNX Runtime's Resize outputs bit for bit (float and
    uint8, factors 2x2 and 3x2, dynamic batch), and leaves alone what it does not reproduce:
    linear mode, half_pixel coordinates, a sizes input, a fractional scale."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from oddsuite.quant.rewrite import nearest_upsample_as_expand

    def model(dtype, scales, **attrs):
        a = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor", **attrs}
        g = helper.make_graph(
            [helper.make_node("Constant", [], ["sc"], value=numpy_helper.from_array(np.array(scales, np.float32))),
             helper.make_node("Resize", ["x", "", "sc"], ["y"], name="up", **a)],
            "g", [helper.make_tensor_value_info("x", dtype, ["n", 5, 3, 4])],
            [helper.make_tensor_value_info("y", dtype, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return onnx.shape_inference.infer_shapes(m)

    def run(m, x):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    rng = np.random.default_rng(0)
    for dtype, np_type in ((TensorProto.FLOAT, np.float32), (TensorProto.UINT8, np.uint8)):
        x = (rng.random((2, 5, 3, 4)) * 200).astype(np_type)
        for scales in ([1, 1, 2, 2], [1, 1, 3, 2]):
            m = model(dtype, scales)
            ref = run(m, x)
            done = nearest_upsample_as_expand(m)
            assert done == [{"node": "up", "scale": scales[2:], "chw": [5, 3, 4]}]
            assert [n.op_type for n in m.graph.node] == ["Transpose", "Reshape", "Expand", "Reshape", "Transpose"]
            onnx.checker.check_model(m)
            got = run(m, x)
            assert got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)
            assert np.array_equal(got, x.repeat(scales[2], 2).repeat(scales[3], 3))
    for attrs, scales in (({"mode": "linear"}, [1, 1, 2, 2]),
                          ({"coordinate_transformation_mode": "half_pixel"}, [1, 1, 2, 2]),
                          ({}, [1, 1, 1.5, 2])):
        m = model(TensorProto.FLOAT, scales, **attrs)
        assert nearest_upsample_as_expand(m) == [] and "Resize" in [n.op_type for n in m.graph.node]
    # scales held as an initializer that is also a graph input (older torch exports) stay; two
    # Resizes, one unnamed and one named as the first's default prefix, get distinct parts
    x = rng.random((1, 5, 3, 4)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "sc"], ["y1"], name="",
                          mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
         helper.make_node("Resize", ["y1", "", "sc"], ["y"], name="Resize",
                          mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 3, 4]),
              helper.make_tensor_value_info("sc", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")])
    m = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    m.ir_version = 8
    ref = run(m, x)
    done = nearest_upsample_as_expand(m)
    assert len(done) == 2 and len({d["node"] for d in done}) == 2
    onnx.checker.check_model(m)
    assert "sc" in {i.name for i in m.graph.initializer} and np.array_equal(run(m, x), ref)
    m = model(TensorProto.FLOAT, [1, 1, 2, 2])
    resize = next(n for n in m.graph.node if n.op_type == "Resize")
    m.graph.initializer.append(numpy_helper.from_array(np.array([2, 5, 6, 8], np.int64), "sz"))
    resize.input[:] = ["x", "", "", "sz"]
    assert nearest_upsample_as_expand(m) == []


def test_shared_concat_scales_make_each_shared_concat_a_copy(tmp_path, fp32, suite, int8):
    """With share_concat_scales, every Concat of a shared group reads inputs on its output's
    scale and zero point (ONNX Runtime's QLinearConcat then copies), groups that would widen a
    range more than allowed keep their own, the record lists the groups, and the rest of the
    model (the stem's output, say) is quantized as without sharing; a widening below 1 is refused."""
    from oddsuite.quant.quantize import quantize_model

    def qparams(m):
        init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        return {n.input[0]: (float(init[n.input[1]]), int(init[n.input[2]]))
                for n in m.graph.node if n.op_type == "QuantizeLinear" and init[n.input[1]].size == 1}

    r = quantize_model(fp32, suite, tmp_path / "shared.onnx", calib_images=6, seed=0, share_concat_scales=100.0)
    groups = r.record["concat_scale_groups"]
    assert r.record["settings"]["share_concat_scales"] == 100.0
    assert len(groups) >= 8 and all(g["shared"] and g["widening"] >= 1 for g in groups)
    m = onnx.load(str(r.path))
    q = qparams(m)
    produced_by = {o: n for n in m.graph.node for o in n.output}
    concats = [n for n in m.graph.node if n.op_type == "Concat" and n.output[0] in q]
    assert len(concats) >= 8
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for n in concats:
        dq = [produced_by[i] for i in n.input]
        assert all(d.op_type == "DequantizeLinear" for d in dq)
        assert {(float(init[d.input[1]]), int(init[d.input[2]])) for d in dq} == {q[n.output[0]]}, n.name
    # the unshared model's Concats requantize somewhere; sharing left the stem's output alone
    q0 = qparams(onnx.load(str(int8.path)))
    assert any({q0.get(produced_by[i].input[0]) for i in n.input} != {q0[n.output[0]]} for n in concats
               if n.output[0] in q0)
    stem = "/m/model.0/act/Mul_output_0"
    assert q[stem] == q0[stem]
    # the upsamples' Expands join their groups, so ONNX Runtime still runs them on uint8
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(r.path), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(so.optimized_model_filepath).graph
    made_by = {o: n.op_type for n in opt.node for o in n.output}
    expands = [n for n in opt.node if n.op_type == "Expand"]
    assert len(expands) == 2 and all(made_by[e.input[0]] != "DequantizeLinear" for e in expands)
    none = quantize_model(fp32, suite, tmp_path / "none.onnx", calib_images=6, seed=0, share_concat_scales=1.0)
    assert not any(g["shared"] for g in none.record["concat_scale_groups"] if g["widening"] > 1.0)
    for bad in (0.5, float("nan"), True, "2"):
        with pytest.raises(ModelError, match="share-concat-scales"):
            quantize_model(fp32, suite, tmp_path / "bad.onnx", calib_images=6, share_concat_scales=bad)


def test_concat_scale_groups_read_each_tensors_range_from_its_type():
    """The group of a Concat holds its output and inputs; a member's range comes from its
    QuantizeLinear over its integer type (int8 here: -128..127); the group is shared only
    when the union widens no member more than allowed."""
    from onnx import TensorProto, helper

    from oddsuite.quant.rewrite import concat_scale_groups

    def q(name, scale):
        return [helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
                helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"])], [
            numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
            numpy_helper.from_array(np.array(0, np.int8), f"{name}_z")]

    nodes, inits = [], []
    for name, scale in (("a", 0.1), ("b", 0.2)):
        n, i = q(name, scale)
        nodes += n
        inits += i
    nodes.append(helper.make_node("Concat", ["a_dq", "b_dq"], ["c"], axis=1))
    n, i = q("c", 0.2)
    nodes += n
    inits += i
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 2]) for x in "ab"],
                          [helper.make_tensor_value_info("c_dq", TensorProto.FLOAT, [1, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    overrides, groups = concat_scale_groups(m, 2.0)
    (grp,) = groups
    assert grp["tensors"] == ["a", "b", "c"] and grp["shared"]
    assert math.isclose(grp["rmin"], -25.6, rel_tol=1e-6) and math.isclose(grp["rmax"], 25.4, rel_tol=1e-6)
    assert math.isclose(grp["widening"], 2.0, rel_tol=1e-3)
    assert set(overrides) == {"a", "b", "c"} and float(overrides["a"][0]["rmin"]) == np.float32(-25.6)
    overrides, groups = concat_scale_groups(m, 1.9)
    assert overrides == {} and not groups[0]["shared"]


def test_the_api_and_the_cli_default_to_the_deployment_recipe():
    """oddsuite.quantize, quantize_model and `oddsuite quantize` share DEFAULTS (they are
    written out separately, so that importing oddsuite stays light)."""
    import argparse
    import inspect

    import oddsuite
    from oddsuite.commands import quantize as cmd
    from oddsuite.quant.quantize import DEFAULTS, quantize_model

    for fn in (oddsuite.quantize, quantize_model):
        sig = inspect.signature(fn).parameters
        assert {k: sig[k].default for k in DEFAULTS} == DEFAULTS, fn
    sub = argparse.ArgumentParser().add_subparsers()
    cmd.register(sub)
    args = sub.choices["quantize"].parse_args(["--model", "m", "--calib", "s", "--out", "x.onnx"])
    assert (args.method, args.keep_float) == (DEFAULTS["method"], DEFAULTS["keep_float"])


def test_the_weights_range_is_chosen_for_the_cpu():
    """7-bit weights only on x86 without an int8 dot product (AVX2's u8s8 kernels saturate
    with 8-bit ones); 8-bit with VNNI, AVX-VNNI or AMX-INT8, and on other architectures."""
    from oddsuite.quant.quantize import auto_reduce_range

    assert auto_reduce_range(("avx2", "avx512f"), "x86_64")[0] is True
    assert auto_reduce_range((), "AMD64")[0] is True
    for isa in (("avx2", "avx512f", "avx512_vnni"), ("avx2", "avx_vnni"), ("amx_int8",)):
        reduce, why = auto_reduce_range(isa, "x86_64")
        assert reduce is False and isa[-1] in why
    assert auto_reduce_range((), "aarch64") == (False, "8-bit weights: not an x86 CPU (aarch64), no int16 pair saturation")
    assert set(cpu_int8_isa()) <= {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}


def test_quantize_is_reproducible_and_options(tmp_path, fp32, suite, int8):
    from oddsuite.quant.quantize import calibration_sample, nodes_to_keep_float, quantize_model

    a = calibration_sample(suite, 5, seed=1)
    assert a == calibration_sample(suite, 5, seed=1) and a != calibration_sample(suite, 5, seed=2)
    assert len(calibration_sample(suite, 1000, seed=1)) == len(json.loads((suite / "annotations.json").read_text())["images"])
    m = onnx.load(str(fp32))
    assert nodes_to_keep_float(m, "none") == []
    head, decode = nodes_to_keep_float(m, "head"), nodes_to_keep_float(m, "decode")
    assert set(decode) < set(head) and all("/model.22/" in n for n in head)
    assert not any("/cv2." in n or "/cv3." in n for n in decode) and "/m/model.22/dfl/Exp" in decode
    assert any("/cv3." in n and n.endswith("/Conv") for n in head)
    # the stem is the first module alone, not what is computed from it; '+' joins specs
    stem = nodes_to_keep_float(m, "stem")
    assert [n.rsplit("/", 1)[-1] for n in stem] == ["Conv", "Sigmoid", "Mul"] and all("/model.0/" in n for n in stem)
    both = nodes_to_keep_float(m, "decode+stem")
    assert both == nodes_to_keep_float(m, ["stem", "decode"]) and set(both) == set(stem) | set(decode)
    assert both.index(stem[-1]) < both.index(decode[0])  # graph order
    # a regex keeps the matched nodes and everything computed from them
    kept = nodes_to_keep_float(m, r"model\.21/")
    assert kept[0].startswith("/m/model.21/") and any("/model.22/" in n for n in kept)
    with pytest.raises(ModelError, match="matches no node"):
        nodes_to_keep_float(m, "no-such-node")
    with pytest.raises(ModelError, match="not a valid regular expression"):
        nodes_to_keep_float(m, "(")

    # an ONNX source is used as it is; percentile calibration, qint8 activations, nothing kept float
    r = quantize_model(fp32, suite, tmp_path / "p.onnx", calib_images=3, seed=4, method="percentile",
                       keep_float="none", activations="qint8")
    assert r.record["source"]["kind"] == "onnx" and r.record["source"]["onnx_sha256"] == sha256_file(fp32)
    assert r.record["settings"]["percentile"] == 99.999 and r.record["settings"]["activation_type"] == "QInt8"
    assert r.record["nodes_kept_float"] == [] and load_detector(r.path).predict([np.zeros((64, 64, 3), np.uint8)])
    # with the head quantized, boxes (pixels) and scores share one int8 scale: said in the record
    assert len(r.record["warnings"]) == 1 and "--keep-float head" in r.record["warnings"][0]
    # the same inputs give the same bytes
    again = quantize_model(fp32, suite, tmp_path / "p2.onnx", calib_images=3, seed=4, method="percentile",
                           keep_float="none", activations="qint8")
    assert again.record["output"]["sha256"] == r.record["output"]["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.onnx", "p.onnx.json", "p2.onnx", "p2.onnx.json"]
    with pytest.raises(ModelError, match="method"):
        quantize_model(fp32, suite, tmp_path / "x.onnx", method="kl")
    with pytest.raises(ModelError, match=r"\*\.onnx"):
        quantize_model(fp32, suite, tmp_path / "x.bin")


# --------------------------------------------------------------------------- compare


def test_compare_with_itself_is_full_agreement_and_zero_flips(tmp_path, suite, fp32):
    from oddsuite.studies.compare import compare_models

    r = compare_models(suite, fp32, fp32, tmp_path / "cmp", progress=False)
    o = r["overall"]
    assert o["agreement"]["value"] == 1.0 and o["agreement"]["n"] > 0
    assert o["flips"]["hit_to_not"]["k"] == 0 and o["flips"]["not_to_hit"]["k"] == 0 and o["flips"]["n"] > 0
    assert o["score_drift"]["value"] == 0.0 and o["map"]["delta"]["map"] == 0.0
    assert r["top_images"] == [] and not list((tmp_path / "cmp" / "flips").glob("*.png"))
    # every condition: the suite's columns, ODD columns that vary (fog binned), ROI-level ones
    assert {"variant", "subset_size", "mode", "is_full", "environment.illumination", "environment.sun_elevation_deg",
            "environment.fog_visibility_m", "category", "visible_fraction", "roi.distance_m"} <= set(r["slices"])
    assert r["settings"]["constant_columns"] == {"camera.fov_deg": 60.0}
    assert all(lab.startswith("(") for lab in r["slices"]["environment.fog_visibility_m"])
    for groups in r["slices"].values():
        for rec in groups.values():
            assert rec["flips"]["n"] >= 0 and rec["flips"]["hit_to_not"]["k"] == 0
            if "agreement" in rec:
                assert rec["agreement"]["value"] in (1.0, None) and "n" in rec["score_drift"]
    lay = r["layers"]
    assert lay["n_identical"] == lay["n_tensors"] > 100 and lay["origins"] == []
    table = pd.read_csv(tmp_path / "cmp" / "consistency.csv")
    assert table.iloc[0]["column"] == "overall" and table.iloc[0]["agreement"] == 1.0
    assert set(table["column"]) >= {"variant", "category", "environment.fog_visibility_m"}


def test_damaged_copy_flips_and_loses_sqnr_from_that_layer_on(tmp_path, suite, fp32, damaged):
    from oddsuite.studies.compare import compare_models

    out = tmp_path / "cmp"
    r = compare_models(suite, fp32, damaged, out, top=5, progress=False, **LOW)
    o = r["overall"]
    assert o["agreement"]["value"] < 0.6
    assert o["flips"]["hit_to_not"]["k"] + o["flips"]["not_to_hit"]["k"] > 0
    assert r["top_images"] and len(r["top_images"]) <= 5
    for t in r["top_images"]:
        assert t["n_flips"] > 0 and (out / t["png"]).is_file()
    assert [t["n_flips"] for t in r["top_images"]] == sorted((t["n_flips"] for t in r["top_images"]), reverse=True)

    layers = json.loads((out / "layers.json").read_text())
    assert (out / "layers.png").stat().st_size > 1000
    assert [o["node"] for o in layers["origins"]] == [DAMAGED_CONV]
    assert r["layers"]["origins"][0]["node"] == DAMAGED_CONV
    from oddsuite.commands.compare import summary_lines

    assert f"error starts at     {DAMAGED_CONV} (" in "\n".join(summary_lines(r))  # not quantized: the node itself
    # downstream of the damaged conv: low SQNR; everything else (before it, or on branches
    # that do not pass through it): bit-identical
    m = onnx.load(str(fp32))
    tainted: set[str] = set()
    for n in m.graph.node:
        if n.name == DAMAGED_CONV or any(i in tainted for i in n.input):
            tainted.update(n.output)
    by = {t["tensor"]: t for t in layers["tensors"]}
    down = [t for name, t in by.items() if name in tainted]
    other = [t for name, t in by.items() if name not in tainted]
    assert len(down) > 50 and len(other) > 30
    assert all(t["identical"] and t["sqnr_db"] > 100 for t in other)
    assert all(not t["identical"] and t["sqnr_db"] < 20 for t in down)
    damaged_out = next(t for t in down if t["node"] == DAMAGED_CONV)
    assert damaged_out["sqnr_db"] < 0  # 3x the signal: at most -6 dB where the bias is small

    # the evaluation folders resume; another model into the same folder is refused
    r2 = compare_models(suite, fp32, damaged, out, top=5, layer_images=0, progress=False, **LOW)
    assert json.loads((out / "b" / "run.json").read_text())["images_predicted"] == 0
    assert r2["overall"] == r["overall"] and "skipped" in r2["layers"]
    with pytest.raises(OddsuiteError, match="holds a comparison of other models"):
        compare_models(suite, fp32, fp32, out, progress=False)


def test_fp32_vs_int8_reports_map_of_each_and_quantized_layers(tmp_path, suite, fp32, int8):
    from oddsuite.studies.compare import compare_models

    r = compare_models(suite, fp32, int8.path, tmp_path / "cmp", progress=False, layer_images=2, **LOW)
    mp = r["overall"]["map"]
    assert mp["a"]["map"] is not None and mp["b"]["map"] is not None
    assert mp["delta"]["map"] == pytest.approx(mp["b"]["map"] - mp["a"]["map"])
    assert r["models"]["b"]["sha256"] == int8.record["output"]["sha256"]
    assert r["models"]["a"]["full_scene_map"]["n_images"] > 0
    metrics_b = json.loads((tmp_path / "cmp" / "b" / "metrics.json").read_text())
    assert metrics_b["map"]["full"]["map"] == r["models"]["b"]["full_scene_map"]["map"]
    assert set(r["per_class"]) == {"box", "disc"} and "n" in r["per_class"]["box"]["agreement"]
    lay = json.loads((tmp_path / "cmp" / "layers.json").read_text())
    assert lay["n_images"] == 2 and lay["n_quantized"] > 100
    q = [t for t in lay["tensors"] if t["quantized"] and t["qdq_sqnr_db"] is not None]
    assert len(q) > 50 and all(math.isfinite(t["sqnr_db"]) for t in lay["tensors"])
    # int8 error accumulates with depth: the backbone's first module is closer to fp32 than the head's input
    mods = {m["module"]: m for m in lay["modules"]}
    assert mods["model.0"]["out_sqnr_db"] > mods["model.21"]["out_sqnr_db"]
    # the stem is float: error enters where its output is quantized, and the summary says so
    from oddsuite.commands.compare import summary_lines

    first = r["layers"]["origins"][0]
    assert first["node"].endswith("/model.0/act/Mul") and first["quantized"] is True
    assert f"error starts at     the int8 output of {first['node']} (" in "\n".join(summary_lines(r))


def test_a_torch_model_is_exported_for_the_layer_comparison(tmp_path, model_dir, fp32):
    from oddsuite.models.onnx_rt import OnnxDetector, onnx_file_of

    path, kind = onnx_file_of(load_detector(model_dir), tmp_path / "a-fp32.onnx")
    assert (path, kind) == (tmp_path / "a-fp32.onnx", "exported")
    names = [n.name for n in onnx.load(str(path)).graph.node]
    assert names == [n.name for n in onnx.load(str(fp32)).graph.node]  # the same tensor names as the fp32 export
    assert onnx_file_of(OnnxDetector(fp32), tmp_path / "b-fp32.onnx") == (fp32, "onnx")
    assert not (tmp_path / "b-fp32.onnx").exists()
    assert onnx_file_of(object(), tmp_path / "c-fp32.onnx") is None


def test_cli_quantize_and_compare(tmp_path, suite, fp32, capsys):
    from oddsuite.cli import main

    out = tmp_path / "models" / "x-int8.onnx"
    assert main(["quantize", "--model", str(fp32), "--calib", str(suite), "--out", str(out), "--calib-images", "2",
                 "--seed", "3", "--method", "entropy", "--keep-float", r"model\.22/", "--weights-range", "reduced"]) == 0
    text = capsys.readouterr().out
    assert "record:" in text and "entropy calibration on 2 images" in text
    rec = json.loads((tmp_path / "models" / "x-int8.onnx.json").read_text())
    assert rec["calibration"]["seed"] == 3 and rec["settings"]["keep_float"] == r"model\.22/"
    assert rec["settings"]["reduce_range"] is True and rec["settings"]["weights_range"] == "given: 7-bit weights"
    assert "weights range: given: 7-bit weights" in text
    from oddsuite.cli import build_parser

    args = ["quantize", "--model", "m", "--calib", "s", "--out", "o.onnx"]
    assert build_parser().parse_args(args).weights_range == "auto"
    assert build_parser().parse_args(args + ["--full-range-weights"]).weights_range == "full"

    res = tmp_path / "res"
    assert main(["compare", str(suite), "--model", str(fp32), "--model", str(out), "--out", str(res), "--top", "2",
                 "--layer-images", "1", "--no-progress", "--iou", "0.3", "--conf", "0.01"]) == 0
    text = capsys.readouterr().out
    assert "detection agreement" in text and "mAP A / B / delta" in text and "layers" in text
    r = json.loads((res / "consistency.json").read_text())
    assert r["settings"]["iou"] == 0.3 and len(r["top_images"]) <= 2
    assert sorted(p.name for p in res.iterdir()) == [".state", "a", "b", "consistency.csv", "consistency.json",
                                                     "flips", "layers.json", "layers.png"]
    assert main(["compare", str(suite), "--model", str(fp32), "--out", str(res)]) == 2
    assert "exactly two" in capsys.readouterr().err
    assert main(["quantize", "--model", str(tmp_path / "nope.onnx"), "--calib", str(suite), "--out",
                 str(tmp_path / "y.onnx")]) == 2

"""FAP+T for detectors: fine-tuning a YOLO with the FAP mask held fixed, in the fault sweep and the CLI.

Tiny throughout: a random yolov8n for the toy classes at imgsz 64, a 4-scene toy data set,
1 epoch on CPU, a 16x16 array with a few faulty PEs (which hit tens of thousands of weights).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oddsuite.accelerator import AcceleratorDetector, FaultMap, SystolicArray, fap_masks
from oddsuite.studies.fault_sweep import SweepSpec, run_detector_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_network")


CLASSES = {0: "box", 1: "disc"}
ARRAY = SystolicArray(16, 16)
N_FAULTY = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A toy suite, its YOLO export and a few of its images (calibration / fake evaluation)."""
    from PIL import Image

    from oddsuite.training import export_yolo
    from oddsuite.training.toy import make_toy_suite

    root = tmp_path_factory.mktemp("fapt")
    suite = make_toy_suite(root / "suite", scenes=4, size=(64, 64), seed=1)
    data_yaml = export_yolo(suite, root / "ds", images="full", val_fraction=0.0)
    coco = json.loads((suite / "annotations.json").read_text())
    files = [suite / im["file_name"] for im in coco["images"] if im["is_full"]]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return {"root": root, "suite": suite, "data_yaml": data_yaml, "files": files, "images": images}


def _detector(name="rnd"):
    from oddsuite.models.yolo import UltralyticsDetector, random_model

    return UltralyticsDetector(random_model(nc=2, seed=0), CLASSES, 64, name=name)


@pytest.fixture(scope="module")
def tuned(data):
    """One FAP+T fine-tuning (1 epoch) of the random yolov8n for one fault map."""
    from oddsuite.studies.fapt import fine_tune_detector_with_masks

    det = _detector()
    base = {k: v.clone() for k, v in det.torch_model.state_dict().items()}
    fm = FaultMap.random(ARRAY.rows, ARRAY.cols, N_FAULTY, seed=5)
    masks = fap_masks(det.torch_model, ARRAY, fm)
    model = fine_tune_detector_with_masks(det, masks, data["data_yaml"], epochs=1, imgsz=64, batch=4, seed=0)
    return {"det": det, "base": base, "fm": fm, "masks": masks, "model": model}


def test_fine_tuning_keeps_masked_weights_exactly_zero(tuned, tmp_path):
    from oddsuite.models.yolo import read_safetensors, save_model_dir

    det, masks, model = tuned["det"], tuned["masks"], tuned["model"]
    base = tuned["base"]
    params = dict(model.named_parameters())
    hit = {n: m for n, m in masks.items() if m.any()}
    assert len(hit) > 50  # 4 faulty PEs on a 16x16 array: nearly every conv has pruned weights
    n_masked = sum(int(m.sum()) for m in masks.values())
    assert n_masked > 10_000
    assert all(bool((base[n][m] != 0).any()) for n, m in hit.items())  # the masks hit real (non-zero) weights
    for n, m in masks.items():
        assert torch.all(params[n].detach()[m] == 0), n
    # the other weights were trained, starting from the given ones (not from a fresh init)
    trainable = [n for n in masks if ".dfl." not in n]
    changed = sum(int(((params[n].detach() != base[n]) & ~masks[n]).sum()) for n in trainable)
    total = sum(int((~masks[n]).sum()) for n in trainable)
    assert changed > 0.5 * total
    step = max(float(((params[n].detach() - base[n]).abs() * ~masks[n]).max()) for n in trainable)
    assert 0 < step < 0.05
    # the input model is untouched
    assert all(torch.equal(v, base[k]) for k, v in det.torch_model.state_dict().items())
    assert not model.training
    # ... and in the saved safetensors
    save_model_dir(model, tmp_path / "m", CLASSES, 64, name="ft")
    state, _ = read_safetensors(tmp_path / "m" / "model.safetensors")
    for n, m in masks.items():
        assert torch.all(state[n][m] == 0), n
    # BN folding keeps them zero in the int8 weights the array runs
    adet = AcceleratorDetector(det, ARRAY)
    adet_ft = AcceleratorDetector(_with_model(det, model), ARRAY)
    for layer in adet_ft.accelerator.layers:
        assert torch.all(layer.w_q[masks[layer.layer_name + ".weight"]] == 0), layer.layer_name
    assert any(bool((layer.w_q[masks[layer.layer_name + ".weight"]] != 0).any()) for layer in adet.accelerator.layers)


def _with_model(det, model):
    import copy

    d = copy.copy(det)
    d.torch_model = model
    return d


def test_fine_tuning_refuses_mismatched_masks_and_classes(tuned, data, tmp_path):
    from oddsuite.errors import ModelError
    from oddsuite.studies.fapt import fine_tune_detector_with_masks
    from oddsuite.models.yolo import UltralyticsDetector, random_model

    det = tuned["det"]
    with pytest.raises(ValueError, match="no parameter"):
        fine_tune_detector_with_masks(det, {"nope.weight": torch.zeros(1, dtype=torch.bool)}, data["data_yaml"])
    other = UltralyticsDetector(random_model(nc=2, seed=0), {0: "disc", 1: "box"}, 64)
    with pytest.raises(ModelError, match="classes"):
        fine_tune_detector_with_masks(other, tuned["masks"], data["data_yaml"], epochs=1, imgsz=64)
    with pytest.raises(ModelError, match="no such data set"):
        fine_tune_detector_with_masks(det, tuned["masks"], tmp_path / "missing.yaml")


def test_fapt_on_the_array_is_the_fine_tuned_model_with_fap(tuned, data):
    """FAP on pre-pruned weights bypasses PEs whose weights are already zero: FAP+T on the faulty
    array gives exactly the fine-tuned model's outputs on a fault-free array."""
    ft = _with_model(tuned["det"], tuned["model"])
    calib = data["images"][:2]
    a = AcceleratorDetector(ft, ARRAY, calibration_images=calib).configure(tuned["fm"], mitigation="fap")
    b = AcceleratorDetector(ft, ARRAY, calibration_images=calib)
    pa, pb = a.predict(data["images"]), b.predict(data["images"])
    assert sum(len(d) for d in pa) > 0
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.scores, y.scores)
    # without FAP the same faults do change the outputs
    c = AcceleratorDetector(ft, ARRAY, calibration_images=calib).configure(tuned["fm"], mitigation="none")
    assert any(len(x) != len(y) or not np.array_equal(x.scores, y.scores) for x, y in zip(c.predict(data["images"]), pb))


def _recording_evaluate(images, store):
    """An evaluate() stand-in: predicts the images, keeps the detections per point, scores their mean."""
    def evaluate(suite_dir, detector, out_dir, batch=8, progress=False):
        dets = detector.predict(images)
        store[Path(out_dir).name] = dets
        score = float(np.mean([d.scores.mean() if len(d) else 0.0 for d in dets]))
        return {"map": {"full": {"map": score, "ap50": score}, "permutation": {"map": score}},
                "context_accuracy": {"overall": {"value": 1.0}}}
    return evaluate


def test_sweep_fapt_rows_consistency_and_cached_models(data, tmp_path, monkeypatch):
    from oddsuite.models import load_detector
    from oddsuite.studies import fapt as fapt_mod
    from oddsuite.models.yolo import read_safetensors

    det = _detector()
    spec = SweepSpec(fault="stuck-at", faulty_pes=(0, N_FAULTY), mitigations=("none", "fap", "fap+t"), maps=1,
                     seed=2, train_data=str(data["data_yaml"]), ft_epochs=1, ft_imgsz=64, ft_batch=4)
    calib = data["images"][:2]
    store: dict = {}
    out = tmp_path / "sweep"
    res = run_detector_sweep("SUITE", det, out, ARRAY, spec, calib, evaluate=_recording_evaluate(data["images"], store))
    assert [(r["faulty_pes"], r["mitigation"]) for r in res["rows"]] == \
           [(0, "none"), (N_FAULTY, "none"), (N_FAULTY, "fap"), (N_FAULTY, "fap+t")]
    row = res["rows"][-1]
    s = row["map_seed"]
    assert row["point"] == f"sa-n{N_FAULTY}-seed{s}-fap+t" and row["map"] is not None
    assert row["ft_model"] == f"fapt/n{N_FAULTY}-seed{s}" and res["fapt"]["fine_tuned_now"] == 1
    mdir = out / row["ft_model"]
    card = json.loads((mdir / "model.json").read_text())
    assert row["ft_sha256"] == card["sha256"] and card["imgsz"] == 64 and card["fapt"]["masked_weights"] > 0
    assert {(r["faulty_pes"], r["mitigation"]) for r in res["summary"]} >= {(0, "fap+t"), (N_FAULTY, "fap+t")}
    assert "fap+t" in (out / "results.csv").read_text()
    # the cached weights are FAP-pruned for this map
    fm = FaultMap.load(out / row["map_file"])
    masks = fap_masks(det.torch_model, ARRAY, fm)
    state, _ = read_safetensors(mdir / "model.safetensors")
    assert all(torch.all(state[n][m] == 0) for n, m in masks.items())
    # consistency: the fap+t point ran the cached fine-tuned model with FAP on the map
    ft = load_detector(mdir, sha256=card["sha256"])
    ref = AcceleratorDetector(ft, ARRAY, calibration_images=calib).configure(fm, mitigation="fap").predict(data["images"])
    got = store[row["point"]]
    assert len(got) == len(ref) and sum(len(d) for d in got) > 0
    for x, y in zip(got, ref):
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.scores, y.scores)
    assert any(not np.array_equal(x.scores, y.scores) for x, y in zip(store[f"sa-n{N_FAULTY}-seed{s}-fap"], got))

    # a re-run reuses the cached model: no fine-tuning at all, same file, same rows
    mtime = (mdir / "model.safetensors").stat().st_mtime_ns

    def no_training(*a, **k):
        raise AssertionError("fine-tuned again")

    monkeypatch.setattr(fapt_mod, "fine_tune_detector_with_masks", no_training)
    res2 = run_detector_sweep("SUITE", det, out, ARRAY, spec, calib, evaluate=_recording_evaluate(data["images"], {}))
    assert res2["fapt"]["fine_tuned_now"] == 0
    assert (mdir / "model.safetensors").stat().st_mtime_ns == mtime
    assert [r["map"] for r in res2["rows"]] == [r["map"] for r in res["rows"]]

    # the executor path: workers load the cached model by a recipe (here an in-process executor)
    from PIL import Image

    import oddsuite.evaluate
    from oddsuite.models import save_model_dir
    from oddsuite.run.local import LocalExecutor

    save_model_dir(det.torch_model, tmp_path / "base", CLASSES, 64, name="rnd")
    from oddsuite.models import DetectorRecipe

    calib_files = []
    for i, im in enumerate(calib):
        calib_files.append(tmp_path / f"calib{i}.png")
        Image.fromarray(im).save(calib_files[-1])
    store3: dict = {}
    monkeypatch.setattr(oddsuite.evaluate, "evaluate_suite", _recording_evaluate(data["images"], store3))
    res3 = run_detector_sweep("SUITE", load_detector(tmp_path / "base"), out, ARRAY, spec, calib,
                              executor=LocalExecutor(1), recipe=DetectorRecipe(str(tmp_path / "base")),
                              calib_files=[str(f) for f in calib_files])
    assert res3["fapt"]["fine_tuned_now"] == 0  # same base weights: the cached model again
    assert [r["point"] for r in res3["rows"]] == [r["point"] for r in res["rows"]]
    for x, y in zip(store3[row["point"]], got):
        np.testing.assert_array_equal(x.scores, y.scores)


def test_sweep_fapt_refusals(tmp_path):
    data_yaml = tmp_path / "d.yaml"
    with pytest.raises(ValueError, match="--train-data"):
        SweepSpec(mitigations=("none", "fap+t")).validate(ARRAY)
    with pytest.raises(ValueError, match=r"--train-data .*d\.yaml: no such data set yaml"):
        SweepSpec(mitigations=("fap+t",), train_data=str(data_yaml)).validate(ARRAY)
    data_yaml.write_text("names: {0: a}\n")
    with pytest.raises(ValueError, match="does not apply to timing"):
        SweepSpec(fault="timing", mitigations=("fap+t",), train_data=str(data_yaml)).validate(ARRAY)
    SweepSpec(mitigations=("fap+t",), train_data=str(data_yaml)).validate(ARRAY)
    # the command's defaults, and train data kept only where a FAP+T point uses it
    spec = SweepSpec.for_fault("stuck-at", train_data=data_yaml)
    assert (spec.faulty_pes, spec.mitigations, spec.train_data, spec.fine_tunes) == ([0, 1, 4, 16], ["none", "fap"],
                                                                                   None, False)
    spec = SweepSpec.for_fault("stuck-at", mitigations=["none", "fap+t"], train_data=data_yaml)
    assert spec.train_data == str(data_yaml) and spec.fine_tunes
    assert SweepSpec.for_fault("timing").mitigations == ["none", "te-drop"]


def test_cli_fapt_needs_train_data_and_warns_on_the_evaluated_suite(data, tmp_path, capsys):
    from oddsuite.cli import main
    from oddsuite.training import exported_from

    base = ["faults", str(data["suite"]), "--model", str(tmp_path / "m"), "--array", "16x16",
            "--mitigation", "none,fap,fap+t", "--out", str(tmp_path / "out")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "fap+t" in err and "--train-data" in err
    assert main(base + ["--train-data", str(tmp_path / "missing.yaml")]) == 2
    assert "no such data set" in capsys.readouterr().err
    # the data set was exported from the suite that would be scored: a warning names it
    why = exported_from(Path(data["data_yaml"]), Path(data["suite"]))
    assert why and "exported from" in why[0]
    assert exported_from(Path(data["data_yaml"]), tmp_path) == []
    (tmp_path / "m").mkdir()
    main(base + ["--train-data", str(data["data_yaml"])])  # fails later (no model there), after the warning
    assert "warning: --train-data" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_faults_fapt_end_to_end_on_a_real_suite(tiny_suite, tmp_path, capsys):
    """`oddsuite faults --mitigation none,fap,fap+t --train-data` on a rendered suite; the data set is
    exported from that same suite here (so the command warns), and a re-run reuses the FAP+T model."""
    from oddsuite.cli import main
    from oddsuite.suite import load_suite
    from oddsuite.models import save_model_dir
    from oddsuite.training import export_yolo
    from oddsuite.models.yolo import random_model

    cats = load_suite(tiny_suite).categories
    classes = {i: name for i, (_, name) in enumerate(sorted(cats.items()))}
    mdir = save_model_dir(random_model(nc=len(classes), seed=0), tmp_path / "model", classes, 64, name="rnd")
    data_yaml = export_yolo(tiny_suite, tmp_path / "ds", images="full", val_fraction=0.0)
    out = tmp_path / "res"
    cmd = ["faults", str(tiny_suite), "--model", str(mdir), "--array", "64x64", "--faulty-pes", "0,8",
           "--mitigation", "none,fap,fap+t", "--train-data", str(data_yaml), "--ft-epochs", "1", "--ft-imgsz", "64",
           "--ft-batch", "4", "--maps", "1", "--calib", "2", "--no-progress", "--out", str(out)]
    assert main(cmd) == 0
    cap = capsys.readouterr()
    assert "warning: --train-data" in cap.err and "1 trained now" in cap.out
    res = json.loads((out / "results.json").read_text())
    assert [(r["faulty_pes"], r["mitigation"]) for r in res["rows"]] == [(0, "none"), (8, "none"), (8, "fap"),
                                                                         (8, "fap+t")]
    row = res["rows"][-1]
    assert row["map"] is not None and (out / row["ft_model"] / "model.safetensors").is_file()
    assert (out / "points" / row["point"] / "metrics.json").is_file()
    assert main(cmd) == 0
    assert "0 trained now" in capsys.readouterr().out

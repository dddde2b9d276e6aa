"""Lockstep runs and latency distributions on a tiny real suite (rendered) with a small real YOLO."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

try:  # triton (pulled in by ultralytics -> torchvision) segfaults when first imported after the
    import triton  # noqa: F401  # pyrender EGL renderer ran in this process: import it at collection
except ImportError:  # pragma: no cover
    pass

from oddsuite.studies.lockstep import compare_image, first_divergence, fp_overlap
from oddsuite.studies.variants import VariantSpec, parse_variant


def _det(image_id, cat, box, score):
    return {"image_id": image_id, "category_id": cat, "bbox": list(box), "score": score}


def test_first_divergence_and_its_size_hand_worked():
    a = [_det(1, 1, (10, 10, 20, 20), 0.9), _det(1, 2, (50, 50, 10, 10), 0.6)]
    b = [_det(1, 1, (10, 10, 20, 20), 0.9), _det(1, 2, (50.5, 50, 10, 10), 0.55)]
    assert first_divergence(a, a) is None
    f = first_divergence(a, b)
    assert (f["index"], f["what"]) == (1, ["box", "score"])
    assert f["score_delta"] == pytest.approx(-0.05) and f["box_delta_px"] == pytest.approx(0.5)
    rec = compare_image(a, b)
    assert not rec["identical"] and rec["matched"] == 2 and rec["unmatched_a"] == rec["unmatched_b"] == 0
    assert not rec["changed_at_conf"]  # both detections still match one to one at score >= 0.25
    assert rec["max_score_delta"] == pytest.approx(0.05) and rec["max_box_delta_px"] == pytest.approx(0.5)
    c = a + [_det(1, 1, (100, 100, 5, 5), 0.3)]
    f = first_divergence(a, c)
    assert (f["index"], f["what"], f["a"]) == (2, ["count"], None)
    assert compare_image(a, c)["unmatched_b"] == 1 and compare_image(a, c)["changed_at_conf"]
    assert not compare_image(a, a + [_det(1, 1, (100, 100, 5, 5), 0.1)])["changed_at_conf"]  # below conf


def test_fp_overlap_counts_shared_false_positives():
    gt = {"images": [{"id": 1, "scene_id": 0, "subset": [0], "variant": "base", "mode": "full", "is_full": True,
                      "file_name": "x.png", "width": 200, "height": 200}],
          "annotations": [{"id": 1, "image_id": 1, "roi_id": 0, "category_id": 1, "bbox": [10, 10, 20, 20],
                           "area": 400, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]}
    tp = _det(1, 1, (10, 10, 20, 20), 0.9)
    fp1, fp2, fp3 = _det(1, 2, (100, 100, 20, 20), 0.8), _det(1, 1, (150, 150, 20, 20), 0.7), \
        _det(1, 2, (101, 101, 20, 20), 0.5)
    r = fp_overlap(gt, [tp, fp1, fp2], [tp, fp3])
    # fp3 is fp1 moved by one pixel (same class, IoU 0.82): shared; fp2 only in A
    assert (r["n_a"], r["n_b"], r["shared"], r["only_a"], r["only_b"]) == (2, 1, 1, 1, 0)
    assert r["jaccard"] == pytest.approx(1 / 2) and r["images_jaccard"] == 1.0
    assert fp_overlap(gt, [tp], [tp])["jaccard"] is None  # no false positive anywhere: undefined, not 1


def test_parse_variant():
    assert parse_variant("models/x@onnx") == VariantSpec(parse_variant("models/x").path, "onnx")
    v = parse_variant("m@accelerator:64x32")
    assert (v.backend, v.array, v.label) == ("accelerator", "64x32", "m@accelerator:64x32")
    with pytest.raises(ValueError, match="backend 'gpu'"):
        parse_variant("m@gpu")
    with pytest.raises(ValueError, match="256x256"):
        parse_variant("m@accelerator:big")


def test_lockstep_cli_twice_then_torch_against_onnx(tiny_suite, lively_model, tmp_path, capsys, one_torch_thread):
    from oddsuite.cli import main

    out = tmp_path / "same"
    assert main(["lockstep", str(tiny_suite), "--model", str(lively_model), "--out", str(out), "--no-progress"]) == 0
    r = json.loads((out / "lockstep.json").read_text())
    n = r["n_images"]
    assert n == len(json.loads((tiny_suite / "annotations.json").read_text())["images"])
    assert r["bit_identical"] and r["identical_images"] == n and r["diverged"]["k"] == 0
    fp = r["false_positives"]
    assert fp["n_a"] == fp["n_b"] == fp["shared"] and fp["jaccard"] in (1.0, None)
    with open(out / "images.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n and all(row["identical"] == "True" for row in rows)
    assert "bit-identical images" in capsys.readouterr().out

    out = tmp_path / "onnx"
    assert main(["lockstep", str(tiny_suite), "--model", str(lively_model), "--model", f"{lively_model}@onnx",
                 "--out", str(out), "--no-progress"]) == 0
    r = json.loads((out / "lockstep.json").read_text())
    assert r["models"]["B"].endswith("@onnx") and (out / "variants").is_dir() and (out / "lockstep.png").is_file()
    assert r["identical_images"] + r["diverged"]["k"] == r["n_images"]
    assert r["bit_identical"] == (r["diverged"]["k"] == 0)
    for d in r["first_divergences"]:
        assert set(d["first"]["what"]) <= {"count", "category", "box", "score"}
    s = r["size"]
    assert s["max_score_delta"] >= s["median_score_delta"] >= 0 and s["max_box_delta_px"] >= 0
    fp = r["false_positives"]
    assert fp["shared"] <= min(fp["n_a"], fp["n_b"]) and fp["only_a"] + fp["shared"] == fp["n_a"]
    for c in r["clusters"] + r["clusters_at_conf"]:
        assert 0 <= c["rate"]["k"] <= c["rate"]["n"] <= n
    assert r["changed_at_conf"]["k"] <= r["diverged"]["k"]
    with open(out / "images.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(row["identical"] == "False" for row in rows) == r["diverged"]["k"]


@pytest.mark.slow
def test_lockstep_fp32_against_the_accelerator_without_faults(tiny_suite, lively_model, tmp_path, one_torch_thread):
    from oddsuite.cli import main

    out = tmp_path / "acc"
    assert main(["lockstep", str(tiny_suite), "--model", str(lively_model), "--model",
                 f"{lively_model}@accelerator:64x64", "--calib", "2", "--out", str(out), "--no-progress"]) == 0
    r = json.loads((out / "lockstep.json").read_text())
    assert r["models"]["B"].endswith("@accelerator:64x64")
    assert not r["bit_identical"]  # int8 arithmetic against fp32: the scores move
    assert r["size"]["max_score_delta"] > 0


def test_latency_cli_structure_and_consistency(tiny_suite, lively_model, tmp_path, capsys, one_torch_thread):
    from oddsuite.cli import main

    out = tmp_path / "lat"
    assert main(["latency", str(tiny_suite), "--model", str(lively_model), "--model", f"{lively_model}@onnx",
                 "--runs", "3", "--images", "2", "--warmup", "0", "--out", str(out), "--no-progress"]) == 0
    r = json.loads((out / "latency.json").read_text())
    assert r["machine"]["torch_threads"] == 1 and r["machine"]["ort_threads"] == 1 and r["machine"]["cpu_count"] >= 1
    assert [v["label"] for v in r["variants"]] == [lively_model.name, f"{lively_model.name}@onnx"]
    edges = r["histogram_edges_ms"]
    for v in r["variants"]:
        assert v["n"] == 3 * 2 and sum(v["histogram"]) == v["n"]
        assert v["best_ms"] <= v["median_ms"] <= v["p90_ms"] <= v["p99_ms"] <= v["worst_ms"]
        assert edges[0] <= v["best_ms"] and v["worst_ms"] <= edges[-1]
        assert v["p99_over_median"] == pytest.approx(v["p99_ms"] / v["median_ms"])
        assert v["stability"] in ("stable", "moderate tail", "long tail") and v["cold_first_call_ms"] > 0
        assert v["per_image_median_ms"]["min"] <= v["per_image_median_ms"]["max"]
    with open(out / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {row["run"] for row in rows} == {"0", "1", "2"}
    got = sorted(float(row["ms"]) for row in rows if row["variant"] == lively_model.name)
    assert got[0] == pytest.approx(r["variants"][0]["best_ms"], abs=1e-5)
    assert np.median(got) == pytest.approx(r["variants"][0]["median_ms"], abs=1e-5)
    assert (out / "latency.png").stat().st_size > 0
    assert "p99/median" in capsys.readouterr().out


def test_report_shows_lockstep_latency_and_the_measured_faults_finding(tiny_suite, lively_model, tmp_path,
                                                                        one_torch_thread):
    """The report's lockstep, latency and faults-findings blocks, from real runs of each study."""
    from oddsuite.cli import main
    from oddsuite.studies.mlp_experiment import MLPExperimentConfig, run_mlp_experiment
    from oddsuite.report import build_report
    from test_trace import fog_misses, outcome_table

    res = tmp_path / "res"
    res.mkdir()
    outcome_table(fog_misses, n_scenes=10).to_parquet(res / "outcomes.parquet", index=False)
    (res / "run.json").write_text(json.dumps({"suite": {"path": str(tiny_suite)}}))
    assert main(["lockstep", str(tiny_suite), "--model", str(lively_model), "--out", str(res / "lockstep"),
                 "--no-progress"]) == 0
    assert main(["latency", str(tiny_suite), "--model", str(lively_model), "--runs", "2", "--images", "1",
                 "--out", str(res / "latency"), "--no-progress"]) == 0
    small = dict(rows=16, cols=16, maps=1, epochs=2, hidden=(16, 16, 16))
    run_mlp_experiment(res / "faults_mlp", MLPExperimentConfig(faulty_pes=(0, 4), mitigations=("none",),
                                                               timing_rates=(), requant="none", **small))
    run_mlp_experiment(res / "faults_timing", MLPExperimentConfig(faulty_pes=(), mitigations=(), timing_rates=(1e-3,),
                                                                  timing_modes=("propagate",), **small))
    html = build_report(res, tmp_path / "r.html", trace_options={"min_support": 10}).read_text(encoding="utf-8")
    lock = json.loads((res / "lockstep" / "lockstep.json").read_text())
    assert f"<b>{lock['n_images']} of {lock['n_images']}</b>: every prediction identical" in html
    lat = json.loads((res / "latency" / "latency.json").read_text())
    v = lat["variants"][0]
    assert f"{v['median_ms']:.2f} ms" in html and v["stability"] in html and lat["machine"]["cpu"] in html
    mlp = json.loads((res / "faults_mlp" / "results.json").read_text())["findings"]
    assert "<b>none</b>" in html and "the seed&#39;s fixed-point arithmetic" in html
    assert ("<b>yes</b>" if mlp["few_faults_collapse"] else "<b>no</b>") in html
    assert f"4 PEs: {mlp['median_by_faulty_pes']['4']:.4f}" in html
    assert "this  run measured no stuck-at point" in html or "this stuck-at run measured no stuck-at point" in html \
        or "measured no stuck-at point" in html
    assert "<b>saturate</b> (the default)" in html  # the timing-only run, at the default requantisation

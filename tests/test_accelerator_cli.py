"""The fault sweep of a detector and the ``oddsuite faults`` command (thin integration)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from oddsuite.accelerator import FaultMap, SystolicArray
from oddsuite.studies.fault_sweep import SweepSpec, run_detector_sweep

from test_accelerator_wrap import _FakeDetector

try:  # triton (pulled in by ultralytics -> torchvision) segfaults when first imported after the
    import triton  # noqa: F401  # pyrender EGL renderer ran in this process (the tiny_suite fixture):
except ImportError:  # pragma: no cover  # import it at collection, before any rendering
    pass


def _fake_evaluate(calls):
    def evaluate(suite_dir, detector, out_dir, batch=8, progress=False):
        rng = np.random.default_rng(0)
        imgs = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
        dets = detector.predict(imgs)
        calls.append((str(out_dir), detector.name))
        score = float(np.mean([d.scores.mean() if len(d) else 0.0 for d in dets]))
        return {"map": {"full": {"map": score, "ap50": score}, "permutation": {"map": score}},
                "context_accuracy": {"overall": {"value": 1.0}}}
    return evaluate


def test_stuck_at_sweep_writes_results_maps_and_replays(tmp_path):
    rng = np.random.default_rng(1)
    calib = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    calls: list = []
    spec = SweepSpec(fault="stuck-at", faulty_pes=(0, 2, 8), mitigations=("none", "fap"), maps=2, seed=3, bits=[30])
    res = run_detector_sweep("SUITE", _FakeDetector(), tmp_path, SystolicArray(8, 8), spec, calib,
                             evaluate=_fake_evaluate(calls))
    assert len(res["rows"]) == 1 + 2 * 2 * 2  # clean once, then n x maps x mitigations
    assert len({c[0] for c in calls}) == len(calls)  # every point has its own folder
    assert len({c[1] for c in calls}) == len(calls)  # and its own detector name (resume key)
    summ = {(r["faulty_pes"], r["mitigation"]): r for r in res["summary"]}
    assert summ[(0, "none")]["median"] == summ[(0, "fap")]["median"]  # the clean point starts both curves
    assert summ[(8, "none")]["n"] == 2
    for f in ("results.json", "results.csv", "faults.png"):
        assert (tmp_path / f).stat().st_size > 0
    row = next(r for r in res["rows"] if r["faulty_pes"] == 8)
    saved = FaultMap.load(tmp_path / row["map_file"])
    assert saved == FaultMap.random(8, 8, 8, seed=row["map_seed"], bits=[30])
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == res["rows"]
    f = res["findings"]
    assert f["few_faults_collapse"] in (True, False) and f["clean_map"] == summ[(0, "none")]["median"]
    assert f["median_by_faulty_pes"] == {"2": summ[(2, "none")]["median"], "8": summ[(8, "none")]["median"]}


def test_collapse_finding_needs_a_few_faults_measured():
    from oddsuite.studies.mlp_experiment import collapse_finding

    assert collapse_finding({}, 0.9)["few_faults_collapse"] is None
    assert collapse_finding({1024: 0.1}, 0.9)["few_faults_collapse"] is None  # no point with a few faults
    got = collapse_finding({4: 0.85, 64: 0.5, 256: 0.2}, 0.9)  # threshold 0.9 * 39.69 / 74.13 = 0.4819
    assert (got["few_faults_collapse"], got["none_collapse_at_faulty_pes"]) == (False, 256)
    got = collapse_finding({4: 0.48, 64: 0.1}, 0.9)
    assert (got["few_faults_collapse"], got["none_collapse_at_faulty_pes"]) == (True, 4)


def test_requant_reaches_the_detectors_of_a_sweep(tmp_path):
    rng = np.random.default_rng(1)
    calib = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    calls: list = []
    spec = SweepSpec(fault="stuck-at", faulty_pes=(0, 4), mitigations=("none",), maps=1, bits=[30], requant="none")
    res = run_detector_sweep("SUITE", _FakeDetector(), tmp_path, SystolicArray(8, 8), spec, calib,
                             evaluate=_fake_evaluate(calls))
    assert res["requant"] == "none" and res["findings"]["requant"] == "none"
    assert all("-rqnone" in name for _, name in calls)
    with pytest.raises(ValueError, match="--requant"):
        SweepSpec(requant="clip").validate(SystolicArray(8, 8))


def test_timing_sweep_and_spec_validation(tmp_path):
    calib = [np.zeros((24, 32, 3), np.uint8) + 100]
    spec = SweepSpec(fault="timing", error_rates=(0.0, 1e-2), mitigations=("none", "te-drop"), maps=1)
    res = run_detector_sweep("SUITE", _FakeDetector(), tmp_path, SystolicArray(8, 8), spec, calib,
                             evaluate=_fake_evaluate([]))
    modes = {r.get("mode") for r in res["rows"] if r["rate"] > 0}
    assert modes == {"propagate", "te-drop"}
    # a timing-only sweep measured no stuck-at point: the seed's stuck-at finding is unknown, not false
    assert res["findings"]["few_faults_collapse"] is None and res["findings"]["none_collapse_at_faulty_pes"] is None
    assert res["requant"] == "saturate" and res["findings"]["requant"] == "saturate"
    assert all(r["timing_events"] > 0 for r in res["rows"] if r["rate"] > 0)
    with pytest.raises(ValueError, match="fap\\+t"):
        SweepSpec(mitigations=("fap+t",)).validate(SystolicArray(8, 8))
    with pytest.raises(ValueError, match="te-drop"):
        SweepSpec(fault="stuck-at", mitigations=("te-drop",)).validate(SystolicArray(8, 8))
    with pytest.raises(ValueError, match="outside 0..64"):
        SweepSpec(faulty_pes=(65,)).validate(SystolicArray(8, 8))


def test_cli_faults_parses_and_rejects_bad_input(tmp_path, capsys):
    from oddsuite.cli import build_parser, main

    p = build_parser()
    a = p.parse_args(["faults", "S", "--model", "m", "--array", "16x8", "--faulty-pes", "0,1,4", "--fault", "stuck-at",
                      "--mitigation", "none,fap", "--maps", "3", "--seed", "7", "--out", str(tmp_path)])
    assert (a.array.rows, a.array.cols, a.faulty_pes, a.mitigation, a.maps, a.seed) == (16, 8, [0, 1, 4], ["none", "fap"], 3, 7)
    a = p.parse_args(["faults", "S", "--model", "m", "--fault", "timing", "--error-rate", "1e-6,1e-5",
                      "--mitigation", "none,te-drop", "--bits", "16-31", "--out", str(tmp_path)])
    assert a.error_rate == [1e-6, 1e-5] and a.bits == list(range(16, 32)) and a.requant == "saturate"
    assert p.parse_args(["faults", "S", "--requant", "none", "--out", str(tmp_path)]).requant == "none"
    with pytest.raises(SystemExit):
        p.parse_args(["faults", "S", "--requant", "clip", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        p.parse_args(["faults", "S", "--array", "16by8", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        p.parse_args(["faults", "S", "--error-rate", "2", "--out", str(tmp_path)])
    assert main(["faults", "S", "--out", str(tmp_path)]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["faults", "mlp-digits", "--mitigation", "te-drop", "--out", str(tmp_path)]) == 2
    assert "does not apply to stuck-at" in capsys.readouterr().err
    assert main(["faults", "S", "--model", str(tmp_path), "--mitigation", "fap+t", "--out", str(tmp_path)]) == 2
    assert "fap+t" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_faults_end_to_end_on_a_real_suite(tiny_suite, tmp_path, capsys):
    """`oddsuite faults` on a rendered suite with a saved (random-weight) yolov8n: the thin integration."""
    from oddsuite.cli import main
    from oddsuite.suite import load_suite
    from oddsuite.models import save_model_dir
    from oddsuite.models.yolo import random_model

    cats = load_suite(tiny_suite).categories
    classes = {i: name for i, (_, name) in enumerate(sorted(cats.items()))}
    mdir = save_model_dir(random_model(nc=len(classes), seed=0), tmp_path / "model", classes, 64, name="rnd")
    out = tmp_path / "res"
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: OpenMP on a busy shared machine is 10-20x slower than one thread
    try:
        rc = main(["faults", str(tiny_suite), "--model", str(mdir), "--array", "64x64", "--faulty-pes", "0,8",
                   "--mitigation", "none,fap", "--maps", "1", "--calib", "2", "--no-progress", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert [(r["faulty_pes"], r["mitigation"]) for r in res["rows"]] == [(0, "none"), (8, "none"), (8, "fap")]
    assert all(r["map"] is not None for r in res["rows"])
    assert (out / res["rows"][1]["map_file"]).is_file()
    assert (out / "results.csv").is_file() and (out / "faults.png").is_file()
    for r in res["rows"]:
        assert (out / "points" / r["point"] / "metrics.json").is_file()
    assert "full-scene mAP" in capsys.readouterr().out


@pytest.mark.slow
def test_faults_sweep_on_a_worker_pool_equals_the_serial_sweep(tiny_suite, tmp_path):
    """Sweep points run on workers (each re-creates the calibrated detector) give the same rows."""
    from oddsuite.cli import main
    from oddsuite.suite import load_suite
    from oddsuite.models import save_model_dir
    from oddsuite.models.yolo import random_model

    cats = load_suite(tiny_suite).categories
    classes = {i: name for i, (_, name) in enumerate(sorted(cats.items()))}
    mdir = save_model_dir(random_model(nc=len(classes), seed=0), tmp_path / "model", classes, 64, name="rnd")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: bit-identical floats need the same thread count
    common = ["faults", str(tiny_suite), "--model", str(mdir), "--array", "64x64", "--faulty-pes", "0,8",
              "--mitigation", "none,fap", "--maps", "1", "--calib", "2", "--no-progress"]
    try:
        assert main(common + ["--out", str(tmp_path / "serial")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(common + ["--out", str(tmp_path / "pool"), "--workers", "2"]) == 0
    a = json.loads((tmp_path / "serial" / "results.json").read_text())
    b = json.loads((tmp_path / "pool" / "results.json").read_text())
    drop = ("macs", "timing_events", "timing_effective")  # per-process counters
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["rows"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b["rows"]]
    for r in a["rows"]:
        assert (tmp_path / "serial" / "points" / r["point"] / "predictions.json").read_bytes() == \
               (tmp_path / "pool" / "points" / r["point"] / "predictions.json").read_bytes()


def test_findings_are_printed_one_per_line_with_what_null_means(capsys):
    """`faults mlp-digits` prints its findings as lines, not a raw dict: null reads "not
    measured", except a collapse count that was looked for and not found."""
    from oddsuite.commands.faults import print_findings

    print_findings({"int8_accuracy": 0.97333, "requant": "saturate", "median_by_faulty_pes": {"4": 0.9622},
                    "none_collapse_at_faulty_pes": None, "few_faults_collapse": False,
                    "fap_keeps_most_at_high_rates": None,
                    "timing_first_rate_losing_5pt": {"propagate": 1e-05, "te-drop": None}})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "findings:" and "{" not in "".join(out)
    line = {ln.split()[0]: ln.split(None, 1)[1] for ln in out[1:]}
    assert line["int8_accuracy"] == "0.9733" and line["few_faults_collapse"] == "no"
    assert line["none_collapse_at_faulty_pes"] == "none in the measured range"
    assert line["fap_keeps_most_at_high_rates"] == "not measured"
    assert line["timing_first_rate_losing_5pt"] == "propagate=1e-05, te-drop=none in the measured range"
    print_findings({"median_by_faulty_pes": {}, "none_collapse_at_faulty_pes": None})
    assert capsys.readouterr().out.splitlines()[-1].split(None, 1)[1] == "not measured"

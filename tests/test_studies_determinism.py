"""Training determinism: three tiny real trainings (same seed twice, another seed) compared."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_network")


@pytest.mark.slow  # three trainings and three evaluations: about a minute of CPU
def test_same_seed_same_weights_other_seed_other_false_positives(tiny_suite, tmp_path):
    from oddsuite.training import export_yolo
    from oddsuite.studies.determinism import training_determinism

    suite = tiny_suite  # trained and scored on the same tiny suite: this checks the study, not a model
    data = export_yolo(suite, tmp_path / "ds", images="all", val_fraction=0.34)
    out = tmp_path / "det"
    r = training_determinism(data, suite, out, runs=[{"seed": 0}, {"seed": 0}, {"seed": 1}], epochs=1, imgsz=96,
                             batch=4, conf=0.001)
    same, other = r["pairs"][0], r["pairs"][1]
    assert (same["relation"], other["relation"]) == ("same seed", "different seeds")
    assert same["weights"]["bytes_equal"] and same["weights"]["tensors_differ"] == 0
    assert same["map_delta"] == 0.0
    fp = same["false_positives"]
    assert fp["n_a"] == fp["n_b"] == fp["shared"] and fp["jaccard"] in (1.0, None)
    w = other["weights"]
    assert not w["bytes_equal"] and w["tensors_differ"] > 0 and w["max_abs_diff"] > 0
    fp = other["false_positives"]
    assert fp["shared"] <= min(fp["n_a"], fp["n_b"]) and fp["only_a"] == fp["n_a"] - fp["shared"]
    for run in r["runs"]:
        for status in ("tp", "fp"):
            assert sum(run["scores"][status]["histogram"]) == run["scores"][status]["n"]
    assert r["runs"][0]["sha256"] == r["runs"][1]["sha256"] != r["runs"][2]["sha256"]
    assert json.loads((out / "determinism.json").read_text())["pairs"] == json.loads(json.dumps(r["pairs"]))
    assert (out / "determinism.png").stat().st_size > 0
    # a second call reuses the trained models (their cards match) and gives the same answer
    stamp = (out / "runs" / "run0-seed0-t0" / "model.json").stat().st_mtime_ns
    r2 = training_determinism(data, suite, out, runs=[{"seed": 0}, {"seed": 0}, {"seed": 1}], epochs=1, imgsz=96,
                              batch=4, conf=0.001)
    assert (out / "runs" / "run0-seed0-t0" / "model.json").stat().st_mtime_ns == stamp
    assert r2["pairs"] == r["pairs"]

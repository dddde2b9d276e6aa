"""`oddsuite check` on a small real run (the tiny suite, a small real YOLO, evaluate_suite):
exit codes 0 (every criterion passes), 1 (one fails), 3 (none fails, one inconclusive),
2 (no criteria); evidence.json with the SHA-256 of what it rests on; the report opening
with the verdicts, the GSN argument and the coverage heatmap; coverage in metrics.json."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oddsuite import cli

try:  # triton (ultralytics -> torchvision) segfaults when first imported after an in-process
    import triton  # noqa: F401  # pyrender/EGL render (the tiny_suite fixture): import it at collection
except ImportError:  # pragma: no cover
    pass

from conftest import TINY_SPEC as HEAD  # the spec of the tiny suite, without criteria


@pytest.fixture(scope="module")
def results(tiny_suite, lively_model, tmp_path_factory):
    import torch

    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import load_detector

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = tmp_path_factory.mktemp("check") / "results"
        evaluate_suite(tiny_suite, load_detector(lively_model), res, progress=False, conf=0.05)
    finally:
        torch.set_num_threads(threads)
    return res


def spec_with(tmp_path: Path, name: str, criteria: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(HEAD + "acceptance:\n" + criteria)
    return p


def figure(results: Path, tmp_path: Path, criterion: str) -> dict:
    from oddsuite.report.verdicts import evaluate_acceptance

    doc = evaluate_acceptance(results, spec_path=spec_with(tmp_path, "probe", criterion))
    return doc["criteria"][0]["slices"][0]["figure"]


def test_coverage_is_in_metrics_json(results, tiny_suite):
    """The 1-way counts of metrics.json, recomputed from scenes.parquet: the full-scene images
    per road surface, of the base variant only (the fog variant's 60 m lies outside the
    spec's fog, fixed at 10 km: those images show no ODD point)."""
    cov = json.loads((results / "metrics.json").read_text())["coverage"]
    scenes = pd.read_parquet(tiny_suite / "scenes.parquet")
    full = scenes.loc[scenes["mode"] == "full"]
    base = full.loc[full["variant"] == "base"]
    road = next(d for d in cov["dimensions"] if d["path"] == "scenery.road_surface")
    assert road["levels"] == ["dry", "wet"] and road["varying"]
    assert [lv["n_images"] for lv in road["by_level"]] == [int((base["scenery.road_surface"] == v).sum())
                                                           for v in ("dry", "wet")]
    fog = next(d for d in cov["dimensions"] if d["path"] == "environment.fog_visibility_m")
    assert not fog["varying"] and fog["n_images_outside"] == int((full["variant"] == "fog").sum())
    assert (cov["n_images"], cov["n_images_outside_odd"]) == (len(base), len(full) - len(base))
    assert set(cov["ways"]) == {"1", "2"}
    w2 = cov["ways"]["2"]
    assert w2["n_forbidden"] == 1 and 0 < w2["coverage"] < 1  # (dry, moderate rain); 3 scenes cover a part
    assert w2["n_covered"] == sum(1 for a, n in zip(w2["tuples"]["allowed"], w2["tuples"]["n_images"]) if a and n)


def test_check_exit_codes_gate_a_release(results, tmp_path, capsys):
    f = figure(results, tmp_path, "  - {id: P, text: probe, metric: hit_rate, min: 0.5}\n")
    lo, hi = f["ci95"]
    assert f["n"] > 0 and hi - lo > 0.02
    fp = figure(results, tmp_path, "  - {id: P, text: probe, metric: fp_per_image, max: 100}\n")
    # pass: FP per image bounded above the upper end of its interval, and some coverage of every level
    passing = spec_with(tmp_path, "pass", f"  - {{id: R1, text: few false alarms, metric: fp_per_image, "
                                          f"max: {fp['ci95'][1] + 0.5:.3f}}}\n"
                                          f"  - {{id: R2, text: some levels, metric: coverage, ways: 1, min: 0.05}}\n")
    assert cli.main(["check", str(results), "--spec", str(passing)]) == 0
    out = capsys.readouterr().out
    assert "PASS          R1" in out and "verdict: PASS (exit 0)" in out
    # inconclusive: a threshold inside the interval
    mid = spec_with(tmp_path, "mid", f"  - {{id: R3, text: in between, metric: hit_rate, min: {(lo + hi) / 2:.4f}}}\n")
    assert cli.main(["check", str(results), "--spec", str(mid)]) == 3
    out = capsys.readouterr().out
    assert "INCONCLUSIVE  R3" in out and re.search(r"≈ \d+ more ROIs \(≈ \d+ images?\) to", out)
    # fail wins over inconclusive: 3 scenes cannot cover every pair of levels
    failing = mid.read_text() + "  - {id: R4, text: every pair, metric: coverage, ways: 2, min: 1.0}\n"
    (tmp_path / "fail.yaml").write_text(failing)
    assert cli.main(["check", str(results), "--spec", str(tmp_path / "fail.yaml")]) == 1
    assert "verdict: FAIL (exit 1)" in capsys.readouterr().out
    # the suite's own spec has no criteria: an input error, and no evidence.json from it
    (results / "evidence.json").unlink()
    assert cli.main(["check", str(results)]) == 2
    assert "has no acceptance criteria" in capsys.readouterr().err
    assert not (results / "evidence.json").exists()
    # a bad spec is an error naming its line
    bad = spec_with(tmp_path, "bad", "  - {id: R5, text: x, metric: hit_rate, min: 1.5}\n")
    assert cli.main(["check", str(results), "--spec", str(bad)]) == 2
    assert f"{bad}:{HEAD.count(chr(10)) + 2}: acceptance.0.min" in capsys.readouterr().err


def test_evidence_json_links_every_figure_to_its_files(results, tmp_path):
    spec = spec_with(tmp_path, "ev", "  - {id: CAR, text: cars per road, metric: hit_rate, class: car, min: 0.2, "
                                     "per: scenery.road_surface}\n"
                                     "  - {id: MAP, text: map, metric: map, min: 0.01}\n")
    rc = cli.main(["check", str(results), "--spec", str(spec)])
    doc = json.loads((results / "evidence.json").read_text())
    assert rc == {"pass": 0, "fail": 1, "inconclusive": 3}[doc["status"]]
    sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    for name in ("metrics.json", "outcomes.parquet", "predictions.json", "run.json"):
        assert doc["sources"]["results"][name] == sha(results / name)
    assert doc["sources"]["spec"]["sha256"] == sha(spec)
    suite = Path(doc["sources"]["suite"]["path"])
    assert doc["sources"]["suite"]["manifest"]["sha256"] == sha(suite / "manifest.json")
    car = doc["criteria"][0]
    assert [s["level"] for s in car["slices"]] == ["dry", "wet"]  # every slice listed
    # the slices' counts: the base variant only (the fog variant lies outside the ODD)
    o = pd.read_parquet(results / "outcomes.parquet")
    inside = o.loc[(o["mode"] == "full") & (o["variant"] == "base") & (o["category"] == "car")
                   & ~o["ignore"] & ~o["not_visible"]]
    for s, level in zip(car["slices"], ("dry", "wet")):
        rows = inside.loc[inside["scenery.road_surface"] == level]
        assert (s["figure"]["k"], s["figure"]["n"]) == (int((rows["outcome"] == "hit").sum()), len(rows))
    # mAP: hotcoco's value on the images inside the ODD (the base variant), inside its bootstrap interval
    from oddsuite.metrics.coco import SliceEvaluator

    gt = json.loads((Path(doc["sources"]["suite"]["path"]) / "annotations.json").read_text())
    base = [im["id"] for im in gt["images"] if im["mode"] == "full" and im["variant"] == "base"]
    point = SliceEvaluator(gt, json.loads((results / "predictions.json").read_text())).slices({"b": base})["b"]["map"]
    m = doc["criteria"][1]["slices"][0]["figure"]
    assert m["value"] == pytest.approx(point) and m["n"] == len(base)
    assert m["ci95"][0] <= m["value"] <= m["ci95"][1]
    # the GSN tree: goal -> strategy -> a goal per criterion -> (strategy -> goal per slice) -> solution
    nodes = {n["id"]: n for n in doc["argument"]["nodes"]}
    kinds = [n["type"] for n in doc["argument"]["nodes"]]
    assert kinds.count("context") == 3 and kinds.count("solution") == 3
    assert nodes["G1"]["status"] == doc["status"] and nodes["G2.1"]["text"].endswith("scenery.road_surface = dry")
    sol = [n for n in doc["argument"]["nodes"] if n["type"] == "solution"]
    assert all(any(f.get("sha256") == doc["sources"]["suite"]["manifest"]["sha256"] for f in n["files"]) for n in sol)
    # re-running gives the same bytes
    before = (results / "evidence.json").read_bytes()
    cli.main(["check", str(results), "--spec", str(spec)])
    assert (results / "evidence.json").read_bytes() == before

    # the report opens with these verdicts, draws the argument and the coverage heatmap, and stays self-contained
    out = tmp_path / "r.html"
    assert cli.main(["report", str(results), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.index('<section id="verdicts">') < html.index('<section id="coverage">') < html.index(
        '<section id="summary">')
    assert f"Overall verdict: <b>{doc['status'].upper()}</b>" in html and "evidence.json (written by oddsuite check)" in html
    assert "<svg" in html and 'class="gsn-solution"' in html and doc["sources"]["results"]["outcomes.parquet"] in html
    assert 'alt="2-way coverage heatmap"' in html
    assert "url(" not in html and not re.search(r"https?://", html)
    assert np.isclose(float(re.search(r"<td>2-way</td><td>(\d+)</td><td>(\d+)</td>", html).group(1)),
                      json.loads((results / "metrics.json").read_text())["coverage"]["ways"]["2"]["n_allowed"])


def test_check_says_why_a_results_folder_has_no_suite(tmp_path, capsys):
    """No run.json, an unreadable one, and a suite path that is gone: three different causes,
    each named in check's error (exit 2), each with the way out (--suite)."""
    res = tmp_path / "res"
    res.mkdir()
    cases = [
        (None, "has no run.json"),
        ("{not json", "cannot be read as JSON"),
        (json.dumps({"suite": {"path": str(tmp_path / "moved")}}), "holds no annotations.json any more"),
    ]
    for text, why in cases:
        if text is not None:
            (res / "run.json").write_text(text)
        assert cli.main(["check", str(res)]) == 2
        err = capsys.readouterr().err
        assert why in err and "--suite DIR" in err and str(res) in err, err

"""Reduced context end to end (metrics.md §7): a suite under the reference, a reduced
resolution, 2 x 2 tiles and a crop; each condition scored like any run, resumable, traced as a
dimension and shown in the report.

The fast tests run a small real detector of a user's kind (tests/test_evaluate.PixelDetector:
pure-colour blobs are detections) on a suite written there (64 x 48 frames), where every
figure can be worked out by hand; the slow ones run a real YOLO on a rendered suite, in this
process and sharded over a process pool."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from oddsuite.evaluate import evaluate_suite
from oddsuite.studies.reduced_context import evaluate_conditions
from test_evaluate import PixelDetector, write_suite

CONDITIONS = "reference,scale:0.25,tiles:2x2:0.2,crop:0.6"
NAMES = ["reference", "scale:0.25", "tiles:2x2:0.2", "crop:0.6"]
FOLDERS = {"scale:0.25": "inference/scale-0.25", "tiles:2x2:0.2": "inference/tiles-2x2-0.2",
           "crop:0.6": "inference/crop-0.6"}
CLASS_MAP = {"person": "pedestrian"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("rc")
    suite = write_suite(root / "suite")
    out = root / "res"
    return suite, out, evaluate_conditions(suite, PixelDetector(), out, CONDITIONS, class_map=CLASS_MAP,
                                           progress=False)


def _outcomes(out, folder):
    o = pd.read_parquet(out / folder / "outcomes.parquet")
    return o.loc[o["mode"] == "full"].set_index(["image_id", "roi_id"])


def test_every_condition_is_a_scored_run_and_resumes(results, tmp_path):
    suite, out, metrics = results
    section = metrics["reduced_context"]
    assert [c["name"] for c in section["conditions"]] == NAMES
    for c in section["conditions"][1:]:
        folder = out / FOLDERS[c["name"]]
        assert c["folder"] == FOLDERS[c["name"]]
        for f in ("predictions.json", "outcomes.parquet", "metrics.json", "run.json"):
            assert (folder / f).is_file(), f
        own = json.loads((folder / "metrics.json").read_text())
        for key in ("map", "context_accuracy", "full_scene_fp", "outcomes", "tide"):
            assert key in own, key
        assert c["map_full"]["map"] == own["map"]["full"]["map"]  # the summary holds the condition's own scores
        assert c["context_accuracy"] == own["context_accuracy"]["overall"]
        run = json.loads((folder / "run.json").read_text())
        assert run["detector"]["name"] == "pixels@" + c["name"] and run["images_predicted"] == 8
        outcomes = pd.read_parquet(folder / "outcomes.parquet")
        assert set(outcomes["inference"]) == {c["name"]}
        assert ("tile_cut" in outcomes.columns) == (c["kind"] == "tiles")
    # 64 x 48 in 2 x 2 tiles: width ceil(64 / 1.8) = 36, x overlap int(7.2) = 7, the second column moved back to
    # [64 - 36, 64] = [28, 64]; height ceil(48 / 1.8) = 27, the second row [21, 48]
    assert section["conditions"][2]["views"] == {"64x48": [[0, 0, 36, 27], [28, 0, 64, 27], [0, 21, 36, 48],
                                                           [28, 21, 64, 48]]}
    # crop 0.6: round(38.4) = 38 x round(28.8) = 29 pixels from ((64 - 38) // 2, (48 - 29) // 2) = (13, 9)
    assert section["conditions"][3]["views"] == {"64x48": [[13, 9, 51, 38]]}
    # the reference is the plain evaluate: the same predictions and scores, plus the section
    plain = evaluate_suite(suite, PixelDetector(), tmp_path / "plain", class_map=CLASS_MAP, progress=False)
    top = json.loads((out / "metrics.json").read_text())
    assert {k: v for k, v in top.items() if k != "reduced_context"} == plain
    assert (out / "predictions.json").read_bytes() == (tmp_path / "plain" / "predictions.json").read_bytes()
    # a second run resumes every condition: nothing is predicted again, the same metrics come out
    det = PixelDetector()
    again = evaluate_conditions(suite, det, out, CONDITIONS, class_map=CLASS_MAP, progress=False)
    assert again == top == metrics and det.images_seen == 0
    for folder in FOLDERS.values():
        assert json.loads((out / folder / "run.json").read_text())["images_resumed"] == 8


def test_outcomes_and_retention_by_hand(results):
    suite, out, metrics = results
    by_name = {c["name"]: c for c in metrics["reduced_context"]["conditions"]}
    # Full scenes: scene 0 (image 1) has the red car ROI 0 [5, 20) x [5, 15) and the green pedestrian ROI 1
    # [30, 40) x [10, 30); scene 1 (image 5) the red car ROI 0 [10, 30) x [20, 30): 3 reference hits.
    # scale:0.25 -> 16 x 12: INTER_AREA averages 4 x 4 blocks, only whole blocks stay pure red / green.
    #   car 0: pure columns 2..4, row 2 -> [8, 8, 20, 12]: IoU 12 * 4 / 150 = 0.32 < 0.5 -> miss
    #   pedestrian: columns 8..9, rows 3..6 -> [32, 12, 40, 28]: IoU 8 * 16 / 200 = 0.64 -> hit; car of scene 1 0.64
    o = _outcomes(out, FOLDERS["scale:0.25"])
    assert o.loc[(1, 0), "iou"] == pytest.approx(0.32) and o.loc[(1, 0), "outcome"] == "miss"
    assert o.loc[(1, 1), "iou"] == pytest.approx(0.64) and o.loc[(5, 0), "outcome"] == "hit"
    r = by_name["scale:0.25"]["retention"]
    assert (r["full"]["k"], r["full"]["n"]) == (2, 3)
    assert (r["by_class"]["car"]["k"], r["by_class"]["car"]["n"]) == (1, 2)
    assert (r["by_class"]["pedestrian"]["k"], r["by_class"]["pedestrian"]["n"]) == (1, 1)
    # permutations: car 0 of scene 0 is lost in both its images (remove {0}, remove {0, 1}): unit 0; the other
    # units (pedestrian of scene 0, car of scene 1: 2 images each) keep it: 1 -> mean (0 + 1 + 1) / 3
    assert r["permutation"]["value"] == pytest.approx(2 / 3) and r["permutation"]["n_pairs"] == 6
    assert r["by_tile_cut"] is None
    # tiles: the pedestrian x 30..40 lies in no column whole (column 0 ends at 36), the car of scene 1 y 20..30 in no
    # row (row 0 ends at 27, row 1 starts at 21): both cut; sahi's merge joins their parts, so all 3 stay hits
    t = _outcomes(out, FOLDERS["tiles:2x2:0.2"])
    assert t.loc[[(1, 0), (1, 1), (5, 0)], "tile_cut"].tolist() == [False, True, True]
    cut = by_name["tiles:2x2:0.2"]["retention"]["by_tile_cut"]
    assert (cut["cut"]["k"], cut["cut"]["n"], cut["whole"]["k"], cut["whole"]["n"]) == (2, 2, 1, 1)
    # crop 0.6 [13, 51) x [9, 38): car 0 keeps [13, 20) x [9, 15) = 42 of 150 px^2 -> visible 1.0 * 0.28, still
    # >= min_visible 0.1, and the detector sees exactly that part: a hit on the clipped box
    c = _outcomes(out, FOLDERS["crop:0.6"])
    assert c.loc[(1, 0), "visible_fraction"] == pytest.approx(0.28) and c.loc[(1, 0), "iou"] == 1.0
    assert (by_name["crop:0.6"]["retention"]["full"]["k"], by_name["crop:0.6"]["retention"]["full"]["n"]) == (3, 3)
    assert metrics["reduced_context"]["merge"]["conf"] == 0.25


def test_a_tiles_folder_refuses_another_conf(results):
    from oddsuite.errors import OddsuiteError

    suite, out, _ = results
    with pytest.raises(OddsuiteError, match="merged at conf 0.25, not 0.4"):
        evaluate_conditions(suite, PixelDetector(), out, "tiles:2x2:0.2", conf=0.4, class_map=CLASS_MAP,
                            progress=False)


def test_trace_slices_on_the_inference_condition(results):
    from oddsuite.trace import trace_results

    suite, out, _ = results
    data = trace_results(out, write=False, image_set="all", min_support=1).data
    dims = {d["column"]: d for d in data["dimensions"]}
    assert set(dims["inference"]["levels"]) == set(NAMES) and "tile_cut" in dims
    assert data["settings"]["inference"] == NAMES
    # 9 scored ROI rows under each condition (12, less the 3 of scene 1's ROI 1, which has no visible pixel);
    # the only failures are scale:0.25's: car 0 of scene 0 in its 3 images
    sl = {s["condition"]: s for s in data["slices"]}
    assert (sl["inference = scale:0.25"]["failures"], sl["inference = scale:0.25"]["n"]) == (3, 9)
    assert (sl["inference = tiles:2x2:0.2"]["failures"], sl["inference = tiles:2x2:0.2"]["n"]) == (0, 9)
    assert (data["overall"]["n"], data["overall"]["failures"]) == (4 * 9, 3)


def test_report_shows_the_conditions_side_by_side(results):
    from oddsuite.report import render_report

    suite, out, _ = results
    part = render_report(out).split('<section id="reduced-context">')[1].split("</section>")[0]
    for name in NAMES:
        assert f"<code>{name}</code>" in part
    assert part.count('<figure class="thumb">') == 4  # one panel per condition, the same scene
    assert "scale:0.25: 1 of 2 ROIs hit; the detector got 16 × 12 pixels" in part  # image 1: car 0 lost
    assert "retention of ROIs cut by a tile border" in part


def test_cli_rejects_a_bad_condition(tmp_path, capsys):
    from oddsuite.cli import main

    for bad, why in [("zoom:2", "expected reference, scale:F"), ("scale:0.5,scale:0.5", "given twice")]:
        with pytest.raises(SystemExit) as e:
            main(["evaluate", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path / "r"),
                  "--inference", bad])
        assert e.value.code == 2 and why in capsys.readouterr().err


@pytest.mark.slow
def test_real_yolo_in_process_and_on_a_pool(tiny_suite, lively_model, tmp_path, one_torch_thread, capsys):
    from oddsuite.cli import main
    from oddsuite.models import load_detector
    from oddsuite.run import LocalExecutor

    conds = "reference,scale:0.5,tiles:2x2:0.2,crop:0.6"
    m = evaluate_conditions(tiny_suite, load_detector(lively_model), tmp_path / "a", conds, progress=False)
    evaluate_conditions(tiny_suite, load_detector(lively_model), tmp_path / "b", conds, progress=False,
                        executor=LocalExecutor(2))
    for folder in ("", "inference/scale-0.5", "inference/tiles-2x2-0.2", "inference/crop-0.6"):
        for f in ("predictions.json", "outcomes.parquet", "metrics.json"):
            assert (tmp_path / "a" / folder / f).read_bytes() == (tmp_path / "b" / folder / f).read_bytes(), (folder, f)
    assert [c["name"] for c in m["reduced_context"]["conditions"]] == conds.split(",")
    # 160 x 120 frames: width ceil(160 / 1.8) = 89, x overlap int(17.8) = 17 -> [0, 89], [71, 160];
    # height ceil(120 / 1.8) = 67 -> [0, 67], [53, 120]
    assert m["reduced_context"]["conditions"][2]["views"]["160x120"] == [[0, 0, 89, 67], [71, 0, 160, 67],
                                                                        [0, 53, 89, 120], [71, 53, 160, 120]]
    rc = main(["evaluate", str(tiny_suite), "--model", str(lively_model), "--out", str(tmp_path / "a"),
               "--no-progress", "--inference", conds])  # resumes: nothing to predict
    text = capsys.readouterr().out
    assert rc == 0 and "reduced context (retention" in text and "tiles:2x2:0.2" in text

"""The Python API (``import oddsuite``): the whole flow on a tiny real suite, the README's
"From Python" example as written, and an ``import oddsuite`` that loads nothing heavy."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import oddsuite

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def readme_block(heading: str, n: int = 0) -> str:
    """The ``n``-th python code block under the README section ``heading``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[n]


def test_import_oddsuite_loads_nothing_heavy():
    code = ("import sys, oddsuite; heavy = [m for m in ('numpy', 'pandas', 'torch', 'pyrender', 'pybullet', "
            "'ultralytics', 'onnxruntime', 'oddsuite.models', 'oddsuite.evaluate') if m in sys.modules]; "
            "print(heavy); assert callable(oddsuite.evaluate)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "[]"
    import oddsuite.evaluate as ev_package
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import Detections, ModelInfo, load_detector

    # a step named like its subpackage is both: callable, and the subpackage's attributes
    assert ev_package is oddsuite.evaluate and callable(oddsuite.evaluate)
    assert oddsuite.evaluate.evaluate_suite is evaluate_suite is sys.modules["oddsuite.evaluate"].evaluate_suite
    assert oddsuite.trace.trace_results is sys.modules["oddsuite.trace"].trace_results

    assert (oddsuite.Detections, oddsuite.ModelInfo, oddsuite.load_detector) == (Detections, ModelInfo, load_detector)
    with pytest.raises(AttributeError):
        oddsuite.no_such_name  # noqa: B018


def test_the_flow_from_python(tiny_suite, lively_model, tmp_path):
    v = oddsuite.verify(tiny_suite)
    assert v.ok and v.checked > 60 and not (v.missing or v.altered or v.unexpected)

    ev = oddsuite.evaluate(tiny_suite, str(lively_model), tmp_path / "res", progress=False)
    assert ev.folder == tmp_path / "res"
    assert ev.metrics == json.loads((ev.folder / "metrics.json").read_text())
    assert ev.run["detector"]["model"]["sha256"] == ev.run["detector"]["model_sha256"]
    out = ev.outcomes
    assert set(out["outcome"]) <= {"hit", "mislabel", "miss"}
    assert len(out) == sum(len(im["subset"]) for im in json.loads((tiny_suite / "annotations.json").read_text())["images"])
    assert "environment.fog_visibility_m" in out.columns and "roi.distance_m" in out.columns
    preds = json.loads((ev.folder / "predictions.json").read_text())
    assert len(ev.predictions) == len(preds) > 0
    assert ev.predictions.iloc[0].tolist() == [preds[0]["image_id"], preds[0]["category_id"], *preds[0]["bbox"],
                                               preds[0]["score"]]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.folder = tmp_path  # type: ignore[misc]

    det = oddsuite.load_detector(lively_model)  # a Detector object scores the same
    same = oddsuite.evaluate(tiny_suite, det, tmp_path / "obj", progress=False)
    assert (same.folder / "predictions.json").read_bytes() == (ev.folder / "predictions.json").read_bytes()

    sc = oddsuite.score(tiny_suite, ev.folder / "predictions.json", tmp_path / "scored")
    assert sc.metrics["map"] == ev.metrics["map"]
    assert sc.run["predictions_source"]["entries"] == len(preds)

    tr = oddsuite.trace(ev.folder, min_support=5)
    assert tr.folder == ev.folder / "trace" and tr.data == json.loads((tr.folder / "trace.json").read_text())
    assert tr.figures and all(f.is_file() and f.suffix == ".png" for f in tr.figures)
    assert list(tr.slices["rank"]) == sorted(tr.slices["rank"]) and "rate.value" in tr.slices.columns
    assert len(tr.rules) == len(tr.data["rules"])

    rep = oddsuite.report(ev.folder)
    assert rep.path == ev.folder / "report.html" and det.name in rep.path.read_text(encoding="utf-8")

    for tag in ("a", "b"):  # compare resumes these evaluations: every image is already predicted
        shutil.copytree(ev.folder, tmp_path / "cmp" / tag, ignore=shutil.ignore_patterns("trace", "report.html"))
    cmp = oddsuite.compare(tiny_suite, det, det, tmp_path / "cmp", layer_images=0, progress=False)
    assert cmp.data["overall"]["agreement"]["value"] == 1.0
    assert cmp.slices.iloc[0][["column", "value"]].tolist() == ["overall", "all"]
    assert cmp.a.metrics["map"] == ev.metrics["map"] and cmp.figures == ()


def test_generate_from_python_renders_the_same_scenes(tiny_spec, tiny_suite, tmp_path):
    """plan='full' renders only the full scenes, and they are the bytes the tiny suite has."""
    import pandas as pd

    options = dict(scenes=2, seed=11, plan="full", modes=[], progress=False)  # whole scenes only
    suite = oddsuite.generate(tiny_spec, tmp_path / "s", **options)
    assert (suite.n_scenes, suite.n_images, suite.n_resumed) == (2, 4, 0)
    assert set(suite.scenes["mode"]) == {"full"}
    ref = pd.read_parquet(tiny_suite / "rois.parquet")
    pd.testing.assert_frame_equal(suite.rois, ref[ref["scene_id"] < 2].reset_index(drop=True))
    for name in suite.scenes["file_name"]:
        assert (suite.folder / name).read_bytes() == (tiny_suite / name).read_bytes()
    assert oddsuite.verify(suite.folder).ok and suite.manifest["images"] == 4
    # the engine as the manifest records it, and the time per frame this run measured beside it
    assert suite.render["engine"] == "raster" and suite.render["frames"] == 4 and suite.render["seconds_per_frame"] > 0
    assert suite.manifest["render"] == {k: v for k, v in suite.render.items() if k != "seconds_per_frame"}
    again = oddsuite.generate(tiny_spec, tmp_path / "s", **options)
    assert again.n_resumed == 2


def test_readme_from_python_runs(tiny_spec, lively_model, tmp_path, monkeypatch, capsys):
    """The README block as written, with its first line's spec, model and folder pointing at the tiny ones."""
    block = readme_block("From Python")
    first = 'spec, model, work = "odd_specs/urban_day.yaml", "models/default", "py-demo"\n'
    assert first in block, "the README example must keep its variables line (this test replaces it)"
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace(first, f"spec, model, work = {str(tiny_spec)!r}, {str(lively_model)!r}, 'demo'\n"),
                 "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "full-scene mAP:" in printed and "report:" in printed
    assert (tmp_path / "demo" / "results" / "report.html").is_file()
    assert (tmp_path / "demo" / "results" / "trace" / "trace.json").is_file()


@pytest.mark.slow
def test_readme_from_python_runs_verbatim(tmp_path, monkeypatch):
    """The same block untouched: the shipped spec and default detector (from a copy of the repository's paths)."""
    for d in ("odd_specs", "models"):
        (tmp_path / d).symlink_to(ROOT / d)
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block("From Python"), "README.md", "exec"), {})
    assert (tmp_path / "py-demo" / "results" / "report.html").is_file()


@pytest.mark.slow
def test_quantize_and_faults_from_python(tiny_suite, lively_model, tmp_path):
    q = oddsuite.quantize(lively_model, tiny_suite, tmp_path / "q.onnx", calib_images=4)
    assert q.path.is_file() and q.record_path.is_file() and len(q.sha256) == 64
    ev = oddsuite.evaluate(tiny_suite, q.path, tmp_path / "q", progress=False)
    assert ev.run["detector"]["model"]["precision"] == "int8"
    fs = oddsuite.faults(tiny_suite, lively_model, tmp_path / "f", array="8x8", faulty_pes=[0, 2], maps=1,
                         mitigations=["none"], calib=2, progress=False)
    assert list(fs.rows["faulty_pes"]) == [0, 2] and fs.figures == (tmp_path / "f" / "faults.png",)
    assert len(fs.summary) == 2

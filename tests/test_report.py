"""The HTML report from a small real run (the tiny suite of conftest, a small real YOLO with
random weights, ``evaluate_suite``), checked as a file (every section, nothing external,
undefined rates written as such) and as a page rendered by headless Chromium."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oddsuite.report import build_report, section_ids
from oddsuite.report.build import fmt_num, fmt_rate

try:  # triton (ultralytics -> torchvision) segfaults when first imported after an in-process
    import triton  # noqa: F401  # pyrender/EGL render (the tiny_suite fixture): import it at collection
except ImportError:  # pragma: no cover
    pass

CHROMIUM = Path("/usr/bin/chromium")
IMGSZ = 160


@pytest.fixture(scope="module")
def real_results(request, tmp_path_factory):
    """A real evaluation of the tiny suite, plus a compare folder (the §6 consistency of the
    run's predictions against a perturbed copy, computed by oddsuite.metrics) and a faults
    folder in the layout of `oddsuite faults` (results.json, results.csv, no plot)."""
    # the torch stack is imported before the tiny suite may be rendered in this process (see above)
    from oddsuite.training.toy import lively_random_model
    from oddsuite.models.yolo import UltralyticsDetector
    import torchvision  # noqa: F401

    from oddsuite.evaluate import evaluate_suite, load_predictions
    from oddsuite.suite import load_suite
    from oddsuite.metrics import consistency
    from oddsuite.metrics.stats import json_clean

    import torch

    tiny_suite = request.getfixturevalue("tiny_suite")
    suite = load_suite(tiny_suite)
    names = [suite.categories[k] for k in sorted(suite.categories)]
    images = [np.asarray(Image.open(suite.image_path(im)).convert("RGB")) for im in suite.gt["images"][:8]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared machine: one thread is ~10x faster than many
    try:
        model = lively_random_model(nc=len(names), images=images, imgsz=IMGSZ, seed=0)
        det = UltralyticsDetector(model, dict(enumerate(names)), imgsz=IMGSZ, name="lively-yolov8n")
        res = tmp_path_factory.mktemp("report") / "results"
        evaluate_suite(tiny_suite, det, res, progress=False, model_sha256="5" * 64, conf=0.05)
    finally:
        torch.set_num_threads(threads)

    preds = load_predictions(res / "predictions.json", suite)
    rng = np.random.default_rng(0)
    other = [dict(d, score=float(np.clip(d["score"] * rng.uniform(0.7, 1.1), 0.001, 1.0))) for d in preds]
    c = consistency(suite.gt, preds, other, conf=0.05, scenes=suite.scenes, rois=suite.rois)
    c["models"] = {"a": {"name": "fp32", "sha256": "a" * 64}, "b": {"name": "int8", "sha256": "b" * 64}}
    (res / "compare").mkdir()
    (res / "compare" / "consistency.json").write_text(json.dumps(json_clean(c)))
    rows = [{"point": f"sa-n{n}-{m}", "faulty_pes": n, "mitigation": m, "map_seed": s, "map": 0.3 - 0.01 * n * (m == "none")}
            for n in (0, 4, 8) for m in ("none", "fap") for s in (0, 1)]
    (res / "faults").mkdir()
    (res / "faults" / "results.json").write_text(json.dumps({"fault": "stuck-at", "rows": rows}))
    pd.DataFrame(rows).to_csv(res / "faults" / "results.csv", index=False)
    (res / "faults" / "broken.json").write_text("{not json")
    return res


@pytest.fixture(scope="module")
def report_html(real_results):
    from oddsuite import cli

    assert cli.main(["trace", str(real_results), "--min-support", "5"]) == 0
    out = real_results.parent / "report.html"
    assert cli.main(["report", str(real_results), "--out", str(out)]) == 0
    return out


def test_report_has_every_section_and_the_run_identity(report_html, real_results):
    html = report_html.read_text(encoding="utf-8")
    run = json.loads((real_results / "run.json").read_text())
    tiny_suite = Path(run["suite"]["path"])
    for sid in section_ids():
        assert f'<section id="{sid}">' in html, sid
    manifest = json.loads((tiny_suite / "manifest.json").read_text())
    assert run["suite"]["manifest_sha256"] in html
    assert "5" * 64 in html  # model file SHA-256
    assert manifest["spec"]["name"] in html and "lively-yolov8n" in html
    for v in manifest["variants"]:
        assert v in html
    # the trace saved by `oddsuite trace` is the one shown
    assert "Trace: trace/trace.json" in html
    trace = json.loads((real_results / "trace" / "trace.json").read_text())
    assert f"in n = {trace['overall']['n']} ROI rows" in html
    # consistency and faults folders found in the results folder and shown
    assert "detection agreement" in html and "fp32" in html and "a" * 64 in html
    assert "results.csv (plotted here)" in html
    assert "broken.json: not valid JSON" in html


def test_report_is_self_contained(report_html):
    html = report_html.read_text(encoding="utf-8")
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert len(srcs) >= 5  # sample images and figures


def test_rates_over_nothing_are_undefined(report_html, real_results):
    html = report_html.read_text(encoding="utf-8")
    metrics = json.loads((real_results / "metrics.json").read_text())
    ca = metrics["context_accuracy"]["overall"]
    expected = fmt_rate(ca)
    assert f"Overall: <b>{expected}</b>" in html
    if ca["n"] == 0:
        assert expected == "undefined (n = 0)"
    assert fmt_rate({"value": None, "k": 0, "n": 0, "ci95": None}) == "undefined (n = 0)"
    assert fmt_rate({"value": 0.5, "k": 1, "n": 2, "ci95": [0.0945, 0.9055]}) == "0.50 [0.09, 0.91]"
    assert fmt_num(None) == "undefined" and fmt_num(float("nan")) == "undefined" and fmt_num(0.0) == "0.000"


def test_report_without_suite_or_scores_says_what_is_missing(tmp_path):
    from test_trace import fog_misses, outcome_table

    res = tmp_path / "res"
    res.mkdir()
    outcome_table(fog_misses, n_scenes=10).to_parquet(res / "outcomes.parquet", index=False)
    (res / "run.json").write_text(json.dumps({"suite": {"path": str(tmp_path / "gone")}}))
    out = build_report(res, tmp_path / "r.html", trace_options={"min_support": 10})
    html = out.read_text(encoding="utf-8")
    for sid in section_ids():
        assert f'<section id="{sid}">' in html
    assert "suite folder not found" in html and "metrics.json not found" in html
    assert "fog_visibility_m &lt; 50 m" in html  # the planted failure, found without the suite
    assert "computed for this report" in html
    assert not (res / "trace").exists()  # the report does not write into the results folder
    assert "No compare folder" in html and "No faults folder" in html

    from oddsuite import cli

    assert cli.main(["report", str(res), "--out", str(tmp_path / "x.html"), "--compare", str(tmp_path / "no")]) == 2
    assert not (tmp_path / "x.html").exists()
    from oddsuite.errors import OddsuiteError

    with pytest.raises(OddsuiteError, match="no: not a folder"):  # checked by the library, before any work
        build_report(res, tmp_path / "x.html", faults=[tmp_path / "no"])
    # a saved trace older than the outcome table is not trusted
    assert cli.main(["trace", str(res), "--min-support", "10"]) == 0
    assert "Trace: trace/trace.json" in build_report(res, tmp_path / "y.html").read_text(encoding="utf-8")
    os.utime(res / "outcomes.parquet", None)
    old = (res / "trace" / "trace.json").stat().st_mtime - 10
    os.utime(res / "trace" / "trace.json", (old, old))
    html = build_report(res, tmp_path / "z.html").read_text(encoding="utf-8")
    assert "is older than outcomes.parquet" in html and "computed for this report" in html


@pytest.mark.skipif(not CHROMIUM.is_file(),
                    reason="headless Chromium not installed at /usr/bin/chromium "
                           "(Debian: apt-get install -y chromium); the Makefile installs it in CI")
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    from oddsuite.report.screenshot import screenshot

    png = screenshot(report_html, tmp_path / "report.png", chromium=CHROMIUM)
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    grey = img.mean(axis=2)
    assert (grey < 200).mean() > 0.02  # text, tables and images, not a blank page
    assert grey.std() > 20
    top = img[:400]  # the title bar and navigation are drawn in dark ink on white
    assert (top.mean(axis=2) < 100).mean() > 0.003
    # embedded images render: some rows hold many distinct colours (photos, not text)
    colours = len(np.unique(img.reshape(-1, 3)[::7], axis=0))
    assert colours > 500

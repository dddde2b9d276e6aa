"""docs/FORMAT.md lists every column of every table, and nothing that does not exist.

Each table in FORMAT.md is a markdown table after a ``<!-- columns: NAME -->`` marker; its
first cell names one or more columns in backticks. A name may hold a placeholder:
``objects.<class>.count`` stands for any one dotted segment, and ``<scenes.parquet column>``
(``<TABLE column>``) for any column documented for that table. Both directions are checked
against a real tiny suite and its results folders: every real column matches a documented
entry, and every documented entry matches a real column.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "FORMAT.md"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def documented(text: str) -> dict[str, list[str]]:
    """Table name -> the column names (or patterns) its FORMAT.md table lists."""
    tables: dict[str, list[str]] = {}
    for m in re.finditer(r"<!-- columns: (.+?) -->\n((?:\|.*\n)+)", text):
        rows = m.group(2).strip().splitlines()[2:]  # the header and the --- line
        tables[m.group(1)] = [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]
    return tables


def patterns(table: str, tables: dict[str, list[str]]) -> list[tuple[str, re.Pattern]]:
    """(documented entry, its regex) for each entry of ``table``."""
    out = []
    for entry in tables[table]:
        rx = ""
        for part in re.split(r"(<[^>]+>)", entry):
            inner = part[1:-1] if part.startswith("<") and part.endswith(">") else None
            if inner is None:
                rx += re.escape(part)
            elif inner.endswith(" column") and inner[: -len(" column")] in tables:
                rx += "(?:" + "|".join(p.pattern for _, p in patterns(inner[: -len(" column")], tables)) + ")"
            else:
                rx += r"[^.]+"
        out.append((entry, re.compile(rx)))
    return out


def check(table: str, real: list[str], tables: dict[str, list[str]]) -> None:
    pats = patterns(table, tables)
    undocumented = [c for c in real if not any(p.fullmatch(c) for _, p in pats)]
    missing = [e for e, p in pats if not any(p.fullmatch(c) for c in real)]
    assert not undocumented, f"{table}: columns not in docs/FORMAT.md: {undocumented}"
    assert not missing, f"{table}: docs/FORMAT.md lists columns that do not exist: {missing}"


def test_the_checker_sees_both_directions():
    tables = documented("<!-- columns: t -->\n| c |\n|---|\n| `a`, `b` | x |\n| `objects.<class>.count` |\n"
                        "<!-- columns: u -->\n| c |\n|---|\n| `k` |\n| `roi.<t column>` |\n")
    assert tables == {"t": ["a", "b", "objects.<class>.count"], "u": ["k", "roi.<t column>"]}
    check("t", ["a", "b", "objects.car.count", "objects.stop sign.count"], tables)
    check("u", ["k", "roi.a", "roi.objects.car.count"], tables)
    with pytest.raises(AssertionError, match=r"not in docs/FORMAT.md: \['c'\]"):
        check("t", ["a", "b", "c", "objects.car.count"], tables)
    with pytest.raises(AssertionError, match=r"do not exist: \['b'\]"):
        check("t", ["a", "objects.car.count"], tables)
    with pytest.raises(AssertionError, match="not in docs"):
        check("t", ["a", "b", "objects.car.wheels.count"], tables)


@pytest.fixture(scope="module")
def results(tiny_suite, lively_model, tmp_path_factory):
    """A results folder of the tiny suite and a compare folder of the same detector."""
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import load_detector
    from oddsuite.studies.compare import compare_models

    base = tmp_path_factory.mktemp("format")
    det = load_detector(lively_model)
    evaluate_suite(tiny_suite, det, base / "res", progress=False)
    for tag in ("a", "b"):  # compare resumes these: every image is already predicted
        shutil.copytree(base / "res", base / "cmp" / tag)
    compare_models(tiny_suite, det, det, base / "cmp", layer_images=0, top=1, progress=False)
    return base


def _keys(records: list[dict]) -> list[str]:
    return sorted({k for r in records for k in r})


def test_format_md_lists_every_column_of_every_table(tiny_suite, results):
    tables = documented(DOC.read_text(encoding="utf-8"))
    coco = json.loads((tiny_suite / "annotations.json").read_text())
    real = {
        "annotations.json images": _keys(coco["images"]),
        "annotations.json annotations": _keys(coco["annotations"]),
        "annotations.json categories": _keys(coco["categories"]),
        "scenes.parquet": list(pd.read_parquet(tiny_suite / "scenes.parquet").columns),
        "rois.parquet": list(pd.read_parquet(tiny_suite / "rois.parquet").columns),
        "predictions.json": _keys(json.loads((results / "res" / "predictions.json").read_text())),
        "outcomes.parquet": list(pd.read_parquet(results / "res" / "outcomes.parquet").columns),
        "consistency.csv": list(pd.read_csv(results / "cmp" / "consistency.csv").columns),
    }
    assert set(real) <= set(tables), f"FORMAT.md has no table for {sorted(set(real) - set(tables))}"
    for name, columns in real.items():
        check(name, columns, tables)
    assert "environment.snow_mm_h" in real["scenes.parquet"] and "environment.snow" not in real["scenes.parquet"]


@pytest.mark.slow
def test_format_md_lists_every_column_of_a_fault_sweep(tiny_suite, lively_model, tmp_path):
    from oddsuite.accelerator import SystolicArray
    from oddsuite.studies.fault_sweep import SweepSpec, sweep_model

    tables = documented(DOC.read_text(encoding="utf-8"))
    cols = set()
    for fault, kw in (("stuck-at", {"faulty_pes": [0, 2]}), ("timing", {"error_rates": [1e-3]})):
        spec = SweepSpec.for_fault(fault, maps=1, mitigations=["none"], **kw)
        sweep_model(tiny_suite, lively_model, tmp_path / fault, SystolicArray.parse("8x8"), spec, calib=2)
        cols |= set(pd.read_csv(tmp_path / fault / "results.csv").columns)
    documented_fapt_only = {"ft_model", "ft_sha256"}  # written by fap+t points only (a training run)
    check("results.csv", sorted(cols | documented_fapt_only), tables)

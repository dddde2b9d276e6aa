"""The ODD coverage of a suite with the detector's outcomes (metrics.md §8): the spec the
suite keeps (``spec.yaml``) cut into levels and allowed tuples (``odd.coverage``), met with
the suite's full-scene images and the outcome table (``metrics.coverage``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from oddsuite.errors import SpecError
from oddsuite.suite.layout import SPEC
from oddsuite.metrics.coverage import coverage_section
from oddsuite.odd import OddSpec, parse_spec
from oddsuite.odd.coverage import odd_coverage

log = logging.getLogger(__name__)

#: the spec a suite keeps, exactly as given (docs/FORMAT.md)
SPEC_FILE = SPEC
#: the mode of full-scene images (path 1)
FULL_MODE = "full"


def suite_spec(suite_dir: str | Path) -> OddSpec | None:
    """The spec a suite was generated from (its ``spec.yaml``), or None when the suite
    keeps none. User meshes are not loaded (the suite keeps their renders, not the files).
    Raises SpecError when the kept text no longer parses."""
    path = Path(suite_dir) / SPEC_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read the suite's spec ({e})") from None
    return parse_spec(text, source=str(path), meshes=False)


def suite_coverage(suite_dir: str | Path, scenes: pd.DataFrame, outcomes: pd.DataFrame, *, k: int = 1) -> dict[str, Any] | None:
    """metrics.json's ``coverage`` for a suite (1- and 2-way, and the spec's covering
    strength when it is 3); None, with a warning, when the suite keeps no spec or its spec
    no longer parses. scenes: scenes.parquet; outcomes: the outcome table."""
    try:
        spec = suite_spec(suite_dir)
    except SpecError as e:
        log.warning("no ODD coverage: %s", e)
        return None
    if spec is None:
        log.warning("no ODD coverage: %s has no %s", suite_dir, SPEC_FILE)
        return None
    full = scenes.loc[scenes["mode"] == FULL_MODE]
    ways = sorted({1, 2, int(spec.strength)})
    return coverage_section(odd_coverage(spec), full, outcomes, ways=ways, k=k)

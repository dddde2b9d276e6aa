"""Atomic writes: a temporary file in the same folder, flushed to disk, then os.replace."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from oddsuite.fileio import atomic_write as _atomic
from oddsuite.metrics.stats import json_clean

def write_text_atomic(path: Path, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text), binary=False)


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = 1) -> None:
    """Strict JSON (NaN/inf become null)."""
    text = json.dumps(json_clean(obj), indent=indent, allow_nan=False)
    write_text_atomic(Path(path), text + "\n")


def write_parquet_atomic(path: Path, table: pd.DataFrame) -> None:
    _atomic(Path(path), lambda f: table.to_parquet(f, index=False), binary=True)

"""Atomic writes: a temporary file in the same folder, flushed to disk, then os.replace."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from oddsuite.metrics.stats import json_clean


def _atomic(path: Path, write: Any, binary: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: Path, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text), binary=False)


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = 1) -> None:
    """Strict JSON (NaN/inf become null)."""
    text = json.dumps(json_clean(obj), indent=indent, allow_nan=False)
    write_text_atomic(Path(path), text + "\n")


def write_parquet_atomic(path: Path, table: pd.DataFrame) -> None:
    _atomic(Path(path), lambda f: table.to_parquet(f, index=False), binary=True)

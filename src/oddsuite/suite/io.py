"""Atomic writes and hashing for suite files."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oddsuite.fileio import atomic_write_bytes, sha256_file  # noqa: F401 - re-exported

def dumps_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no timestamps, stable float repr, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps_json(obj))


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG with fixed settings and no metadata chunks: the same pixels give the same bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()

def parquet_bytes(df) -> bytes:
    """Parquet without the pandas index; deterministic for the same frame and pyarrow version."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()

"""Encoders of a suite's binary files: PNG and parquet bytes that depend only on their content."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


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

"""oddsuite.fileio: the one atomic writer (umask kept) and the one JSON writer."""
from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from oddsuite.fileio import atomic_path, atomic_write_bytes, json_bytes, plain_json, sha256_file, write_json


@pytest.fixture
def umask():
    """Run with a chosen umask, restored afterwards."""
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_writes_take_the_users_umask(tmp_path, umask):
    umask(0o022)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    write_json(tmp_path / "b.json", {"k": 1})
    with atomic_path(tmp_path / "c.onnx") as tmp:
        tmp.write_bytes(b"model")
    assert [_mode(tmp_path / n) for n in ("a.bin", "b.json", "c.onnx")] == [0o644] * 3
    umask(0o077)
    atomic_write_bytes(tmp_path / "private.bin", b"x")
    assert _mode(tmp_path / "private.bin") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json", "c.onnx", "private.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    write_json(target, {"v": 1})
    with pytest.raises(ValueError):
        write_json(target, {"v": float("nan")})  # strict by default: nothing half-written
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_json_writer_canonical_and_ordered_forms():
    obj = {"b": 1, "a": {"y": "é", "x": [1.5, 2]}}
    assert json_bytes(obj) == b'{\n "a": {\n  "x": [\n   1.5,\n   2\n  ],\n  "y": "\xc3\xa9"\n },\n "b": 1\n}\n'
    assert json_bytes(obj, sort_keys=False, indent=None) == '{"b": 1, "a": {"y": "é", "x": [1.5, 2]}}\n'.encode()
    # nan="null": NaN/inf become null, numpy values plain Python (what metrics.json needs)
    got = json.loads(json_bytes({"ap": float("nan"), "n": np.int64(3), "r": np.float32(0.5), "v": np.arange(2),
                                 "i": -math.inf}, nan="null"))
    assert got == {"ap": None, "n": 3, "r": 0.5, "v": [0, 1], "i": None}
    with pytest.raises(ValueError):
        json_bytes({"x": math.inf})
    assert plain_json({1: (np.bool_(True),)}) == {"1": [True]}


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    data = os.urandom(3 << 20)
    (tmp_path / "d").write_bytes(data)
    assert sha256_file(tmp_path / "d") == hashlib.sha256(data).hexdigest()

"""Behaviour pinned byte for byte: a tiny suite's files and the metrics.json of a tiny
evaluate with the shipped default detector must keep their SHA-256 through refactors.

The pinned digests live in ``tests/data/pinned_hashes.json``. Update them only for a
change that an issue asks for (say so in the commit), never to make a refactor pass:
run ``python tests/test_pinned_bytes.py --update`` and commit the JSON with the reason.
The spec covers every weather effect (fog, rain, snow, night with headlights, no
shadows, wet and snowy roads) and the remove and isolate modes.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "tests" / "data" / "pinned_spec.yaml"
PINS = ROOT / "tests" / "data" / "pinned_hashes.json"
MODEL = ROOT / "models" / "default"


def _cli(*args: str) -> None:
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "oddsuite.cli", *args], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def current_hashes(work: Path) -> dict[str, dict[str, str]]:
    """Generate the pinned suite and evaluate the default detector on it; return the digests."""
    suite, res = work / "suite", work / "res"
    _cli("generate", str(SPEC), "--out", str(suite), "--scenes", "2", "--seed", "3", "--workers", "1")
    _cli("evaluate", str(suite), "--model", str(MODEL), "--out", str(res), "--no-progress")
    files = {p.relative_to(suite).as_posix(): _sha(p) for p in sorted(suite.rglob("*"))
             if p.is_file() and ".state" not in p.relative_to(suite).parts and p.name != "manifest.json"}
    return {"suite": files, "results": {"metrics.json": _sha(res / "metrics.json")}}


def test_suite_and_metrics_bytes_are_pinned(tmp_path):
    want = json.loads(PINS.read_text())
    got = current_hashes(tmp_path)
    changed = sorted(k for k in set(want["suite"]) | set(got["suite"]) if want["suite"].get(k) != got["suite"].get(k))
    assert not changed, f"{len(changed)} suite file(s) changed bytes: {changed[:10]}"
    assert got["results"] == want["results"], "metrics.json of the pinned evaluate changed bytes"


if __name__ == "__main__":  # python tests/test_pinned_bytes.py --update
    import tempfile

    if "--update" not in sys.argv:
        sys.exit("usage: python tests/test_pinned_bytes.py --update   (see the module doc first)")
    with tempfile.TemporaryDirectory() as d:
        PINS.write_text(json.dumps(current_hashes(Path(d)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINS}")

"""Import cost of the Python API: ``import oddsuite`` against importing what its steps use.

Each import runs in a fresh interpreter (``python -X importtime -c "import X"``), rounds
interleaved, median of the rounds; prints the cumulative microseconds Python reports for the
top module and the ratio to ``import oddsuite``. ``import oddsuite`` must stay a small fraction
of the cheapest step's imports: nothing heavy (numpy, pandas, torch, pyrender) loads until a
function needs it.

    .venv/bin/python benchmarks/import_time.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

TARGETS = ["oddsuite", "oddsuite.models", "oddsuite.evaluate", "oddsuite.suite"]


def import_us(module: str) -> int:
    """Cumulative import time of ``module`` in microseconds, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                         text=True, env=env, check=True).stderr
    for line in reversed(err.splitlines()):
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
        if m and m.group(3) == module and not m.group(2):
            return int(m.group(1))
    raise RuntimeError(f"no importtime line for {module}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds per import (default 5)")
    args = ap.parse_args(argv)
    times: dict[str, list[int]] = {t: [] for t in TARGETS}
    for _ in range(args.rounds):
        for t in TARGETS:
            times[t].append(import_us(t))
    base = statistics.median(times["oddsuite"])
    print(f"{'import':<22} {'median ms':>10} {'x import oddsuite':>18}")
    for t in TARGETS:
        med = statistics.median(times[t])
        print(f"{t:<22} {med / 1000:>10.1f} {med / base:>18.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

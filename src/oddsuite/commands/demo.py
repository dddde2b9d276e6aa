"""oddsuite demo --out DIR: the main job on the embedded default, start to end.

Generates a small suite from the shipped urban spec, evaluates the project's own default
detector on it, traces the failures and writes the HTML report, by running the same
sub-commands a user would.
"""
from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate a small suite, evaluate the default detector, trace, report",
                       description="Run the main job on the shipped default: a small suite from "
                                   "odd_specs/urban_day.yaml, the default detector in models/default, "
                                   "failure tracing and the HTML report. Re-running resumes.")
    p.add_argument("--out", default="demo", help="output folder (default ./demo)")
    p.add_argument("--spec", default=str(ROOT / "odd_specs" / "urban_day.yaml"), help="ODD spec")
    p.add_argument("--model", default=str(ROOT / "models" / "default"), help="detector (default: models/default)")
    p.add_argument("--scenes", type=int, default=6, help="scenes (default 6)")
    p.add_argument("--seed", type=int, default=1, help="suite seed (default 1)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.cli import main

    out = Path(args.out)
    suite, results, report = out / "suite", out / "results", out / "report.html"
    steps = [
        ["generate", args.spec, "--out", str(suite), "--scenes", str(args.scenes), "--seed", str(args.seed),
         "--workers", str(args.workers), "--renderer", "composite"],
        ["verify", str(suite)],
        ["evaluate", str(suite), "--model", args.model, "--out", str(results),
         "--inference", "reference,scale:0.25,tiles:2x2:0.2,crop:0.6"],
        ["trace", str(results)],
        ["report", str(results), "--out", str(report)],
    ]
    for i, step in enumerate(steps, 1):
        print(f"\n[{i}/{len(steps)}] oddsuite {' '.join(step)}", flush=True)
        rc = main(step)
        if rc:
            print(f"demo stopped: step {i} (oddsuite {step[0]}) exited with {rc}")
            return rc
    print(f"\nreport: {report.resolve()}")
    return 0

"""``oddsuite check RESULTS_DIR``: judge the spec's acceptance criteria; the exit code gates a release."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check", help="judge the spec's acceptance criteria on a results folder (exit 0 pass, 1 fail, 3 inconclusive)",
        description="Judge every acceptance criterion of the ODD spec (its `acceptance:` block; by default the "
                    "spec the suite keeps) on an evaluation's results folder, at the pessimistic end of each "
                    "figure's 95% interval, print the verdicts and write RESULTS_DIR/evidence.json (the verdicts, "
                    "the SHA-256 of every file they rest on and the GSN argument). Exit code: 0 when every "
                    "criterion passes, 1 when one fails, 3 when none fails but one is inconclusive (more images "
                    "needed), 2 on bad input: use it to gate a model release in CI.")
    p.add_argument("results", metavar="RESULTS_DIR", type=Path, help="results folder (from `oddsuite evaluate`)")
    p.add_argument("--spec", type=Path, default=None, metavar="FILE",
                   help="the spec whose acceptance criteria to judge (default: the suite's spec.yaml)")
    p.add_argument("--suite", type=Path, default=None, metavar="DIR",
                   help="the suite folder (default: the path in run.json)")
    p.add_argument("--no-evidence", action="store_true", help="do not write RESULTS_DIR/evidence.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.report.evidence import check_results
    from oddsuite.report.verdicts import EXIT_CODES, verdict_lines

    doc, path = check_results(args.results, suite_dir=args.suite, spec_path=args.spec, write=not args.no_evidence)
    src = doc.get("sources") or {}
    if doc["status"] == "none":
        print(f"error: the spec {src.get('spec', {}).get('path')} has no acceptance criteria (an `acceptance:` "
              f"block); nothing to check", file=sys.stderr)
        return 2
    model = src.get("model") or {}
    man = (src.get("suite") or {}).get("manifest") or {}
    print(f"oddsuite check: {model.get('name') or 'predictions'} on {doc.get('spec')} "
          f"(suite manifest sha256 {str(man.get('sha256'))[:12]}…, model sha256 {str(model.get('sha256'))[:12]}…)")
    for line in verdict_lines(doc):
        print(line)
    code = EXIT_CODES[doc["status"]]
    print(f"verdict: {doc['status'].upper()} (exit {code})" + (f"; evidence: {path}" if path else ""))
    return code

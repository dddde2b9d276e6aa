"""``oddsuite report RESULTS_DIR --out report.html``: one self-contained HTML report."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int as _positive_int


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="write one self-contained HTML report of a results folder",
        description="Write one self-contained HTML file (figures and images embedded, no external resources) "
                    "with the suite and run summary, mAP, ROI outcomes, context accuracy, context-induced false "
                    "positives, failure slices and rules with example images, ROI influence, and, when present, "
                    "quantization consistency and fault injection. Uses RESULTS_DIR/trace/trace.json when it "
                    "exists, else traces the results for the report (without saving the trace).")
    p.add_argument("results", metavar="RESULTS_DIR", type=Path, help="results folder (from `oddsuite evaluate`)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="the HTML file to write (default RESULTS_DIR/report.html)")
    p.add_argument("--suite", type=Path, default=None, metavar="DIR",
                   help="the suite folder (default: the path in run.json), for images and the suite summary")
    p.add_argument("--compare", type=Path, action="append", default=None, metavar="DIR",
                   help="a consistency (compare) folder to include; repeatable (default: RESULTS_DIR/compare*)")
    p.add_argument("--faults", type=Path, action="append", default=None, metavar="DIR",
                   help="a fault-injection folder to include; repeatable (default: RESULTS_DIR/fault*)")
    p.add_argument("--images", choices=("full", "permutation", "all"), default=None,
                   help="re-trace failures over these images instead of using trace/trace.json")
    p.add_argument("--min-support", type=_positive_int, default=None, metavar="N",
                   help="re-trace with this minimum support instead of using trace/trace.json")
    p.add_argument("--examples", type=_positive_int, default=2, metavar="K",
                   help="example scenes per failure slice or rule (default 2)")
    p.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                   help="also save the top 1280x2000 pixels of the page, rendered by headless Chromium")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.report import build_report

    trace_options = {}
    if args.images is not None:
        trace_options["image_set"] = args.images
    if args.min_support is not None:
        trace_options["min_support"] = args.min_support
    path = build_report(args.results, args.out, suite_dir=args.suite, compare=args.compare, faults=args.faults,
                        trace_options=trace_options or None, n_examples=args.examples)
    size = path.stat().st_size
    print(f"report: {path} ({size / 1e6:.1f} MB, self-contained)")
    if args.screenshot is not None:
        from oddsuite.report.screenshot import screenshot

        print(f"screenshot: {screenshot(path, args.screenshot)}")
    return 0

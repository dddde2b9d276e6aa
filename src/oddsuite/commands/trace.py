"""``oddsuite trace RESULTS_DIR``: trace failures to scene conditions and ROIs."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int as _positive_int


def _depth(text: str) -> int:
    v = _positive_int(text)
    if v > 3:
        raise argparse.ArgumentTypeError(f"expected 1, 2 or 3 (rules stay readable), got {text!r}")
    return v


def _bins(text: str) -> tuple[str, list[float]]:
    col, sep, edges = text.partition("=")
    try:
        values = [float(e) for e in edges.split(",") if e.strip() != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected COLUMN=EDGE,EDGE,... with numbers, got {text!r}") from e
    if not sep or not col.strip() or not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected COLUMN=EDGE,EDGE,... (distinct numbers), got {text!r}")
    return col.strip(), values


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trace", help="trace failures to scene conditions and ROIs (slices, heatmaps, rules, ROI influence)",
        description="Find the scene conditions and co-present ROIs under which the detector fails, from an "
                    "evaluation's results folder; writes RESULTS_DIR/trace/trace.json and PNG figures. A failure "
                    "is a ROI that is missed or mislabelled; ignore regions are left out. Slices (one level of "
                    "one condition) are ranked by the lower end of their failure rate's 95% Wilson interval minus "
                    "the overall failure rate: positive only when the slice fails more often than overall even "
                    "at the pessimistic end of its interval; after the first, each slice is ranked on the rows the "
                    "slices above it do not cover. Prints the top class-presence influences (any ROI of a class "
                    "present vs none) and ROI influences, and names what the suite's permutation plan cannot "
                    "separate.")
    p.add_argument("results", metavar="RESULTS_DIR", type=Path, help="results folder (from `oddsuite evaluate`)")
    p.add_argument("--images", choices=("full", "permutation", "all"), default="full",
                   help="which images to trace: full scenes (default), permutation images, or all")
    p.add_argument("--min-support", type=_positive_int, default=20, metavar="N",
                   help="slices, heatmap cells and presence rows with fewer ROI rows are marked 'small n' (all are "
                        "shown, ranked by their interval's lower bound); also the rule tree's fewest rows per leaf "
                        "(default 20)")
    p.add_argument("--max-depth", type=_depth, default=3, metavar="D", help="depth of the rule tree, 1..3 (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rule tree (default 0)")
    p.add_argument("--top-pairs", type=int, default=4, metavar="K", help="heatmaps of the K best pairs (default 4)")
    p.add_argument("--bins", type=_bins, action="append", default=[], metavar="COLUMN=E1,E2,...",
                   help="bin edges for a numeric column instead of the default bins "
                        "(e.g. fog_visibility_m=100,500); repeatable")
    p.add_argument("--suite", type=Path, default=None, metavar="DIR",
                   help="the suite (default: run.json's suite path) for image boxes of ROI positions")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default RESULTS_DIR/trace)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.trace import trace_results
    from oddsuite.trace.summary import summary_lines

    bins = dict(args.bins) if args.bins else None
    t = trace_results(args.results, suite_dir=args.suite, out_dir=args.out, image_set=args.images,
                      min_support=args.min_support, max_depth=args.max_depth, seed=args.seed,
                      top_pairs=args.top_pairs, bins=bins)
    for line in summary_lines(t.data):
        print(line)
    out = args.out if args.out is not None else args.results / "trace"
    print(f"trace: {out / 'trace.json'} (+ {len(t.figures)} figures)")
    return 0

"""``oddsuite score SUITE --predictions FILE --out DIR``: score predictions made by any tool."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import unit_float as _unit_float


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "score", help="score a COCO results JSON made by any tool (no detector needed)",
        description="Score a COCO results JSON ([{image_id, category_id, bbox [x, y, w, h], score}]) against "
                    "SUITE and write the results folder `evaluate` writes (predictions.json, outcomes.parquet, "
                    "metrics.json, run.json with the file's SHA-256), so `trace` and `report` work on it. "
                    "image_id is the suite's image id, or a file name of the image: its path in the suite, or the "
                    "name `oddsuite export` gave it, with or without extension (ultralytics val(save_json=True) "
                    "writes these stems). category_id is the suite's, unless --class-map says otherwise. "
                    "An unknown image or class stops with the file and the entry named.")
    p.add_argument("suite", metavar="SUITE", type=Path, help="suite folder (from `oddsuite generate`)")
    p.add_argument("--predictions", required=True, type=Path, metavar="FILE", help="COCO results JSON")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder")
    p.add_argument("--class-map", default=None, metavar="ID=CATEGORY,...",
                   help="the tool's category_id = suite category (name or id), e.g. 1=person,3=car "
                        "(ultralytics numbers its classes from 1 in the model's order)")
    p.add_argument("--drop-unmapped", action="store_true",
                   help="with --class-map: drop (and count) detections of tool classes the map leaves out, "
                        "instead of stopping")
    p.add_argument("--name", default=None, help="the detector's name in run.json and the report "
                                                "(default: the predictions file's stem)")
    p.add_argument("--iou", type=_unit_float, default=0.5, help="IoU for ROI outcomes (default 0.5)")
    p.add_argument("--conf", type=_unit_float, default=0.25, help="operating score threshold (default 0.25)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from oddsuite.commands.evaluate import summary_lines
    from oddsuite.evaluate import score

    metrics = score(args.suite, args.predictions, args.out, iou=args.iou, conf=args.conf, class_map=args.class_map,
                    drop_unmapped=args.drop_unmapped, name=args.name)
    src = json.loads((args.out / "run.json").read_text(encoding="utf-8"))["predictions_source"]
    forms = ", ".join(f"{n} by {k}" for k, n in src["image_id_forms"].items()) or "none"
    print(f"{args.predictions} (sha256 {src['sha256'][:16]}…) on {args.suite}  (iou {args.iou}, conf {args.conf})")
    print(f"  {src['entries']} entries (images named: {forms}); {src['images_with_predictions']} of "
          f"{metrics['counts']['images']} suite images have a prediction")
    for line in summary_lines(metrics):
        print(line)
    print(f"results: {args.out}")
    return 0

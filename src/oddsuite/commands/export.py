"""``oddsuite export SUITE --format yolo --out DIR``: a suite as an ultralytics data set."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from oddsuite.commands._args import share


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export a suite for training (ultralytics YOLO data set)",
        description="Write SUITE as an ultralytics detection data set: images (symlinked or copied), "
                    "YOLO txt labels from the visible boxes (ignore boxes left out), data.yaml with the "
                    "suite's category names in order, and export.json recording where it came from.")
    p.add_argument("suite", metavar="SUITE", type=Path, help="suite folder (from `oddsuite generate`)")
    p.add_argument("--format", choices=["yolo"], default="yolo", help="output format (default yolo)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="data set folder (new or an earlier export)")
    p.add_argument("--images", choices=["full", "all"], default="full",
                   help="full: full-scene images only (default); all: every image, ROI subsets included")
    p.add_argument("--copy", action="store_true", help="copy the images instead of symlinking them")
    p.add_argument("--val-fraction", type=share, default=0.2, metavar="F",
                   help="share of scenes held out for validation (default 0.2; 0: val = train)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from oddsuite.training.yolo_dataset import EXPORT_CARD, export_yolo

    data_yaml = export_yolo(args.suite, args.out, images=args.images, link=not args.copy,
                            val_fraction=args.val_fraction, seed=args.seed)
    counts = json.loads((data_yaml.parent / EXPORT_CARD).read_text())["counts"]
    print(f"exported {counts['images']} images ({counts['train']} train, {counts['val']} val), "
          f"{counts['boxes']} boxes, {counts['ignored']} ignore boxes left out -> {data_yaml}")
    return 0

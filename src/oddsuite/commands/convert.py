"""``oddsuite convert MODEL.pt --out DIR --trust-pickle``: a pickled ultralytics checkpoint as
yaml + safetensors + model.json, the form that loads without unpickling."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a pickled ultralytics checkpoint (.pt) to yaml + safetensors",
        description="Unpickle an ultralytics detection checkpoint once (this runs code from the file: only for "
                    "files you trust, ideally pinned with --sha256) and write DIR/model.yaml, model.safetensors and "
                    "model.json, which every command loads without unpickling (--model DIR). The converted model "
                    "must reproduce the checkpoint's detections on a probe image, or nothing is written.")
    p.add_argument("model", metavar="MODEL.pt", type=Path, help="pickled ultralytics checkpoint (.pt / .pth)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="model folder to write")
    p.add_argument("--sha256", metavar="HEX", default=None, help="expected SHA-256 of MODEL.pt")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling MODEL.pt (required: unpickling runs code from the file)")
    p.add_argument("--name", default=None, help="the model's name in its card (default: the file's stem)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.models import convert_checkpoint, load_detector

    out = convert_checkpoint(args.model, args.out, sha256=args.sha256, trust_pickle=args.trust_pickle,
                             name=args.name)
    det = load_detector(out)
    print(f"{args.model} -> {out}/model.yaml, model.safetensors, model.json")
    print(f"  {det.name}: {len(det.classes)} classes, imgsz {det.info.input_hw[0]}, "
          f"sha256 {det.info.sha256} (pin it: --sha256 {det.info.sha256})")
    return 0

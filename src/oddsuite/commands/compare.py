"""``oddsuite compare SUITE --model A --model B --out DIR``: pre/post consistency of two detectors."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import non_negative_int as _count, positive_int, unit_float


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compare", help="pre/post consistency of two detectors (e.g. fp32 vs int8) on a suite",
        description="Run detectors A and B over SUITE (each evaluated and resumable under DIR/a and DIR/b), then "
                    "write DIR/consistency.json and .csv (detection agreement, outcome flips both ways, score "
                    "drift, mAP of each and the delta, overall and per scene condition), DIR/flips/*.png (the "
                    "images with the most flips, A | B), and, when both are ONNX or exportable, DIR/layers.json "
                    "and layers.png (per-tensor SQNR of B against A along the network).")
    p.add_argument("suite", metavar="SUITE", type=Path, help="suite folder (from `oddsuite generate`)")
    p.add_argument("--model", required=True, action="append", metavar="REF",
                   help="give twice: A (the reference, e.g. fp32) then B (e.g. int8); a model file or folder, "
                        "or package.module:function")
    p.add_argument("--sha256", action="append", default=None, metavar="HEX",
                   help="expected SHA-256 of A, then of B ('-' for none)")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickled .pt models (only files you trust)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder (resumable)")
    p.add_argument("--iou", type=unit_float, default=0.5, help="IoU for matching and ROI outcomes (default 0.5)")
    p.add_argument("--conf", type=unit_float, default=0.25, help="operating score threshold (default 0.25)")
    p.add_argument("--top", type=_count, default=12, help="images with the most flips to draw (default 12)")
    p.add_argument("--layer-images", type=_count, default=4, metavar="N",
                   help="images for the layer-level SQNR (default 4; 0: skip it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layer-image sample (default 0)")
    p.add_argument("--batch", type=positive_int, default=8, help="images per predict call (default 8)")
    p.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime threads (default: its own)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _fmt(x: Any, digits: int = 3) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def summary_lines(r: dict[str, Any]) -> list[str]:
    o = r["overall"]
    ag, fl, dr, mp = o["agreement"], o["flips"], o["score_drift"], o["map"]
    lines = [
        f"  detection agreement   {_fmt(ag['value'])}  ({ag['k']} of {ag['n']} matched)",
        f"  flips hit -> not      {_fmt(fl['hit_to_not']['value'])}  ({fl['hit_to_not']['k']} of {fl['n']} ROIs)",
        f"  flips not -> hit      {_fmt(fl['not_to_hit']['value'])}  ({fl['not_to_hit']['k']} of {fl['n']} ROIs)",
        f"  score drift (B - A)   {_fmt(dr['value'], 4)}  ({dr['n']} pairs)",
        f"  mAP A / B / delta     {_fmt(mp['a']['map'])} / {_fmt(mp['b']['map'])} / {_fmt(mp['delta']['map'], 4)}"
        f"  ({mp['n_images']} images)",
    ]
    lay = r.get("layers") or {}
    if "skipped" in lay:
        lines.append(f"  layers                skipped: {lay['skipped']}")
    else:
        lines.append(f"  layers                output SQNR {_fmt(lay.get('output_sqnr_db'), 1)} dB over "
                     f"{lay['n_tensors']} tensors ({lay['n_quantized']} quantized in B)")
        if lay.get("origins"):
            o = lay["origins"][0]
            where = f"the int8 output of {o['node']}" if o.get("quantized") else o["node"]
            lines.append(f"    error starts at     {where} (SQNR {o['sqnr_db']:.1f} dB; everything before is identical)")
        if lay.get("noisiest_quantized"):
            q = lay["noisiest_quantized"][0]
            lines.append(f"    noisiest int8 tensor {q['tensor']} (its own QDQ SQNR {q['qdq_sqnr_db']:.1f} dB)")
        if lay.get("largest_drops"):
            d = lay["largest_drops"][0]
            lines.append(f"    largest drop        {d['node']} ({d['drop_db']:.1f} dB below its inputs)")
    return lines


def run(args: argparse.Namespace) -> int:
    from oddsuite.errors import UserError
    from oddsuite.studies.compare import compare_models

    if len(args.model) != 2:
        raise UserError(f"--model: give exactly two models (A then B), got {len(args.model)}")
    shas = list(args.sha256 or [])
    if len(shas) > 2:
        raise UserError("--sha256: at most two (A then B)")
    shas = [None if s in (None, "-") else s for s in shas + [None] * (2 - len(shas))]
    r = compare_models(args.suite, args.model[0], args.model[1], args.out, iou=args.iou, conf=args.conf,
                       top=args.top, batch=args.batch, layer_images=args.layer_images, seed=args.seed,
                       sha256_a=shas[0], sha256_b=shas[1], trust_pickle=args.trust_pickle,
                       threads=args.threads, progress=not args.no_progress)
    a, b = r["models"]["a"]["name"], r["models"]["b"]["name"]
    print(f"A {a} vs B {b} on {args.suite}  (iou {args.iou}, conf {args.conf}, {r['suite']['n_images']} images)")
    for line in summary_lines(r):
        print(line)
    print(f"results: {args.out}/consistency.json, consistency.csv, {len(r['top_images'])} flip images"
          + ("" if "skipped" in r["layers"] else ", layers.json, layers.png"))
    return 0

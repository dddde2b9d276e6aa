"""``oddsuite lockstep SUITE --model M [--model M2] --out DIR``: one detector run twice, or on two
backends, compared image by image (bit-identical, first divergence and its size, false-positive
overlap, where divergences cluster)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int, unit_float


def _variant(text: str):
    from oddsuite.studies.variants import parse_variant

    try:
        return parse_variant(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def add_variant_arguments(p: argparse.ArgumentParser, model_help: str, threads_default: int | None) -> None:
    """The options of a study over model variants: --model (repeatable), --out, --threads, --calib,
    --trust-pickle, --no-progress."""
    p.add_argument("suite", metavar="SUITE", type=Path, help="suite folder")
    p.add_argument("--model", required=True, action="append", type=_variant, metavar="PATH[@BACKEND]", help=model_help)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder")
    p.add_argument("--threads", type=positive_int, default=threads_default,
                   help=f"torch and ONNX Runtime intra-op threads (default {threads_default or 'their own'})")
    p.add_argument("--calib", type=positive_int, default=16,
                   help="suite images calibrating the int8 and accelerator variants (default 16)")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickled .pt models (only files you trust)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lockstep", help="run one detector twice or on two backends and compare every image",
        description="Evaluate A and B on SUITE (resumable under DIR/A and DIR/B) and compare them image by image: "
                    "bit-identical predictions, or the first divergence with its size (score and box deltas); the "
                    "overlap of their false-positive sets; the scene conditions where divergences cluster. One "
                    "--model runs the same detector twice. A model may name a backend: PATH@torch, PATH@onnx "
                    "(fp32 ONNX Runtime export), PATH@int8, PATH@accelerator[:RxC] (the simulated array, no faults). "
                    "Writes DIR/lockstep.json, images.csv, lockstep.png.")
    add_variant_arguments(p, "once (run twice) or twice (A then B)", None)
    p.add_argument("--iou", type=unit_float, default=0.5, help="IoU for matching (default 0.5)")
    p.add_argument("--conf", type=unit_float, default=0.25, help="score threshold of a false positive (default 0.25)")
    p.add_argument("--batch", type=positive_int, default=8, help="images per predict call (default 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.errors import UserError
    from oddsuite.studies.lockstep import lockstep
    from oddsuite.studies.variants import build_variant, machine_threads

    if len(args.model) > 2:
        raise UserError("--model: give one (run twice) or two (A and B)")
    specs = args.model if len(args.model) == 2 else args.model * 2
    extra = machine_threads(args.threads)
    dets = [build_variant(s, args.suite, args.out, threads=args.threads, calib_images=args.calib,
                          trust_pickle=args.trust_pickle) for s in specs]
    labels = [s.label for s in specs]
    if labels[0] == labels[1]:
        labels = [f"{labels[0]} (run 1)", f"{labels[1]} (run 2)"]
    r = lockstep(args.suite, dets[0], dets[1], args.out, iou=args.iou, conf=args.conf, batch=args.batch,
                 progress=not args.no_progress, labels=labels, extra=extra)
    d, fp, size = r["diverged"], r["false_positives"], r["size"]
    print(f"A = {labels[0]}, B = {labels[1]} on {r['n_images']} images:")
    print(f"  bit-identical images   {r['identical_images']} of {r['n_images']}"
          + ("  (every prediction identical)" if r["bit_identical"] else f"  (diverged {d['value']:.3f})"))
    if not r["bit_identical"]:
        print(f"  divergence size        |score delta| max {size['max_score_delta']:.3g}, median "
              f"{size['median_score_delta']:.3g}; |box delta| max {size['max_box_delta_px']:.3g} px; "
              f"{size['count_changed_images']} image(s) with another detection count")
        ch = r["changed_at_conf"]
        print(f"  changed at conf {args.conf:<6} {ch['k']} of {ch['n']} images (detections no longer match one to one)")
        top = ([c for c in r["clusters"] if c["above_overall"]] or
               [c for c in r["clusters_at_conf"] if c["above_overall"]])[:3]
        if top:
            print("  divergences cluster at " + "; ".join(f"{c['condition']} ({c['rate']['value']:.2f}, "
                                                          f"n = {c['rate']['n']})" for c in top))
    jac = "undefined" if fp["jaccard"] is None else f"{fp['jaccard']:.3f}"
    print(f"  false positives        A {fp['n_a']}, B {fp['n_b']}, shared {fp['shared']} (Jaccard {jac})")
    ma, mb = r["map"]["A"], r["map"]["B"]
    fmt = lambda x: "undefined" if x is None else f"{x:.4f}"  # noqa: E731
    print(f"  full-scene mAP         A {fmt(ma)}, B {fmt(mb)}")
    print(f"wrote {args.out}/lockstep.json, images.csv, lockstep.png")
    return 0

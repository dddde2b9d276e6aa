"""``oddsuite evaluate SUITE --model PATH --out DIR``: run a detector over a suite and score it."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import add_model_options, positive_int as _positive_int, unit_float as _unit_float


def _class_map(text: str) -> dict[str, str]:
    from oddsuite.evaluate.classes import parse_class_map

    try:
        return parse_class_map(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _conditions(text: str) -> list[Any]:
    from oddsuite.models.conditions import parse_conditions

    try:
        return parse_conditions(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="run a detector over a suite and score it (mAP, context accuracy, ROI influence)",
        description="Run a detector over every image of SUITE (resuming a partial run in --out) and write "
                    "predictions.json, outcomes.parquet, metrics.json and run.json (docs/FORMAT.md).")
    p.add_argument("suite", metavar="SUITE", type=Path, help="suite folder (from `oddsuite generate`)")
    add_model_options(p)
    p.add_argument("--class-map", type=_class_map, default=None, metavar="A=B,...",
                   help="detector class name = suite category name, e.g. person=pedestrian,bicycle=cyclist")
    p.add_argument("--iou", type=_unit_float, default=0.5, help="IoU for ROI outcomes (default 0.5)")
    p.add_argument("--conf", type=_unit_float, default=0.25, help="operating score threshold (default 0.25)")
    p.add_argument("--batch", type=_positive_int, default=8, help="images per predict call (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder (resumable)")
    p.add_argument("--inference", type=_conditions, default=None, metavar="C,...",
                   help="also evaluate under reduced-context inference conditions, each in DIR/inference/<c>/ "
                        "with its context retention against the reference (README, 'Reduced context'): "
                        "reference (the whole frame), scale:F (frame downscaled by F), tiles:CxR[:OVERLAP] "
                        "(tiles merged with sahi, overlap default 0.2), crop:F (centred crop keeping F of each "
                        "side); e.g. reference,scale:0.5,tiles:2x2:0.2,crop:0.6")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where inference runs: in this process / a local pool (with --workers > 1), or Ray; "
                        "work is sharded by scene and merged here (default local)")
    p.add_argument("--workers", type=_positive_int, default=1, help="worker processes or Ray CPUs (default 1)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.set_defaults(func=run)


def _fmt(x: Any, digits: int = 3) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def _ci(fig: dict[str, Any]) -> str:
    ci = fig.get("ci95")
    return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """A short table of the headline figures, each with its count, and what the FP figures count."""
    m = metrics["map"]
    ca = metrics["context_accuracy"]["overall"]
    fp = metrics["context_fp"]
    rpc = metrics["rpc"]
    rows = [
        ("full-scene mAP@[.5:.95]", _fmt(m["full"]["map"]), f"{m['full']['n_images']} images"),
        ("full-scene AP50", _fmt(m["full"]["ap50"]), f"{m['full']['n_gt']} boxes"),
        ("permutation mAP", _fmt(m["permutation"]["map"]), f"{m['permutation']['n_images']} images"),
        ("isolated mAP", _fmt(m["isolated"]["map"]), f"{m['isolated']['n_images']} images"),
        ("rPC (perm / isolated)", _fmt(rpc["value"]), ""),
        ("context accuracy", _fmt(ca["value"]) + _ci(ca),
         f"{ca['n']} ROIs, {ca['n_pairs']} pairs, {ca.get('n_occluded_in_context', 0)} occluded in context"),
        ("context-induced FP / image", _fmt(fp["per_image"]["value"]), f"{fp['n_images']} images"),
    ]
    ffp = metrics.get("full_scene_fp")
    if ffp:
        share = ffp["images_with_fp"]
        rows.append(("full-scene FP / image", _fmt(ffp["per_image"]["value"]),
                     f"{ffp['n_images']} images, {share['k']} with a FP ({_fmt(share['value'])}{_ci(share)})"))
    dropped = metrics.get("dropped_classes")
    if dropped:
        rows.append(("dropped detections", str(dropped["n"]), f"{len(dropped['by_class'])} classes"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"  {a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
    tide = (metrics.get("tide") or {}).get("full") or {}
    if tide.get("ap_base") is not None:
        parts = " ".join(f"{k} {v:.3f}" for k, v in tide["delta_ap"].items() if k not in ("FP", "FN"))
        lines.append(f"  TIDE dAP50, full scenes ({tide['n_images']} images): {parts}")
    lines.append("  FP: score >= conf, overlapping no ground truth or ignore region (IoU >= iou); a wrong-class "
                 "box on a ROI is a mislabel, not a FP. Context-induced: absent from the single-ROI images "
                 "(their detections also from conf).")
    return lines


def reduced_context_lines(metrics: dict[str, Any]) -> list[str]:
    """One row per inference condition: full-scene mAP, context retention with its interval and
    count, FP per full-scene image; nothing when no condition was evaluated."""
    section = metrics.get("reduced_context")
    if not section:
        return []
    rows = [("condition", "mAP (full)", "retention (full scenes)", "n", "FP / image")]
    for c in section["conditions"]:
        ret = (c.get("retention") or {}).get("full")
        fp = (c.get("full_scene_fp") or {}).get("per_image") or {}
        rows.append((c["name"], _fmt((c.get("map_full") or {}).get("map")),
                     "(the reference)" if ret is None else _fmt(ret["value"]) + _ci(ret),
                     "" if ret is None else str(ret["n"]), _fmt(fp.get("value"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["", "  reduced context (retention = P(ROI hit under the condition | hit under the reference)):"]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def run(args: argparse.Namespace) -> int:
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import load_detector
    from oddsuite.run import make_executor

    detector = load_detector(args.model, sha256=args.sha256, trust_pickle=args.trust_pickle, weights=args.weights,
                             model_args=dict(args.model_arg))
    sharded = args.executor == "ray" or args.workers > 1
    options = dict(iou=args.iou, conf=args.conf, batch=args.batch, class_map=args.class_map,
                   progress=not args.no_progress, executor=make_executor(args.executor, args.workers, args.address) if sharded else None)
    if args.inference:
        from oddsuite.studies.reduced_context import evaluate_conditions

        metrics = evaluate_conditions(args.suite, detector, args.out, args.inference, **options)
    else:
        metrics = evaluate_suite(args.suite, detector, args.out, **options)
    print(f"{detector.name} on {args.suite}  (iou {args.iou}, conf {args.conf})")
    for line in summary_lines(metrics) + reduced_context_lines(metrics):
        print(line)
    print(f"results: {args.out}")
    return 0

"""oddsuite generate SPEC --out DIR --scenes N --seed S [--workers W]"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="render a validation suite from an ODD spec",
                       description="Render a validation suite: every scene in full, as ROI permutations, under the "
                                   "spec's environment variants. Re-running the same command resumes.")
    p.add_argument("spec", help="ODD spec (YAML)")
    p.add_argument("--out", required=True, help="suite folder (created; an unfinished one is resumed)")
    p.add_argument("--scenes", type=int, default=None,
                   help="number of scenes (default 20; for a search suite's spec.yaml, its searched scenes)")
    p.add_argument("--seed", type=int, default=0, help="suite seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--plan", choices=["full", "exhaustive", "k-subsets", "ablation", "sampled"],
                   help="ROI permutation plan (default: the spec's)")
    p.add_argument("--modes", help="masking modes, comma-separated: remove,isolate,cutout (default: the spec's)")
    p.add_argument("--renderer", choices=["exact", "composite"],
                   help="remove-mode subsets: exact re-render, or composite (1 + n renders per scene and variant)")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="where scenes run (default local)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.run import make_executor
    from oddsuite.suite import generate_suite
    from oddsuite.suite.progress import ImageBar

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes is not None else None
    if args.scenes is None:
        from oddsuite.odd import load_spec

        spec = load_spec(args.spec)
        args.scenes = len((spec.search or {}).get("points") or ()) if spec.sampler == "search" else 20
    with ImageBar(enabled=not args.no_progress, header=lambda plan: f"{args.spec}: {plan.scenes} scenes -> {args.out}") as bar:
        res = generate_suite(args.spec, args.out, scenes=args.scenes, seed=args.seed, workers=args.workers,
                             plan=args.plan, modes=modes, renderer=args.renderer,
                             executor=make_executor(args.executor, args.workers, args.address),
                             on_start=bar.on_start, on_scene=bar.on_scene, on_image=bar.on_image)
    if res.status == "unchanged":
        print(f"{res.out_dir}: already a finished suite of {res.scenes} scenes ({res.images} images); nothing to do")
        return 0
    extra = {"extended": f" (extended; {res.resumed} scenes kept)",
             "resumed": f" ({res.resumed} scenes kept from an earlier run)"}.get(res.status, "")
    r = res.render
    if r.get("frames"):
        print(f"render: {r['engine']} {r['version']} on {r['device']}, {r['frames']} frames, "
              f"{r['seconds_per_frame']:.3g} s per frame")
    print(f"suite written: {res.out_dir} ({res.scenes} scenes, {res.images} images){extra}")
    return 0

"""oddsuite generate SPEC --out DIR --scenes N --seed S [--workers W]"""
from __future__ import annotations

import argparse

from tqdm import tqdm


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="render a validation suite from an ODD spec",
                       description="Render a validation suite: every scene in full, as ROI permutations, under the "
                                   "spec's environment variants. Re-running the same command resumes.")
    p.add_argument("spec", help="ODD spec (YAML)")
    p.add_argument("--out", required=True, help="suite folder (created; an unfinished one is resumed)")
    p.add_argument("--scenes", type=int, default=20, help="number of scenes (default 20)")
    p.add_argument("--seed", type=int, default=0, help="suite seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--plan", choices=["full", "exhaustive", "k-subsets", "ablation", "sampled"],
                   help="ROI permutation plan (default: the spec's)")
    p.add_argument("--modes", help="masking modes, comma-separated: remove,isolate,cutout (default: the spec's)")
    p.add_argument("--renderer", choices=["exact", "composite"],
                   help="remove-mode subsets: exact re-render, or composite (1 + n renders per scene and variant)")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="where scenes run (default local)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.set_defaults(func=run)


def make_executor(args):
    if getattr(args, "executor", "local") == "ray":
        from oddsuite.run.ray_executor import RayExecutor

        return RayExecutor(workers=args.workers, address=args.address)
    from oddsuite.run import LocalExecutor

    return LocalExecutor(args.workers)


def run(args) -> int:
    from oddsuite.suite import generate_suite

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes is not None else None
    bar: dict = {}

    def on_start(n_scenes: int, n_images: int) -> None:
        print(f"{args.spec}: {n_scenes} scenes, {n_images} images -> {args.out}")
        bar["b"] = tqdm(total=n_images, unit="img", desc="rendering")

    def on_scene(n: int) -> None:
        bar["b"].update(n)

    try:
        res = generate_suite(args.spec, args.out, scenes=args.scenes, seed=args.seed, workers=args.workers,
                             plan=args.plan, modes=modes, renderer=args.renderer, executor=make_executor(args),
                             on_start=on_start, on_scene=on_scene)
    finally:
        if "b" in bar:
            bar["b"].close()
    extra = f" ({res.resumed} scenes kept from an earlier run)" if res.resumed else ""
    print(f"suite written: {res.out_dir} ({res.scenes} scenes, {res.images} images){extra}")
    return 0

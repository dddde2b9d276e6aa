"""``oddsuite search SPEC --model PATH --budget N --out DIR``: a falsification search that
renders where the detector fails, written as an ordinary suite."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from oddsuite.commands._args import non_negative_int as _non_negative, positive_int as _positive_int
from oddsuite.commands._args import add_model_options, share as _share, unit_float as _unit_float


def register(subparsers: Any) -> None:
    from oddsuite.commands.evaluate import _class_map

    p = subparsers.add_parser(
        "search", help="falsification: spend the render budget where the detector fails, as a suite",
        description="Search the spec's ODD for scenes where the detector fails: an optimiser (optuna's Gaussian "
                    "process, TPE or CMA-ES, seeded) proposes scenes, each is rendered as its full scene only and scored, and the "
                    "next proposals go where scores are high. The searched scenes become a suite (their parameters "
                    "in scenes.parquet, the points in spec.yaml); the failing ones (or all, --expand all) get their "
                    "ROI permutations and variants, so evaluate, trace and report work as usual. Rates on such a "
                    "suite describe where the search looked, not the ODD: use generate for ODD-wide rates. "
                    "Re-running the same command resumes and gives the same bytes.")
    p.add_argument("spec", help="ODD spec (YAML)")
    add_model_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--class-map", type=_class_map, default=None, metavar="A=B,...",
                   help="detector class name = spec class name, e.g. person=pedestrian")
    p.add_argument("--budget", type=_positive_int, default=100,
                   help="scenes rendered while searching; each is a scene of the suite (default 100)")
    p.add_argument("--out", required=True, type=Path, help="suite folder (created; an unfinished one is resumed)")
    p.add_argument("--seed", type=_non_negative, default=0, help="suite seed, also the optimiser's (default 0)")
    p.add_argument("--optimizer", choices=["auto", "gp", "tpe", "cmaes"], default="auto",
                   help="gp: Gaussian-process Bayesian optimisation, any dimension; tpe: any dimension, faster for "
                        "large budgets; cmaes: continuous and integer ones (choices at random); auto (default): gp "
                        "up to a budget of 500, tpe above")
    p.add_argument("--batch", type=_positive_int, default=4,
                   help="proposals rendered together on the executor (default 4); part of what the suite is")
    p.add_argument("--startup", type=_non_negative, default=None,
                   help="proposals before the optimiser models the scores: points of a scrambled Sobol sequence "
                        "over every searched coordinate (default: a sixth of the budget rounded down to a power of "
                        "two, at least 8)")
    p.add_argument("--explore", type=_share, default=0.1, metavar="SHARE",
                   help="share of the later proposals that are the Sobol sequence's next points instead of the "
                        "optimiser's, so the search keeps covering the ODD and can find a failing region the startup "
                        "missed (default 0.1; 0: the optimiser only)")
    p.add_argument("--objective", choices=["severity", "failures", "lowest-iou"], default="severity",
                   help="what a scene scores: severity = share of its ROIs missed or mislabelled, ties broken by the "
                        "lowest IoU (default); failures = their number; lowest-iou = 1 - the lowest IoU")
    p.add_argument("--classes", default="", metavar="A,B",
                   help="score only ROIs of these spec classes (default: all)")
    p.add_argument("--conf", type=_unit_float, default=0.25, help="operating score threshold (default 0.25)")
    p.add_argument("--iou", type=_unit_float, default=0.5, help="IoU for ROI outcomes (default 0.5)")
    p.add_argument("--fail-above", type=_unit_float, default=0.0,
                   help="a scene fails when its severity is above this (default 0: any ROI missed or mislabelled)")
    p.add_argument("--expand", choices=["failing", "all"], default="failing",
                   help="which scenes get ROI permutations and variants afterwards (default failing)")
    p.add_argument("--no-placement", action="store_true",
                   help="search the spec's global dimensions only; each object's distance, lateral offset, heading "
                        "and asset family are then drawn from the scene seed as in generate (default: searched too)")
    p.add_argument("--plan", choices=["full", "exhaustive", "k-subsets", "ablation", "sampled"],
                   help="ROI permutation plan of the expanded scenes (default: the spec's)")
    p.add_argument("--modes", help="masking modes, comma-separated: remove,isolate,cutout (default: the spec's)")
    p.add_argument("--renderer", choices=["exact", "composite"], help="remove-mode subsets (as in generate)")
    p.add_argument("--workers", type=_positive_int, default=1, help="render processes or Ray CPUs (default 1)")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="where renders run (default local)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.run import make_executor
    from oddsuite.suite.progress import ImageBar
    from oddsuite.models import load_detector
    from oddsuite.studies.search import SearchOptions, search_suite

    detector = load_detector(args.model, sha256=args.sha256, trust_pickle=args.trust_pickle, class_map=args.class_map,
                             weights=args.weights, model_args=dict(args.model_arg))
    options = SearchOptions(
        budget=args.budget, seed=args.seed, optimizer=args.optimizer, batch=args.batch, startup=args.startup,
        explore=args.explore,
        objective=args.objective, classes=tuple(c.strip() for c in args.classes.split(",") if c.strip()),
        conf=args.conf, iou=args.iou, fail_above=args.fail_above, expand=args.expand,
        placement=not args.no_placement)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes is not None else None
    bars: dict[str, Any] = {}
    best = {"v": None}

    def on_trial(trial, budget: int) -> None:
        if "search" not in bars:
            print(f"{args.spec}: searching {budget} scenes with {options.optimizer_used} for failures of {detector.name}")
            # smoothing=0: the average rate since the start; trials are scored a batch at a time (and a
            # resumed search replays its scored trials at once), which makes the moving rate meaningless
            bars["search"] = tqdm(total=budget, unit="scene", desc="searching", disable=args.no_progress, smoothing=0)
        if best["v"] is None or trial.score.severity > best["v"]:
            best["v"] = trial.score.severity
        bars["search"].set_postfix(best_severity=f"{best['v']:.2f}")
        bars["search"].update(1)

    def on_start(plan) -> None:
        if "search" in bars:
            bars["search"].close()
        bar = bars["render"] = ImageBar(enabled=not args.no_progress,
                                        header=lambda p: f"suite of the searched scenes: {p.scenes} scenes -> {args.out}")
        bar.on_start(plan)

    try:
        res = search_suite(args.spec, args.out, detector, options, workers=args.workers,
                           executor=make_executor(args.executor, args.workers, args.address), plan=args.plan, modes=modes, renderer=args.renderer,
                           on_trial=on_trial, on_start=on_start,
                           on_scene=lambda n: bars["render"].on_scene(n),
                           on_image=lambda n: bars["render"].on_image(n))
    finally:
        for b in bars.values():
            b.close()
    n = len(res.trials)
    if res.replayed:
        print(f"{res.replayed} trial(s) already scored in {args.out / '.state' / 'search'} (an earlier run of this "
              f"search) were replayed, not rendered again")
    if options.n_startup >= options.budget:
        print(f"note: --startup {options.n_startup} >= --budget {options.budget}: every scene is a Sobol point, "
              f"none was chosen by the optimiser")
    top = max(res.trials, key=lambda t: (t.score.objective, -t.scene))
    print(f"searched {n} scenes: {len(res.failing)} failing ({100 * len(res.failing) / n:.0f}%), "
          f"{res.infeasible} proposals pruned for breaking a rule; highest severity {top.score.severity:.2f} "
          f"(scene {top.scene}, {top.score.rois_failed} of {top.score.rois_scored} ROIs)")
    print(f"suite written: {res.out_dir} ({res.suite.scenes} scenes, {res.suite.images} images; "
          f"{len(res.expanded)} expanded with ROI permutations and variants)")
    from oddsuite.metrics.stats import wilson_interval

    unsteered = res.exploring
    if unsteered:
        k = len(set(unsteered) & set(res.failing))
        lo, hi = wilson_interval(k, len(unsteered))
        print(f"of the {len(unsteered)} scenes no score chose (startup and exploration), {k} failed "
              f"({100 * k / len(unsteered):.0f}%, 95% CI {100 * lo:.0f}-{100 * hi:.0f}%): an estimate of the ODD-wide rate")
    print("the suite's rates describe where the search looked, not the ODD: generate a suite for ODD-wide rates")
    return 0

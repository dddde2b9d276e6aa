"""``oddsuite train SPEC --out DIR``: make a detector for an ODD.

Generates a training suite from SPEC (full scenes under the spec's environment variants) with
a suite seed from the training range (disjoint from validation seeds, see
``oddsuite.training.train.training_suite_seed``), exports it as a YOLO data set and trains
yolov8n from its yaml on CPU, offline. DIR ends up loadable by ``load_detector`` /
``oddsuite evaluate --model DIR``::

    DIR/model.yaml  model.safetensors  model.json  train_log/  train_suite/  train_data/
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int as _positive_int
from oddsuite.errors import UserError


def _scenes(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(t.strip()) for t in text.split(","))


def _seed(text: str) -> int:
    from oddsuite.training import MAX_TRAIN_SEED

    try:
        v = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from e
    if not 0 <= v < MAX_TRAIN_SEED:
        raise argparse.ArgumentTypeError(f"--seed must be in [0, 2**32), got {v}")
    return v


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a detector for an ODD on a generated training suite (CPU, offline)",
        description="Generate a training suite from SPEC (seeds disjoint from validation suites), export it "
                    "as a YOLO data set and train a YOLO detector from its yaml. --out is then a model "
                    "directory for `oddsuite evaluate --model`. Re-running resumes the suite generation.")
    p.add_argument("spec", metavar="SPEC", type=Path, nargs="+",
                   help="ODD spec(s) (YAML); several specs train one detector on all of their suites")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (model + its data)")
    p.add_argument("--scenes", type=_scenes, default=(50,), metavar="N[,N...]",
                   help="training scenes to render: one number for every spec, or one per spec (default 50)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="training seed in [0, 2**32): picks the training suite and seeds training (default 0)")
    p.add_argument("--epochs", type=_positive_int, default=30, help="training epochs (default 30)")
    p.add_argument("--imgsz", type=_positive_int, default=640, help="network input size (default 640)")
    p.add_argument("--batch", type=_positive_int, default=8, help="training batch size (default 8)")
    p.add_argument("--arch", default="yolov8n.yaml", help="ultralytics model yaml (default yolov8n.yaml)")
    p.add_argument("--images", choices=["full", "all"], default="full",
                   help="train on full-scene images (default) or on every image incl. ROI subsets")
    p.add_argument("--plan", choices=["full", "exhaustive", "k-subsets", "ablation", "sampled"], default="full",
                   help="ROI permutation plan of the training suite (default full: no permutations)")
    p.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of training scenes held out for ultralytics' validation (default 0.2)")
    p.add_argument("--workers", type=_positive_int, default=1, help="rendering worker processes (default 1)")
    p.set_defaults(func=run)


def command_of(args) -> str:
    """The command line equivalent to ``args`` (for the model card), every option spelled out."""
    import shlex

    opts = [("--out", args.out), ("--scenes", ",".join(str(n) for n in args.scenes)), ("--seed", args.seed),
            ("--epochs", args.epochs),
            ("--imgsz", args.imgsz), ("--batch", args.batch), ("--arch", args.arch), ("--images", args.images),
            ("--plan", args.plan), ("--val-fraction", args.val_fraction), ("--workers", args.workers)]
    words = ["oddsuite", "train", *map(str, args.spec)] + [w for k, v in opts for w in (k, str(v))]
    return " ".join(shlex.quote(w) for w in words)


def run(args) -> int:
    import sys

    from tqdm import tqdm

    from oddsuite.suite.progress import ImageBar
    from oddsuite.training.suite_data import build_training_data, train_on

    specs = list(args.spec)
    if len(args.scenes) not in (1, len(specs)):
        raise UserError(f"--scenes has {len(args.scenes)} numbers for {len(specs)} specs; give one, or one per spec")
    shown: dict[str, ImageBar] = {}

    def on_start(spec: Path, suite_dir: Path, suite_seed: int, plan) -> None:
        shown["p"] = ImageBar(header=lambda plan: f"{spec}: training suite of {plan.scenes} scenes "
                                                  f"(suite seed {suite_seed}) -> {suite_dir}")
        shown["p"].on_start(plan)

    def on_done(spec: Path) -> None:
        if "p" in shown:
            shown.pop("p").close()

    data = build_training_data(specs, args.out, scenes=list(args.scenes) * len(specs) if len(args.scenes) == 1
                               else list(args.scenes), seed=args.seed, plan=args.plan, images=args.images,
                               val_fraction=args.val_fraction, workers=args.workers, on_start=on_start,
                               on_scene=lambda n: shown["p"].on_scene(n),
                               on_image=lambda n: shown["p"].on_image(n), on_done=on_done)
    for n in data.failures.values():
        print(f"warning: {n} scenes failed to render and are left out", file=sys.stderr)
    print(f"data set: {data.data_yaml}; training {args.arch} for {args.epochs} epochs at imgsz {args.imgsz} (CPU)")
    ebar = tqdm(total=args.epochs, unit="epoch", desc="training")

    def on_epoch(epoch: int, epochs: int, metrics: dict) -> None:
        m = metrics.get("metrics/mAP50-95(B)")
        if m is not None:
            ebar.set_postfix_str(f"val mAP {m:.3f}")
        ebar.update(1)

    try:
        train_on(data, args.out, arch=args.arch, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                 seed=args.seed, plan=args.plan, images=args.images, command=command_of(args), on_epoch=on_epoch)
    finally:
        ebar.close()
    print(f"model written: {args.out} (evaluate with: oddsuite evaluate SUITE --model {args.out} --out RESULTS)")
    return 0

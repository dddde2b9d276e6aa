"""``oddsuite train SPEC --out DIR``: make a detector for an ODD.

Generates a training suite from SPEC (full scenes under the spec's environment variants) with
a suite seed from the training range (disjoint from validation seeds, see
``oddsuite.models.train.training_suite_seed``), exports it as a YOLO data set and trains
yolov8n from its yaml on CPU, offline. DIR ends up loadable by ``load_detector`` /
``oddsuite evaluate --model DIR``::

    DIR/model.yaml  model.safetensors  model.json  train_log/  train_suite/  train_data/
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int as _positive_int


def _scenes(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(t.strip()) for t in text.split(","))


def _seed(text: str) -> int:
    from oddsuite.models.train import MAX_TRAIN_SEED

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

    from oddsuite.models.train import train_detector, training_suite_seed
    from oddsuite.models.yolo_dataset import export_yolo
    from oddsuite.commands.generate import SceneProgress
    from oddsuite.suite import generate_suite

    from oddsuite.odd import load_spec
    from oddsuite.odd.spec import BUILTIN_CLASSES

    out: Path = args.out
    specs = list(args.spec)
    if len(args.scenes) not in (1, len(specs)):
        from oddsuite.cli import UserError

        raise UserError(f"--scenes has {len(args.scenes)} numbers for {len(specs)} specs; give one, or one per spec")
    scenes = list(args.scenes) * len(specs) if len(args.scenes) == 1 else list(args.scenes)
    suite_seed = training_suite_seed(args.seed)
    # one class list for all specs: built-in classes in their fixed order, then others as they come
    names: list[str] = []
    for sp in specs:
        names += [n for n in load_spec(sp).class_names if n not in names]
    first = list(names)
    names.sort(key=lambda n: (BUILTIN_CLASSES.index(n) if n in BUILTIN_CLASSES else len(BUILTIN_CLASSES),
                              first.index(n)))
    multi = len(specs) > 1
    train_dirs, val_dirs, suites = [], [], []
    for sp, n_scenes in zip(specs, scenes):
        stem = load_spec(sp).name
        suite_dir = out / "train_suite" / stem if multi else out / "train_suite"
        data_dir = out / "train_data" / stem if multi else out / "train_data"
        line = f"{sp}: training suite of {{}} scenes (suite seed {suite_seed}) -> {suite_dir}"
        with SceneProgress(line.format) as progress:
            res = generate_suite(sp, suite_dir, scenes=n_scenes, seed=suite_seed, workers=args.workers,
                                 plan=args.plan, on_start=progress.on_start, on_scene=progress.on_scene)
        if getattr(res, "failures", None):
            print(f"warning: {len(res.failures)} scenes failed to render and are left out", file=sys.stderr)
        dy = export_yolo(suite_dir, data_dir, images=args.images, link=True, val_fraction=args.val_fraction,
                         seed=args.seed, classes=names if multi else None)
        train_dirs.append(str((data_dir / "images" / "train").resolve()))
        val = data_dir / "images" / "val"
        val_dirs.append(str((val if val.is_dir() else data_dir / "images" / "train").resolve()))
        suites.append({"spec": str(sp), "dir": str(suite_dir), "scenes": n_scenes})
    if multi:
        import yaml

        data_yaml = out / "train_data" / "data.yaml"
        data_yaml.write_text(yaml.safe_dump({"path": str((out / "train_data").resolve()), "train": train_dirs,
                                             "val": val_dirs, "nc": len(names),
                                             "names": dict(enumerate(names))}, sort_keys=False))
    else:
        data_yaml = dy
    print(f"data set: {data_yaml}; training {args.arch} for {args.epochs} epochs at imgsz {args.imgsz} (CPU)")
    ebar = tqdm(total=args.epochs, unit="epoch", desc="training")

    def on_epoch(epoch: int, epochs: int, metrics: dict) -> None:
        m = metrics.get("metrics/mAP50-95(B)")
        if m is not None:
            ebar.set_postfix_str(f"val mAP {m:.3f}")
        ebar.update(1)

    try:
        train_detector(data_yaml, out, arch=args.arch, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                       seed=args.seed, workers=0, name=out.name, command=command_of(args), on_epoch=on_epoch,
                       extra={"training_suite": {"seed": suite_seed, "suites": suites, "plan": args.plan,
                                                 "images": args.images}})
    finally:
        ebar.close()
    print(f"model written: {out} (evaluate with: oddsuite evaluate SUITE --model {out} --out RESULTS)")
    return 0

"""Training determinism of the small detector (seed 000, Fig. 2), measured in one run.

Several trainings of the project's detector on the same training data, compared: the same
seed twice, another seed, and the same seed on another torch thread count (a stand-in for the
seed's "two similar platforms"). Each run fine-tunes the default detector (``models/default``)
for a few epochs when it exists — the same start, differing only in the training's own
randomness (data order, augmentation) — or trains a yolov8n from scratch (``--scratch``).
Then, per pair: weights byte-equal or not (and by how much they differ), full-scene mAP of
each, and the overlap of their false-positive sets on a validation suite
(``oddsuite.studies.determinism``).

    .venv/bin/python benchmarks/determinism.py [--train-suite DIR] [--suite DIR] [--epochs 2]
        [--runs 0,0,1,0:2] [--out DIR]

Without ``--train-suite`` a small training suite is rendered (urban_day, 8 scenes, the
training seed range, full scenes only); without ``--suite`` a small validation suite
(urban_day, 4 scenes, seed 1, full scenes only). Rendering takes a few minutes; each run
trains a few minutes on one CPU.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "default"


def _runs(text: str) -> list[dict]:
    out = []
    for part in text.split(","):
        seed, _, threads = part.partition(":")
        out.append({"seed": int(seed), **({"threads": int(threads)} if threads else {})})
    return out


def _suite(path: Path | None, work: Path, name: str, scenes: int, seed: int) -> Path:
    if path is not None:
        return path
    from oddsuite.suite import generate_suite

    out = work / name
    print(f"rendering {name}: urban_day, {scenes} scenes, seed {seed}, full scenes only ...", flush=True)
    t = time.time()
    generate_suite(ROOT / "odd_specs" / "urban_day.yaml", out, scenes=scenes, seed=seed, workers=1, plan="full")
    print(f"  {time.time() - t:.0f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-suite", type=Path, default=None, help="training suite (default: render a small one)")
    ap.add_argument("--suite", type=Path, default=None, help="validation suite (default: render a small one)")
    ap.add_argument("--runs", type=_runs, default=_runs("0,0,1,0:2"),
                    help="seed[:threads] per run, comma-separated (default 0,0,1,0:2)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run (default 2)")
    ap.add_argument("--imgsz", type=int, default=320, help="training image size (default 320)")
    ap.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of runs that do not name theirs (default 1)")
    ap.add_argument("--conf", type=float, default=0.25, help="score of a false positive (default 0.25)")
    ap.add_argument("--scratch", action="store_true", help="train yolov8n from scratch instead of fine-tuning")
    ap.add_argument("--lr0", type=float, default=1e-4, help="fine-tuning learning rate (default 1e-4)")
    ap.add_argument("--out", type=Path, default=None, help="keep everything here (default: temp)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from oddsuite.models import load_detector
    from oddsuite.training import export_yolo
    from oddsuite.training.train import training_suite_seed
    from oddsuite.studies.determinism import training_determinism

    init = None if args.scratch or not (DEFAULT_MODEL / "model.json").is_file() else DEFAULT_MODEL
    with tempfile.TemporaryDirectory(prefix="oddsuite-bench-det.") as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train = _suite(args.train_suite, work, "train_suite", 8, training_suite_seed(0))
        suite = _suite(args.suite, work, "val_suite", 4, 1)
        classes = None
        if init is not None:
            det = load_detector(init)
            classes = [det.classes[k] for k in sorted(det.classes)]
        data = export_yolo(train, work / "data", images="all", val_fraction=0.25, classes=classes)
        what = f"fine-tuning {init}" if init is not None else "yolov8n from scratch"
        print(f"{len(args.runs)} runs ({what}), {args.epochs} epoch(s), imgsz {args.imgsz}, batch {args.batch}; "
              f"runs {args.runs}", flush=True)
        t = time.time()
        # fine-tuning: one optimizer step per batch (nbs = batch; ultralytics' default accumulates 64
        # images, which on a small training set leaves the first epoch without a step, and its best
        # epoch would then be the starting weights) and a gentle learning rate
        train_args = {"nbs": args.batch, "lr0": args.lr0} if init is not None else {}
        r = training_determinism(data, suite, work / "determinism", runs=args.runs, epochs=args.epochs,
                                 imgsz=args.imgsz, batch=args.batch, conf=args.conf, init=init,
                                 train_args=train_args)
        print(f"  {time.time() - t:.0f} s\n")
        for run in r["runs"]:
            m = run["full_scene_map"]
            same = "  (= the starting weights)" if run.get("same_as_init") else ""
            print(f"{run['name']:<22} sha256 {run['sha256'][:12]}  full-scene mAP "
                  f"{'n/a' if m is None else f'{m:.4f}'}  TP {run['scores']['tp']['n']}  FP {run['scores']['fp']['n']}{same}")
        print()
        for p in r["pairs"]:
            w, fp = p["weights"], p["false_positives"]
            jac = "undefined" if fp["jaccard"] is None else f"{fp['jaccard']:.3f}"
            dm = "n/a" if p["map_delta"] is None else f"{p['map_delta']:+.4f}"
            same = "byte-equal" if w["bytes_equal"] else (
                f"differ in {w['tensors_differ']} of {w['n_tensors']} tensors (max |diff| {w['max_abs_diff']:.3g})")
            print(f"{p['a']} vs {p['b']} ({p['relation']}): weights {same}; mAP delta {dm}; "
                  f"FP A {fp['n_a']}, B {fp['n_b']}, shared {fp['shared']} (Jaccard {jac})")
        if args.out:
            print(f"\nkept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``oddsuite faults SUITE --model PATH --out DIR``: a detector on the simulated faulty accelerator.

Stuck-at sweep::

    oddsuite faults SUITE --model PATH --array 256x256 --faulty-pes 0,1,4,16 --fault stuck-at \\
        --mitigation none,fap --maps 5 --seed 0 --out DIR

FAP+T (fine-tuning with the FAP mask fixed, one model per fault map, cached under DIR/fapt/)
needs a training data set, e.g. ``oddsuite export TRAIN_SUITE --format yolo --out DATA`` of a
*training* suite::

    oddsuite faults SUITE --model PATH --mitigation none,fap,fap+t --train-data DATA/data.yaml \
        --ft-epochs 3 --out DIR

``--requant saturate|wrap|none`` chooses how each layer's input is requantised (default
``saturate``, a deployed int8 pipeline; ``none`` is the seed's fixed-point arithmetic, in which
a corrupted accumulator reaches the next layer unclipped); results.json records it with the
stuck-at finding (``findings.few_faults_collapse``; null when no stuck-at point ran).

Timing-error sweep::

    oddsuite faults SUITE --model PATH --fault timing --error-rate 1e-6,1e-5 --mitigation none,te-drop --out DIR

``SUITE`` may be the literal ``mlp-digits``: the seed's own experiment (an 8-bit
784x256x256x256x10 MLP on scikit-learn's digits, no suite or model needed; its FAP+T trains
on the digits themselves).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int as _positive_int
from oddsuite.errors import UserError

MLP_SUITE = "mlp-digits"


def _int_list(text: str) -> list[int]:
    try:
        out = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not out or any(v < 0 for v in out):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return out


def _float_list(text: str) -> list[float]:
    try:
        out = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e
    if not out or any(not 0.0 <= v <= 1.0 for v in out):
        raise argparse.ArgumentTypeError(f"expected comma-separated probabilities in [0, 1], got {text!r}")
    return out


def _str_list(text: str) -> list[str]:
    out = [v.strip().lower() for v in str(text).split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return out


def _bits(text: str) -> list[int]:
    """``16-31`` or ``0,7,31``."""
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-"))
            out = list(range(a, b + 1))
        else:
            out = [int(v) for v in text.split(",")]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected bits like 16-31 or 0,7,31, got {text!r}") from e
    if not out or any(not 0 <= b <= 31 for b in out):
        raise argparse.ArgumentTypeError(f"bits must be in 0..31, got {text!r}")
    return out


def _array(text: str):
    from oddsuite.accelerator import SystolicArray

    try:
        return SystolicArray.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "faults", help="score a detector on a simulated int8 systolic array with stuck-at or timing faults",
        description="Run a detector with every Conv2d/Linear on a simulated weight-stationary int8 systolic "
                    "array with seeded stuck-at faults (no mitigation, FAP, or FAP+T: fine-tuned on --train-data "
                    "with the FAP mask fixed, one model per fault map) or timing errors (propagated or TE-Drop), "
                    "and score each point on SUITE. SUITE 'mlp-digits' runs the seed's MLP experiment instead. "
                    "Writes results.json, results.csv, a plot, the fault maps and the FAP+T models (fapt/).")
    p.add_argument("suite", metavar="SUITE", help=f"suite folder, or '{MLP_SUITE}' for the built-in MLP experiment")
    p.add_argument("--model", type=Path, metavar="PATH", help="detector model (local path; torch-backed, e.g. ultralytics)")
    p.add_argument("--sha256", metavar="HEX", default=None, help="expected SHA-256 of the model file")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickled checkpoints (only files you trust)")
    p.add_argument("--array", type=_array, default="256x256", metavar="RxC", help="PE array size (default 256x256)")
    p.add_argument("--fault", choices=("stuck-at", "timing"), default="stuck-at", help="fault model (default stuck-at)")
    p.add_argument("--faulty-pes", type=_int_list, default=None, metavar="N,...",
                   help="numbers of faulty PEs (stuck-at; default 0,1,4,16)")
    p.add_argument("--bits", type=_bits, default=None, metavar="A-B|b,...",
                   help="bits the stuck-at faults are drawn from (default all 32)")
    p.add_argument("--error-rate", type=_float_list, default=None, metavar="P,...",
                   help="per-MAC timing error probabilities (timing; default 1e-6,1e-5)")
    p.add_argument("--requant", choices=("saturate", "wrap", "none"), default="saturate",
                   help="requantisation of each layer's input: saturate to int8 (a deployed int8 pipeline), wrap, "
                        "or none (the seed's fixed-point carry: a corrupted accumulator reaches the next layer "
                        "unclipped) (default saturate)")
    p.add_argument("--keep-bits", type=int, default=16,
                   help="timing error propagation: low bits of a failing MAC's result that survive (default 16)")
    p.add_argument("--mitigation", type=_str_list, default=None, metavar="M,...",
                   help="stuck-at: none,fap,fap+t (fap+t on a detector needs --train-data); timing: none,te-drop "
                        "(default: none,fap or none,te-drop)")
    p.add_argument("--train-data", type=Path, default=None, metavar="DATA.yaml",
                   help="fap+t: ultralytics data set to fine-tune on, with the detector's classes (e.g. from "
                        "'oddsuite export TRAIN_SUITE --format yolo --out DIR' of a training suite, not SUITE)")
    p.add_argument("--ft-epochs", type=_positive_int, default=3, help="fap+t: fine-tuning epochs per fault map (default 3)")
    p.add_argument("--ft-imgsz", type=_positive_int, default=None,
                   help="fap+t: fine-tuning image size (default: the model's)")
    p.add_argument("--ft-batch", type=_positive_int, default=8, help="fap+t: fine-tuning batch size (default 8)")
    p.add_argument("--maps", type=_positive_int, default=5, help="seeded fault maps per point (default 5)")
    p.add_argument("--seed", type=int, default=0, help="experiment seed (default 0)")
    p.add_argument("--calib", type=_positive_int, default=16, help="suite images for int8 calibration (default 16)")
    p.add_argument("--batch", type=_positive_int, default=8, help="images per predict call (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where sweep points run: this process / a local pool (--workers > 1), or Ray (default local)")
    p.add_argument("--workers", type=_positive_int, default=1, help="worker processes or Ray CPUs (default 1)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.suite == MLP_SUITE:
        return _run_mlp(args)
    from oddsuite.run import make_executor
    from oddsuite.studies.fault_sweep import SweepSpec, sweep_model
    from oddsuite.training.yolo_dataset import exported_from

    if args.model is None:
        raise UserError("--model is required (or use SUITE = mlp-digits for the built-in MLP experiment)")
    spec = SweepSpec.for_fault(args.fault, faulty_pes=args.faulty_pes, error_rates=args.error_rate,
                               mitigations=args.mitigation, train_data=args.train_data, maps=args.maps,
                               seed=args.seed, bits=args.bits, keep_bits=args.keep_bits, batch=args.batch,
                               ft_epochs=args.ft_epochs, ft_imgsz=args.ft_imgsz, ft_batch=args.ft_batch,
                               requant=args.requant)
    if args.train_data is not None and not spec.fine_tunes:
        print("note: --train-data is used only by --mitigation fap+t (stuck-at); ignored", file=sys.stderr)
    try:
        spec.validate(args.array)
    except ValueError as e:
        raise UserError(str(e)) from None
    if spec.train_data is not None:
        for why in exported_from(spec.train_data, args.suite):
            print(f"warning: --train-data {args.train_data} {why}: FAP+T would be fine-tuned on the suite it is "
                  "scored on; export a separate training suite", file=sys.stderr)
    sharded = args.executor == "ray" or args.workers > 1
    res = sweep_model(Path(args.suite), args.model, args.out, args.array, spec, sha256=args.sha256,
                      trust_pickle=args.trust_pickle, calib=args.calib, progress=not args.no_progress,
                      executor=make_executor(args.executor, args.workers, args.address) if sharded else None)
    key = "faulty_pes" if spec.fault == "stuck-at" else "rate"
    print(f"{res['detector']} on {res['array']} ({spec.fault}, requantisation {res['requant']}): full-scene mAP@[.5:.95]")
    for r in res["summary"]:
        print(f"  {key} {r[key]:<8g} {r['mitigation']:<8} median {r['median']:.4f} [{r['min']:.4f}, {r['max']:.4f}] "
              f"over {r['n']} run(s)")
    f = res["findings"]
    collapse = f["few_faults_collapse"]
    first = f["none_collapse_at_faulty_pes"]
    print(f"few-faults collapse (median at or below {_fmt(f['collapse_threshold'])} with <= 64 faulty PEs): "
          + ("not measured (no stuck-at point with 1 to 64 faulty PEs ran)" if collapse is None else
             ("yes" if collapse else "no")
             + (f" (first at {first} faulty PEs)" if first is not None else " (none in the measured range)")))
    fapt_note = ""
    if "fapt" in res:
        fapt_note = (f", fapt/ ({len(res['fapt']['models'])} fine-tuned model(s), "
                     f"{res['fapt']['fine_tuned_now']} trained now)")
    print(f"wrote {args.out}/results.json, results.csv, faults.png, maps/, points/{fapt_note}")
    return 0


def _fmt(x) -> str:
    return "undefined" if x is None else f"{x:.4f}"


def print_findings(findings: dict) -> None:
    """The seed's findings (``studies.mlp_experiment.findings``), one per line: a number to
    4 significant digits, yes/no, a per-point mapping as ``point=value``. A null in results.json reads
    ``not measured`` (the sweep did not run what the finding needs), except where it means
    that nothing was found in what was measured: no fault count collapsed, no rate lost 5
    points (``none in the measured range``)."""
    def text(v, inner: bool = False) -> str:
        if v is None:
            return "none in the measured range" if inner else "not measured"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, dict):
            return ", ".join(f"{k}={text(x, True)}" for k, x in v.items()) or "none"
        return str(v)

    measured_collapse = bool(findings.get("median_by_faulty_pes"))
    print("findings:")
    width = max((len(k) for k in findings), default=0)
    for k, v in findings.items():
        inner = k == "none_collapse_at_faulty_pes" and measured_collapse
        print(f"  {k:<{width}}  {text(v, inner)}")


def _run_mlp(args: argparse.Namespace) -> int:
    from oddsuite.studies.mlp_experiment import mlp_config, run_mlp_experiment

    default_mit = ["none", "fap"] if args.fault == "stuck-at" else ["none", "te-drop"]
    try:
        cfg = mlp_config(args.fault, args.array.rows, args.array.cols,
                         faulty_pes=args.faulty_pes if args.faulty_pes is not None else [0, 1, 4, 16],
                         mitigations=args.mitigation or default_mit,
                         rates=args.error_rate if args.error_rate is not None else [1e-6, 1e-5],
                         maps=args.maps, seed=args.seed, keep_bits=args.keep_bits, bits=args.bits,
                         requant=args.requant)
    except ValueError as e:
        raise UserError(str(e)) from None
    res = run_mlp_experiment(args.out, cfg, progress=not args.no_progress)
    print(f"MLP on digits: float {res['model']['float_accuracy']:.4f}, int8 {res['model']['int8_accuracy']:.4f} "
          f"on {res['array']}, requantisation {res['requant']}")
    for r in res["stuck_at_summary"]:
        print(f"  {r['faulty_pes']:>6} faulty PEs  {r['mitigation']:<6} accuracy median {r['median']:.4f} "
              f"[{r['min']:.4f}, {r['max']:.4f}] over {r['n']} maps")
    for r in res["timing_summary"]:
        print(f"  rate {r['rate']:<8g} {r['mode']:<9} accuracy median {r['median']:.4f} [{r['min']:.4f}, {r['max']:.4f}]")
    print_findings(res["findings"])
    print(f"wrote {args.out}/results.json, stuck_at.csv, timing.csv, mlp_faults.png")
    return 0

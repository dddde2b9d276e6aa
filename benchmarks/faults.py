"""Simulated accelerator cost: a run with 64 faulty PEs against a clean simulated run, and the
clean simulated run against fp32 inference, on realistic layer sets, measured side by side.

Layer sets: the seed's MLP (784x256x256x256x10, a batch of 1797 inputs) and a yolov8n at
320 px (batch 1 and 4), both on a 256x256 array. Rounds interleave fp32, clean and faulty
runs; the figures are medians over rounds (times) and the median of the per-round ratios.
The faulty run replays only the faulty columns (spec: aim <= 1.5x a clean run). With one
thread the clock is the process CPU time (wall time with ``--wall`` or more threads), so
that other work on a shared machine does not distort the ratios.

    .venv/bin/python benchmarks/faults.py [--rounds 7] [--threads 1] [--faulty 64]
    .venv/bin/python benchmarks/faults.py --mlp-experiment OUT   # the full seed experiment

Offline: yolov8n is built from its yaml with random weights; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _bench(name, fp32, clean, faulty, rounds, clock):
    tf, tc, tq, r_fc, r_cf = [], [], [], [], []
    for f in (fp32, clean, faulty):  # warm-up (plans, allocator)
        f()
    for _ in range(rounds):
        t = clock(); fp32(); a = clock() - t
        t = clock(); clean(); b = clock() - t
        t = clock(); faulty(); c = clock() - t
        tf.append(a); tc.append(b); tq.append(c)
        r_fc.append(c / b); r_cf.append(b / a)
    med = statistics.median
    print(f"{name:<34} fp32 {med(tf) * 1e3:8.1f} ms | clean sim {med(tc) * 1e3:8.1f} ms | "
          f"faulty sim {med(tq) * 1e3:8.1f} ms | faulty/clean {med(r_fc):.2f}x | clean/fp32 {med(r_cf):.2f}x")
    return {"fp32_ms": med(tf) * 1e3, "clean_ms": med(tc) * 1e3, "faulty_ms": med(tq) * 1e3,
            "faulty_over_clean": med(r_fc), "clean_over_fp32": med(r_cf)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steadier on a shared machine)")
    ap.add_argument("--faulty", type=int, default=64, help="faulty PEs of the faulty run (default 64)")
    ap.add_argument("--seed", type=int, default=1, help="fault map seed")
    ap.add_argument("--skip-yolo", action="store_true", help="only the MLP")
    ap.add_argument("--wall", action="store_true",
                    help="time wall clock (default with one thread: process CPU time, which a shared machine "
                         "does not inflate)")
    ap.add_argument("--mlp-experiment", metavar="OUT", default=None,
                    help="instead, run the seed's MLP experiment (accuracy vs faults) and write it to OUT")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from oddsuite.accelerator import FaultMap, SystolicArray, accelerate, accelerator_of
    from oddsuite.studies.mlp_experiment import make_mlp, run_mlp_experiment

    if args.mlp_experiment:
        res = run_mlp_experiment(args.mlp_experiment, progress=True)
        print(f"float {res['model']['float_accuracy']:.4f}  int8 {res['model']['int8_accuracy']:.4f}  "
              f"({res['seconds']:.0f} s)")
        for r in res["stuck_at_summary"]:
            print(f"{r['faulty_pes']:>6} PEs {r['mitigation']:<6} median {r['median']:.4f} [{r['min']:.4f}, {r['max']:.4f}]")
        for r in res["timing_summary"]:
            print(f"rate {r['rate']:<8g} {r['mode']:<9} median {r['median']:.4f} [{r['min']:.4f}, {r['max']:.4f}]")
        print("findings:", res["findings"])
        return 0

    clock = time.perf_counter if (args.wall or args.threads != 1) else time.process_time
    array = SystolicArray(256, 256)
    fm = FaultMap.random(256, 256, args.faulty, seed=args.seed)
    print(f"256x256 array, {args.faulty} faulty PEs (stuck-at, uniform bits), torch threads {args.threads}, "
          f"{args.rounds} rounds, {'wall' if clock is time.perf_counter else 'CPU'} time")
    results = {}

    def sims(model, x):
        q = accelerate(model, array)
        acc = accelerator_of(q)
        acc.calibrate(lambda: q(x))
        qf = accelerate(model, array)
        accf = accelerator_of(qf)
        for a, b in zip(acc.layers, accf.layers):
            b.x_amax.copy_(a.x_amax)
        accf.calibrated = True
        accf.configure(fm)
        return q, qf, accf

    with torch.inference_mode():
        mlp = make_mlp().eval()
        x = torch.rand(1797, 784)
        q, qf, accf = sims(mlp, x)
        results["mlp"] = _bench("MLP 784-256-256-256-10, 1797 rows", lambda: mlp(x), lambda: q(x), lambda: qf(x),
                                args.rounds, clock)
        print(f"{'':<34} replayed output columns per faulty run: {accf.stats.replayed_columns // max(1, args.rounds + 1)}")
        if not args.skip_yolo:
            os.environ.setdefault("YOLO_OFFLINE", "1")
            try:
                from oddsuite.models._ultra import ultralytics_offline

                ultralytics_offline()
            except ImportError:
                pass
            from ultralytics import YOLO

            import copy

            yolo = YOLO("yolov8n.yaml").model.eval()
            fused = copy.deepcopy(yolo).fuse(verbose=False)  # fp32 with BN folded, as the simulator runs it
            for b in (1, 4):
                xi = torch.rand(b, 3, 320, 320)
                q, qf, _ = sims(yolo, xi)
                results[f"yolov8n_b{b}"] = _bench(f"yolov8n 320px, batch {b}", lambda: fused(xi), lambda: q(xi),
                                                  lambda: qf(xi), args.rounds, clock)
    ok = all(r["faulty_over_clean"] <= 1.5 for r in results.values())
    print(f"faulty/clean <= 1.5x on every layer set: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

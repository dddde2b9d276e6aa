"""``oddsuite latency SUITE --model M[@BACKEND] ... --runs N --out DIR``: the latency distribution
per image of model variants over many runs (timing integrity)."""
from __future__ import annotations

import argparse
from typing import Any

from oddsuite.commands._args import non_negative_int, positive_int
from oddsuite.commands.lockstep import add_variant_arguments


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "latency", help="latency distribution per image of model variants over many runs",
        description="Time every model variant on a seeded sample of SUITE's images, batch 1, end to end, over "
                    "--runs rounds (variants interleaved): best, median, p99, worst, histogram and a stability "
                    "verdict per variant, with the machine and thread counts. A model may name a backend: "
                    "PATH@torch, PATH@onnx, PATH@int8, PATH@accelerator[:RxC]. Writes DIR/latency.json, "
                    "samples.csv, latency.png.")
    add_variant_arguments(p, "a model variant (repeat for several)", 1)
    p.add_argument("--runs", type=positive_int, default=30, help="timed rounds over the images (default 30)")
    p.add_argument("--images", type=positive_int, default=8, help="suite images timed (default 8)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed calls per image first (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image sample (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.studies.latency import latency_distribution
    from oddsuite.studies.variants import build_variant, machine_threads

    machine_threads(args.threads)
    dets = [build_variant(s, args.suite, args.out, threads=args.threads, calib_images=args.calib,
                          trust_pickle=args.trust_pickle) for s in args.model]
    r = latency_distribution(args.suite, dets, args.out, labels=[s.label for s in args.model], runs=args.runs,
                             images=args.images, seed=args.seed, warmup=args.warmup, threads=args.threads,
                             progress=not args.no_progress)
    m = r["machine"]
    print(f"{m['cpu']} ({m['usable_cpus']} usable CPUs, load {m['loadavg']}), threads {args.threads}; "
          f"{r['settings']['runs']} runs x {r['settings']['images']} images, batch 1:")
    for v in r["variants"]:
        print(f"  {v['label']:<32} best {v['best_ms']:8.2f}  median {v['median_ms']:8.2f}  p99 {v['p99_ms']:8.2f}  "
              f"worst {v['worst_ms']:8.2f} ms  p99/median {v['p99_over_median']:.2f} ({v['stability']}); "
              f"first call {v['cold_first_call_ms']:.1f} ms")
    print(f"wrote {args.out}/latency.json, samples.csv, latency.png")
    return 0

"""int8 against fp32 on this CPU: latency (ONNX Runtime) and behaviour (mAP delta, §6 consistency).

The default detector (``models/default``, a model directory ``load_detector`` reads) when it
exists, otherwise a small stand-in: a random-weight yolov8n made input-dependent
(``lively_random_model``), whose mAP means nothing (it is said so in the output). The model is
exported to fp32 ONNX if it is not ONNX already and quantized with ``oddsuite.quant.quantize``
(static, QDQ, per-channel int8 weights, uint8 activations, calibrated on a seeded sample of the
suite) by each recipe of ``--recipes`` (``RECIPES``; default ``deploy,percentile,reduced,previous``):
``deploy`` (the defaults: min-max calibration, the head's convolutions quantized and only its
decoding tail and the stem float, the weights' range chosen for this CPU: 8-bit with VNNI or
AMX-INT8, 7-bit on x86 without), ``full-range`` and ``reduced`` (the same with 8-bit or 7-bit
weights whatever the CPU), ``percentile`` (the 99.999th percentile calibration: the default
before 2026-12-02), ``stem-int8`` (7-bit, the stem quantized: the default before then, but
calibrated as ``deploy``),
``silu-float`` (SiLU left float), ``shared-concat`` (Concat scales shared where that widens a
range at most 1.5x) and ``previous`` (min-max calibration, the whole head float,
8-bit weights: what oddsuite did first). Goal:
fp32 / int8 >= 2.5x at |delta mAP| <= 0.01 for every calibration sample of ``--calib-seeds``
(default three): the delta moves with the images that calibrate (on the default detector with
32 images, from -0.001 to -0.012 for one recipe), so one draw would be a lucky or unlucky
number; the worst
and the mean are printed beside the ratio. Then, per recipe:

- latency: both models in ONNX Runtime with the same SessionOptions (same threads, full graph
  optimisation), batch 1, real pre-processed suite images, measured side by side in one run,
  calls interleaved (fp32, int8, int8, fp32, ...), median and 10th/90th percentiles of the
  calls, and the ratio fp32 / int8 of the medians (> 1: int8 is faster);
- behaviour, once per calibration seed: ``oddsuite.studies.compare.compare_models`` on the
  suite: mAP of each and the delta,
  detection agreement, flips, score drift, and where the layer-level SQNR says error enters;
- with ``--profile``: where the time goes, from ONNX Runtime's profiler (time per operator
  type, both models, same options), and the CPU's int8 instruction sets: without VNNI
  (AVX-512 VNNI, AVX-VNNI) or AMX-INT8, ONNX Runtime's u8s8 convolutions use AVX2
  ``VPMADDUBSW``, which bounds their speed-up over fp32 to about 1.5x.

    .venv/bin/python benchmarks/quantize.py [--suite SUITE] [--calib SUITE] [--model M] [--threads 1]
        [--calls 30] [--calib-seeds 0,1,2] [--profile]

Without ``--suite`` a small suite is generated first (odd_specs/urban_day.yaml, 2 scenes,
seed 1: a few minutes of rendering). Calibrating on the suite that is also scored is what
this quick check does; for evidence, calibrate on another suite (``--calib``).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "default"


def _session_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


def _session(path: Path, threads: int):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=_session_options(threads), providers=["CPUExecutionProvider"])


def latency(fp32: Path, int8: Path, batches: list[np.ndarray], threads: int, calls: int, warmup: int = 3) -> dict:
    sessions = {"fp32": _session(fp32, threads), "int8": _session(int8, threads)}
    name = {k: s.get_inputs()[0].name for k, s in sessions.items()}
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for k, s in sessions.items():
        for i in range(warmup):
            s.run(None, {name[k]: batches[i % len(batches)]})
    for i in range(calls):
        order = ("fp32", "int8") if i % 2 == 0 else ("int8", "fp32")
        x = batches[i % len(batches)]
        for k in order:
            t = time.perf_counter()
            sessions[k].run(None, {name[k]: x})
            times[k].append(time.perf_counter() - t)
    out = {}
    for k, ts in times.items():
        q = np.percentile(ts, [10, 50, 90]) * 1000
        out[k] = {"median_ms": float(q[1]), "p10_ms": float(q[0]), "p90_ms": float(q[2]), "n": len(ts)}
    out["ratio_fp32_over_int8"] = out["fp32"]["median_ms"] / out["int8"]["median_ms"]
    paired = [a / b for a, b in zip(times["fp32"], times["int8"])]
    out["paired_ratio_median"] = float(statistics.median(paired))
    return out


def _fmt(x, d=3):
    return "n/a" if x is None else f"{x:.{d}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=None, help="suite to score on (default: generate a small one)")
    ap.add_argument("--calib", type=Path, default=None, help="suite to calibrate on (default: --suite)")
    ap.add_argument("--model", type=Path, default=None,
                    help=f"model (default: {DEFAULT_MODEL} if it exists, else a small random yolov8n)")
    ap.add_argument("--imgsz", type=int, default=640, help="input size of the stand-in model (default 640)")
    ap.add_argument("--calib-images", type=int, default=64,
                    help="calibration images (default 64, as oddsuite quantize)")
    ap.add_argument("--calib-seeds", default="0,1,2",
                    help="comma-separated seeds of the calibration sample (default 0,1,2): each recipe is "
                         "quantized once per seed and scored each time, because the mAP delta depends on "
                         "which images calibrate; latency is measured on the first seed's model")
    ap.add_argument("--recipes", default="deploy,percentile,reduced,previous",
                    help=f"comma-separated, of {', '.join(RECIPES)} (default deploy,percentile,reduced,previous; "
                         f"deploy is oddsuite's defaults, the others are what RECIPES says they change)")
    ap.add_argument("--profile", action="store_true", help="also break the time down by operator type")
    ap.add_argument("--threads", type=int, default=1,
                    help="ONNX Runtime intra-op threads for both models (default 1: the machine is shared)")
    ap.add_argument("--calls", type=int, default=30, help="timed calls per model (default 30)")
    ap.add_argument("--out", type=Path, default=None, help="keep the models and comparison here (default: temp)")
    args = ap.parse_args(argv)

    from oddsuite.models import load_detector
    from oddsuite.models.common import preprocess
    from oddsuite.quant.quantize import calibration_sample, float_onnx
    from oddsuite.suite import read_image as load_rgb

    with tempfile.TemporaryDirectory(prefix="oddsuite-bench-q.") as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        suite = args.suite
        if suite is None:
            from oddsuite.suite import generate_suite

            suite = work / "suite"
            print(f"generating a small suite (urban_day, 2 scenes, seed 1) in {suite} ...", flush=True)
            t = time.time()
            generate_suite(ROOT / "odd_specs" / "urban_day.yaml", suite, scenes=2, seed=1, workers=1)
            print(f"  {time.time() - t:.0f} s", flush=True)
        calib = args.calib or suite
        gt = json.loads((suite / "annotations.json").read_text())

        model = args.model
        default_ready = DEFAULT_MODEL.is_dir() and any(
            (DEFAULT_MODEL / f).is_file() for f in ("model.safetensors", "model.onnx", "model.json"))
        if model is None and default_ready:
            model = DEFAULT_MODEL
        if model is not None:
            what = f"model: {model}" + (" (the default detector)" if model == DEFAULT_MODEL else "")
        else:
            from oddsuite.models import save_model_dir
            from oddsuite.training.toy import lively_random_model

            names = {i: str(c["name"]) for i, c in enumerate(gt["categories"])}
            imgs = [load_rgb(suite / s["file_name"]) for s in calibration_sample(suite, 8, seed=99)]
            m = lively_random_model(nc=len(names), images=imgs, imgsz=args.imgsz, seed=0)
            model = save_model_dir(m, work / "standin", names, args.imgsz, name="yolov8n-random")
            what = (f"model: a small stand-in (random-weight yolov8n, imgsz {args.imgsz}, the suite's "
                    f"{len(names)} classes) because {DEFAULT_MODEL} "
                    f"{'holds no model yet' if DEFAULT_MODEL.exists() else 'does not exist'}; its mAP means nothing, "
                    "the latency and the layer SQNR do")
        print(what, flush=True)

        src = float_onnx(model, work)
        fp32 = src.onnx_path
        det = load_detector(fp32)
        picks = calibration_sample(suite, 8, seed=7)
        batches = [preprocess([load_rgb(suite / s["file_name"])], det.input_hw)[0] for s in picks]
        print(f"CPU: {_cpu()}", flush=True)
        rows = []
        for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
            rows.append(_run_recipe(recipe, fp32, calib, suite, work, batches, det.input_hw, args))
        print(f"\ngoal: fp32 / int8 >= 2.5x with |delta mAP| <= 0.01 (all images and full-scene images), "
              f"for every calibration seed ({', '.join(map(str, _seeds(args)))}): worst delta shown, mean beside it")
        for r in rows:
            worst = {k: max(r[k], key=lambda d: abs(d) if d is not None else math.inf) for k in ("d_all", "d_full")}
            mean = {k: (statistics.fmean(r[k]) if None not in r[k] else None) for k in ("d_all", "d_full")}
            met = r["ratio"] >= 2.5 and all(d is not None and abs(d) <= 0.01 for d in worst.values())
            print(f"  {r['recipe']:<13} fp32 / int8 {r['ratio']:.2f}x (paired {r['paired']:.2f}x) | delta mAP all "
                  f"{_fmt(worst['d_all'], 4)} (mean {_fmt(mean['d_all'], 4)}), full-scene {_fmt(worst['d_full'], 4)} "
                  f"(mean {_fmt(mean['d_full'], 4)}) | goal {'met' if met else 'not met'}")
        if args.out:
            print(f"\nkept in {work}")
    return 0


RECIPES = {
    "deploy": {},  # oddsuite.quant.quantize.DEFAULTS
    "previous": {"method": "minmax", "keep_float": "head", "reduce_range": False},
    # 8-bit weights: exact on VNNI / AMX CPUs (VPDPBUSD accumulates in 32 bits), saturating on AVX2
    "full-range": {"reduce_range": False},
    # 7-bit weights: what an x86 CPU without VNNI needs (deploy chooses it there)
    "reduced": {"reduce_range": True},
    # each Concat's inputs and output on one scale where that widens a range at most 1.5x
    "shared-concat": {"share_concat_scales": 1.5},
    # the 99.999th percentile calibration (the default before 2026-12-02)
    "percentile": {"method": "percentile"},
    # the recipe before the stem was kept float (2026-12-02)
    "stem-int8": {"keep_float": "decode", "reduce_range": True},
    # SiLU left float: convolutions, concatenations, pooling and resizing quantized; ONNX Runtime
    # fuses each x * sigmoid(x) into one float QuickGelu between a DequantizeLinear and a QuantizeLinear
    "silu-float": {"op_types": ("Conv", "Concat", "MaxPool", "Resize", "Add")},
}


def _cpu() -> str:
    from oddsuite.quant.quantize import INT8_DOT_ISA
    from oddsuite.studies.latency import machine_info

    m = machine_info()
    isa = m["int8_isa"]
    vnni = [f for f in isa if f in INT8_DOT_ISA]
    return (f"{m['cpu']}, int8 instructions: {', '.join(isa) or 'none listed'}"
            + ("" if vnni else " (no VNNI or AMX: ONNX Runtime's u8s8 kernels use AVX2 VPMADDUBSW)"))


def _run_recipe(recipe: str, fp32: Path, calib: Path, suite: Path, work: Path, batches, input_hw, args) -> dict:
    from oddsuite.studies.compare import compare_models
    from oddsuite.quant.quantize import DEFAULTS, quantize_model

    if recipe not in RECIPES:
        raise SystemExit(f"--recipes: {recipe!r} is not one of {', '.join(RECIPES)}")
    kw = {**DEFAULTS, **RECIPES[recipe]}
    seeds = _seeds(args)
    t = time.time()
    q = quantize_model(fp32, calib, work / f"int8-{recipe}.onnx", calib_images=args.calib_images, seed=seeds[0],
                       **kw)
    print(f"\n== recipe {recipe}: {kw}\nquantized in {time.time() - t:.0f} s: "
          f"{q.record['calibration']['n_images']} calibration images, {q.record['settings']['n_nodes_kept_float']} "
          f"nodes kept float; {q.record['settings']['weights_range']}; fp32 {fp32.stat().st_size / 1e6:.1f} MB, "
          f"int8 {q.path.stat().st_size / 1e6:.1f} MB",
          flush=True)
    lat = latency(fp32, q.path, batches, args.threads, args.calls)
    print(f"latency, batch 1, {input_hw[0]}x{input_hw[1]}, {args.threads} thread(s), "
          f"{args.calls} interleaved calls each (ONNX Runtime, same SessionOptions):")
    for k in ("fp32", "int8"):
        v = lat[k]
        print(f"  {k}: median {v['median_ms']:.1f} ms  (p10 {v['p10_ms']:.1f}, p90 {v['p90_ms']:.1f})")
    print(f"  fp32 / int8 = {lat['ratio_fp32_over_int8']:.2f}x  (median of paired ratios "
          f"{lat['paired_ratio_median']:.2f}x)", flush=True)
    if args.profile:
        for name, path in (("fp32", fp32), (f"int8 {recipe}", q.path)):
            print(f"  where the time goes, {name} (ONNX Runtime profiler, share of operator time):")
            for op, ms, share, n in op_profile(path, batches, args.threads):
                print(f"    {op:<20} {ms:7.2f} ms/call  {100 * share:5.1f}%  ({n} nodes)")
    d_all, d_full = [], []
    for seed in seeds:
        path = q.path
        if seed != seeds[0]:
            path = quantize_model(fp32, calib, work / f"int8-{recipe}-seed{seed}.onnx",
                                  calib_images=args.calib_images, seed=seed, **kw).path
        print(f"calibration seed {seed}: ", end="")
        da, df = _behaviour(suite, fp32, path, work / f"compare-{recipe}-seed{seed}", args.threads)
        d_all.append(da)
        d_full.append(df)
    return {"recipe": recipe, "ratio": lat["ratio_fp32_over_int8"], "paired": lat["paired_ratio_median"],
            "d_all": d_all, "d_full": d_full}


def _seeds(args) -> list[int]:
    try:
        seeds = [int(v) for v in str(args.calib_seeds).split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--calib-seeds: expected comma-separated integers, got {args.calib_seeds!r}") from None
    if not seeds:
        raise SystemExit("--calib-seeds: expected at least one seed")
    return seeds


def op_profile(path: Path, batches: list[np.ndarray], threads: int, calls: int = 10, top: int = 8) -> list:
    """(operator type, ms per call, share, nodes) of the most expensive operator types, from ONNX
    Runtime's own profiler (the session options of the latency measurement)."""
    import collections

    so = _session_options(threads)
    so.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="oddsuite-prof.") as tmp:
        so.profile_file_prefix = str(Path(tmp) / "prof")
        import onnxruntime as ort

        s = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        for i in range(calls):
            s.run(None, {name: batches[i % len(batches)]})
        events = json.loads(Path(s.end_profiling()).read_text())
    dur, nodes = collections.Counter(), collections.defaultdict(set)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            dur[op] += e["dur"]
            nodes[op].add(e["name"])
    total = sum(dur.values()) or 1
    return [(op, d / 1000 / calls, d / total, len(nodes[op])) for op, d in dur.most_common(top)]


def _behaviour(suite: Path, fp32: Path, int8: Path, out: Path, threads: int):
    from oddsuite.studies.compare import compare_models

    t = time.time()
    r = compare_models(suite, fp32, int8, out, progress=False, layer_images=2, threads=threads)
    o = r["overall"]
    mp = o["map"]
    fa, fb = r["models"]["a"]["full_scene_map"], r["models"]["b"]["full_scene_map"]
    print(f"behaviour on {suite} ({r['suite']['n_images']} images, iou 0.5, conf 0.25; {time.time() - t:.0f} s):")
    print(f"  mAP@[.5:.95] all images  fp32 {_fmt(mp['a']['map'])}  int8 {_fmt(mp['b']['map'])}  "
          f"delta {_fmt(mp['delta']['map'], 4)}  ({mp['n_images']} images)")
    d_full = None
    if fa and fb:
        d_full = (fb["map"] - fa["map"]) if (fa.get("map") is not None and fb.get("map") is not None) else None
        print(f"  mAP full-scene images    fp32 {_fmt(fa.get('map'))}  int8 {_fmt(fb.get('map'))}  "
              f"delta {_fmt(d_full, 4)}  ({fa.get('n_images')} images)")
    ag, fl = o["agreement"], o["flips"]
    print(f"  detection agreement {_fmt(ag['value'])} ({ag['k']}/{ag['n']}), flips hit->not "
          f"{fl['hit_to_not']['k']}, not->hit {fl['not_to_hit']['k']} of {fl['n']} ROIs, "
          f"score drift {_fmt(o['score_drift']['value'], 4)} ({o['score_drift']['n']} pairs)")
    lay = r["layers"]
    if "skipped" not in lay:
        drops = ", ".join(f"{d['node']} ({d['drop_db']:.1f} dB)" for d in lay["largest_drops"][:3])
        print(f"  layers: output SQNR {_fmt(lay['output_sqnr_db'], 1)} dB; largest drops: {drops}", flush=True)
    return mp["delta"]["map"], d_full


if __name__ == "__main__":
    sys.exit(main())

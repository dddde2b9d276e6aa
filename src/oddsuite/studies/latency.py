"""Timing integrity: the latency distribution of model variants, per image, over many runs (seed ``000``).

Safety practice asks for known best- and worst-case execution times (seed ``000`` II.B.3.a);
Fig. 3 of the seed shows that even a trivial GPU kernel has a distribution with a long tail,
not a time. This study measures it for detectors: every variant (torch fp32, ONNX Runtime
fp32, int8, the simulated accelerator, ...) predicts each of a seeded sample of suite images,
batch 1, end to end (pre-processing, network, post-processing: what a caller waits for),
``runs`` times; rounds interleave the variants (the order rotates each round) so that load on
the machine falls on all of them alike. The first call of each variant is reported apart
(cold start) and not counted; ``warmup`` further calls per image are not counted either.

Per variant: best, median, mean, p90, p99, worst, standard deviation, the tail ratios
p99 / median and worst / best, the spread of the per-image medians, a histogram on shared
log-spaced bins, and a stability verdict from p99 / median (``stable`` ≤ 1.25 < ``moderate
tail`` ≤ 2 < ``long tail``). The machine (CPU model, cores, load average before and after)
and the thread counts are recorded with the numbers: latency means nothing without them.

Writes ``latency.json``, ``samples.csv`` (every timed call) and ``latency.png``.
"""
from __future__ import annotations

import io
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oddsuite.quant.quantize import cpu_int8_isa

log = logging.getLogger(__name__)

FORMAT = "oddsuite-latency/1"
#: p99 / median at most this: "stable"; at most LONG_TAIL: "moderate tail"; above: "long tail"
STABLE, LONG_TAIL = 1.25, 2.0
HIST_BINS = 30


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """What the numbers were measured on: CPU model and flags of note, cores, threads, load, versions."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("unknown", "x86_64", ""):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "usable_cpus": affinity,
            "int8_isa": list(cpu_int8_isa()),
            "torch_threads": torch.get_num_threads(), "ort_threads": threads, "versions": versions,
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def sample_images(suite_dir: str | Path, n: int, seed: int = 0) -> list[tuple[int, np.ndarray]]:
    """``n`` images of the suite (all when it has fewer), drawn with ``Generator(SeedSequence([seed,
    n_images]))``, in suite order, as ``(image id, RGB uint8)``."""
    from oddsuite.suite import load_suite, read_image

    suite = load_suite(suite_dir)
    images = suite.gt["images"]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), len(images)]))
    pick = range(len(images)) if n >= len(images) else sorted(rng.choice(len(images), size=n, replace=False).tolist())
    out = []
    for i in pick:
        out.append((int(images[i]["id"]), read_image(suite.image_path(images[i]))))
    return out


def summarize(ms: Sequence[float]) -> dict[str, Any]:
    """Distribution of latencies in ms: best, quantiles, worst, spread, tail ratios, verdict."""
    a = np.asarray(ms, dtype=float)
    q = np.percentile(a, [50, 90, 99])
    med = float(q[0])
    tail = float(q[2]) / med if med > 0 else None
    verdict = None if tail is None else "stable" if tail <= STABLE else "moderate tail" if tail <= LONG_TAIL \
        else "long tail"
    return {"n": int(len(a)), "best_ms": float(a.min()), "median_ms": med, "mean_ms": float(a.mean()),
            "p90_ms": float(q[1]), "p99_ms": float(q[2]), "worst_ms": float(a.max()), "std_ms": float(a.std()),
            "cv": float(a.std() / a.mean()) if a.mean() > 0 else None, "p99_over_median": tail,
            "worst_over_best": float(a.max() / a.min()) if a.min() > 0 else None, "stability": verdict}


def _time_rounds(detectors: Sequence[Any], images, runs: int, warmup: int, progress: bool):
    """(cold first-call ms per variant, samples [(variant, image id, run, ms)])."""
    cold = []
    for det in detectors:
        t = time.perf_counter_ns()
        det.predict([images[0][1]])
        cold.append((time.perf_counter_ns() - t) / 1e6)
        for _ in range(warmup):
            for _, img in images:
                det.predict([img])
    samples: list[tuple[int, int, int, float]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=runs, desc="latency", unit="round", leave=False)
    for r in range(runs):
        order = [(r + k) % len(detectors) for k in range(len(detectors))]
        for iid, img in images:
            for v in order:
                t = time.perf_counter_ns()
                detectors[v].predict([img])
                samples.append((v, iid, r, (time.perf_counter_ns() - t) / 1e6))
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return cold, samples


def latency_distribution(suite_dir: str | Path, detectors: Sequence[Any], out_dir: str | Path, *,
                         labels: Sequence[str] | None = None, runs: int = 30, images: int = 8, seed: int = 0,
                         warmup: int = 1, threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Time every detector on ``images`` suite images, batch 1, ``runs`` rounds; write and return
    the results (see the module doc). ``threads``: the ONNX Runtime intra-op threads the variants
    were built with (recorded; torch's are the process's)."""
    if runs < 1 or images < 1 or not detectors:
        raise ValueError("latency needs at least one detector, one image and one run")
    labels = list(labels or [str(d.name) for d in detectors])
    picked = sample_images(suite_dir, images, seed)
    before = machine_info(threads)
    cold, samples = _time_rounds(detectors, picked, runs, warmup, progress)
    after_load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    arr = np.array([s[3] for s in samples])
    edges = np.logspace(np.log10(max(arr.min() * 0.95, 1e-3)), np.log10(arr.max() * 1.05), HIST_BINS + 1)
    variants = []
    for v, label in enumerate(labels):
        ms = [s[3] for s in samples if s[0] == v]
        per_img = {}
        for s in samples:
            if s[0] == v:
                per_img.setdefault(s[1], []).append(s[3])
        meds = [float(np.median(x)) for x in per_img.values()]
        variants.append({"label": label, "detector": str(detectors[v].name), "cold_first_call_ms": cold[v],
                         **summarize(ms),
                         "per_image_median_ms": {"min": min(meds), "max": max(meds),
                                                 "max_over_min": max(meds) / min(meds) if min(meds) > 0 else None},
                         "histogram": np.histogram(ms, bins=edges)[0].astype(int).tolist()})
    result = {"format": FORMAT, "suite": str(Path(suite_dir).resolve()),
              "settings": {"runs": runs, "images": len(picked), "image_ids": [i for i, _ in picked], "seed": seed,
                           "warmup": warmup, "batch": 1, "clock": "time.perf_counter_ns (wall)",
                           "order": "interleaved, rotating each round"},
              "machine": {**before, "loadavg_after": after_load}, "variants": variants,
              "histogram_edges_ms": edges.tolist()}
    _write(Path(out_dir), result, samples, labels)
    return result


def _write(out: Path, result: dict[str, Any], samples, labels: Sequence[str]) -> None:
    from oddsuite.fileio import atomic_write_text, write_json
    from oddsuite.studies.mlp_experiment import save_png

    write_json(out / "latency.json", result, sort_keys=False, nan="null")
    buf = io.StringIO()
    buf.write("variant,image_id,run,ms\n")
    for v, iid, r, ms in samples:
        buf.write(f"{labels[v]},{iid},{r},{ms:.6f}\n")
    atomic_write_text(out / "samples.csv", buf.getvalue())
    save_png(plot_latency(result), out / "latency.png")


def plot_latency(result: dict[str, Any]):
    """Histograms of the variants on the shared log-spaced bins, medians and p99 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(result["histogram_edges_ms"])
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for v in result["variants"]:
        line = ax.stairs(v["histogram"], edges, label=f"{v['label']} (median {v['median_ms']:.1f} ms, "
                                                      f"p99 {v['p99_ms']:.1f})")
        ax.axvline(v["median_ms"], color=line.get_edgecolor(), lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("latency per image, batch 1 (ms, log scale)")
    ax.set_ylabel("calls")
    m = result["machine"]
    ax.set_title(f"{m['cpu']}, torch threads {m['torch_threads']}, ORT threads {m['ort_threads'] or 'default'}; "
                 f"{result['settings']['runs']} runs x {result['settings']['images']} images", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

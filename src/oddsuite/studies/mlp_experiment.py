"""The seed's experiment on our own model: an 8-bit MLP of the seed's Table 1 form.

``784 x 256 x 256 x 256 x 10`` (ReLU), trained in float on scikit-learn's digits (8x8,
upscaled bilinearly to 28x28, so that the input layer has MNIST's 784 features), quantised to
int8 (weights per channel, activations per tensor calibrated on the training set) and run on
a simulated ``R x C`` array (the seed's 256 x 256 by default).

Two sweeps, each with several seeded fault maps per point (median and spread reported):

- accuracy against the number of faulty PEs (stuck-at-0/1 on a uniform random bit of the
  32-bit partial sum) for no mitigation, FAP and FAP+T;
- accuracy against the per-MAC timing error rate, errors propagated or dropped (TE-Drop).

:func:`run_mlp_experiment` writes ``results.json``, ``stuck_at.csv``, ``timing.csv``, a
plot ``mlp_faults.png`` and, per map seed, the largest fault map (``maps/seed-S.json``; the
map for ``n`` faulty PEs is its first ``n`` faults, because seeded maps are nested).
"""
from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from oddsuite.fileio import atomic_write, write_json
from oddsuite.fileio import atomic_write_text as _atomic_text
from oddsuite.accelerator.faults import FaultMap, TimingErrors
from oddsuite.accelerator.mitigation import fap_masks, fine_tune_with_masks
from oddsuite.accelerator.systolic import SystolicArray
from oddsuite.accelerator.wrap import accelerate, accelerator_of

log = logging.getLogger(__name__)

@dataclass
class MLPExperimentConfig:
    rows: int = 256
    cols: int = 256
    faulty_pes: Sequence[int] = (0, 1, 4, 16, 64, 256, 1024, 4096, 16384, 32768)
    mitigations: Sequence[str] = ("none", "fap", "fap+t")
    maps: int = 5
    bits: Sequence[int] | None = None  # stuck-at bits drawn from (None: all 32)
    timing_rates: Sequence[float] = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    timing_modes: Sequence[str] = ("propagate", "te-drop")
    keep_bits: int = 16
    seed: int = 0
    epochs: int = 40
    ft_epochs: int = 5
    lr: float = 1e-3
    hidden: Sequence[int] = (256, 256, 256)
    test_fraction: float = 0.25


def load_digits_28(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn digits as 784-feature vectors in [0, 1]: ``(Xtr, ytr, Xte, yte)`` tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (n, 1, 8, 8)
    x = nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp_(0, 1)
    x = x.reshape(len(x), -1).numpy()
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target)
    t = torch.from_numpy
    return t(xtr), t(ytr.astype(np.int64)), t(xte), t(yte.astype(np.int64))


def make_mlp(hidden: Sequence[int] = (256, 256, 256), n_in: int = 784, n_out: int = 10, seed: int = 0) -> nn.Sequential:
    """The MLP ``n_in x hidden... x n_out`` (ReLU), initialised from ``seed`` alone (torch's global
    generator is forked, so the caller's random state is neither used nor changed)."""
    dims = [n_in, *hidden, n_out]
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def train_mlp(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, epochs: int = 40, lr: float = 1e-3,
              batch_size: int = 64, seed: int = 0) -> nn.Module:
    """Plain float training (the masks-free case of :func:`fine_tune_with_masks`)."""
    return fine_tune_with_masks(model, {}, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(X).argmax(1) == y).float().mean())


def quantized_on_array(model: nn.Module, array: SystolicArray, Xcal: torch.Tensor) -> nn.Module:
    """The int8 model on ``array``, calibrated on ``Xcal``."""
    q = accelerate(model, array)
    accelerator_of(q).calibrate(lambda: q(Xcal))
    return q


def map_seed(seed: int, i: int) -> int:
    """The seed of fault map ``i`` of an experiment seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])


def _summary(values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max()),
            "q25": float(np.percentile(a, 25)), "q75": float(np.percentile(a, 75)), "n": int(len(a))}

def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        _atomic_text(path, "")
        return
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    _atomic_text(path, buf.getvalue())


def mlp_config(fault: str, rows: int, cols: int, *, faulty_pes: Sequence[int], mitigations: Sequence[str],
               rates: Sequence[float], maps: int, seed: int, keep_bits: int,
               bits: Sequence[int] | None) -> MLPExperimentConfig:
    """The MLP experiment's config for ``oddsuite faults mlp-digits`` (one fault kind: the other
    sweep is left empty). Mitigations for timing faults are ``none`` (errors propagate) and
    ``te-drop``. ValueError, naming the option, for a mitigation that does not apply or more
    faulty PEs than the array has."""
    if fault == "stuck-at":
        bad = [m for m in mitigations if m not in ("none", "fap", "fap+t")]
        if bad:
            raise ValueError(f"--mitigation {bad[0]!r} does not apply to stuck-at faults (none, fap, fap+t)")
        if any(n > rows * cols for n in faulty_pes):
            raise ValueError(f"--faulty-pes exceeds the {rows}x{cols} array")
        timing_modes: list[str] = []
    else:
        bad = [m for m in mitigations if m not in ("none", "te-drop")]
        if bad:
            raise ValueError(f"--mitigation {bad[0]!r} does not apply to timing faults (none, te-drop)")
        timing_modes = ["propagate" if m == "none" else "te-drop" for m in mitigations]
    return MLPExperimentConfig(rows=rows, cols=cols, maps=maps, seed=seed,
                               faulty_pes=tuple(faulty_pes) if fault == "stuck-at" else (),
                               mitigations=tuple(mitigations) if fault == "stuck-at" else (),
                               timing_rates=tuple(rates) if fault == "timing" else (),
                               timing_modes=tuple(timing_modes), keep_bits=keep_bits, bits=bits)


def _progress(items: list, desc: str, progress: bool):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc)


def _stuck_at_rows(cfg: MLPExperimentConfig, model: nn.Module, q: nn.Module, array: SystolicArray, data,
                   points: Sequence[int], seeds: Sequence[int], big_maps: dict[int, FaultMap],
                   int8_acc: float, progress: bool) -> list[dict]:
    """Accuracy per (faulty PEs, map seed, mitigation): none and FAP on the int8 model ``q``,
    FAP+T on a copy of ``model`` fine-tuned with the map's FAP mask held fixed."""
    Xtr, ytr, Xte, yte = data
    acc = accelerator_of(q)
    n_pe = cfg.rows * cfg.cols
    rows: list[dict] = []
    for n, s in _progress([(n, s) for n in points for s in seeds], "stuck-at sweep", progress):
        fmap = FaultMap(cfg.rows, cfg.cols, big_maps[s].faults[:n], seed=s)
        for mit in cfg.mitigations:
            if n == 0:
                a = int8_acc
            elif mit in ("none", "fap"):
                acc.configure(fmap, mitigation=mit)
                a = accuracy(q, Xte, yte)
            elif mit == "fap+t":
                ft = make_mlp(cfg.hidden, seed=cfg.seed)
                ft.load_state_dict(model.state_dict())
                fine_tune_with_masks(ft, fap_masks(ft, array, fmap), Xtr, ytr, epochs=cfg.ft_epochs, lr=cfg.lr,
                                     seed=s % (2**31))
                qf = quantized_on_array(ft, array, Xtr)
                accelerator_of(qf).configure(fmap, mitigation="fap")
                a = accuracy(qf, Xte, yte)
            else:
                raise ValueError(f"unknown mitigation {mit!r} (none, fap, fap+t)")
            rows.append({"faulty_pes": n, "fault_rate": n / n_pe, "mitigation": mit, "map_seed": s, "accuracy": a})
    acc.configure()
    return rows


def _timing_rows(cfg: MLPExperimentConfig, q: nn.Module, Xte: torch.Tensor, yte: torch.Tensor,
                 progress: bool) -> list[dict]:
    """Accuracy per (timing error rate, mode, seed) of the int8 model ``q``."""
    acc = accelerator_of(q)
    rows: list[dict] = []
    items = [(r, m, i) for r in cfg.timing_rates for m in cfg.timing_modes for i in range(cfg.maps)]
    for rate, mode, i in _progress(items, "timing sweep", progress):
        te = TimingErrors(rate=float(rate), mode=mode, keep_bits=cfg.keep_bits, seed=map_seed(cfg.seed + 1, i))
        acc.configure(timing=te)
        a = accuracy(q, Xte, yte)
        rows.append({"rate": float(rate), "mode": mode, "seed": te.seed, "accuracy": a,
                     "macs": acc.stats.macs, "events": acc.stats.timing_events,
                     "effective": acc.stats.timing_effective})
    acc.configure()
    return rows


def _summarize(rows: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r["accuracy"])
    return [{**dict(zip(keys, k)), **_summary(v)} for k, v in groups.items()]


def run_mlp_experiment(out_dir: str | os.PathLike | None = None, config: MLPExperimentConfig | None = None,
                       progress: bool = False) -> dict:
    """Run both sweeps; returns the results dict and, with ``out_dir``, writes the files."""
    cfg = config or MLPExperimentConfig()
    t0 = time.perf_counter()
    array = SystolicArray(cfg.rows, cfg.cols)
    points = sorted({int(n) for n in cfg.faulty_pes if 0 <= int(n) <= cfg.rows * cfg.cols})
    data = Xtr, ytr, Xte, yte = load_digits_28(cfg.seed, cfg.test_fraction)
    model = train_mlp(make_mlp(cfg.hidden, seed=cfg.seed), Xtr, ytr, epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed)
    float_acc = accuracy(model, Xte, yte)
    q = quantized_on_array(model, array, Xtr)
    int8_acc = accuracy(q, Xte, yte)
    log.info("MLP float %.4f, int8 on %s %.4f", float_acc, array, int8_acc)

    seeds = [map_seed(cfg.seed, i) for i in range(cfg.maps)]
    big_maps = {s: FaultMap.random(cfg.rows, cfg.cols, max(points) if points else 0, seed=s, bits=cfg.bits)
                for s in seeds}
    stuck_rows = _stuck_at_rows(cfg, model, q, array, data, points, seeds, big_maps, int8_acc, progress)
    timing_rows = _timing_rows(cfg, q, Xte, yte, progress)
    results = {
        "experiment": "mlp-digits",
        "config": {k: (list(v) if isinstance(v, (list, tuple, range)) else v) for k, v in asdict(cfg).items()},
        "model": {"layers": [784, *cfg.hidden, 10], "train": len(Xtr), "test": len(Xte),
                  "float_accuracy": float_acc, "int8_accuracy": int8_acc},
        "array": f"{cfg.rows}x{cfg.cols}",
        "map_seeds": seeds,
        "stuck_at": stuck_rows,
        "stuck_at_summary": _summarize(stuck_rows, ("faulty_pes", "mitigation")),
        "timing": timing_rows,
        "timing_summary": _summarize(timing_rows, ("rate", "mode")),
        "seconds": time.perf_counter() - t0,
    }
    results["findings"] = findings(results)
    if out_dir is not None:
        write_results(results, out_dir, big_maps)
    return results


def findings(results: dict) -> dict:
    """Whether the seed's qualitative results reappear, as numbers and yes/no."""
    base = results["model"]["int8_accuracy"]
    summ = {(r["faulty_pes"], r["mitigation"]): r["median"] for r in results["stuck_at_summary"]}
    pts = sorted({k[0] for k in summ if k[0] > 0})
    out: dict = {"int8_accuracy": base}
    none_pts = [(n, summ[(n, "none")]) for n in pts if (n, "none") in summ]
    # "a few stuck-at faults wreck accuracy": the smallest fault count whose median accuracy loses half of it
    collapse = next((n for n, a in none_pts if a < base / 2), None)
    out["none_collapse_at_faulty_pes"] = collapse
    out["few_faults_collapse"] = collapse is not None and collapse <= 64
    for mit in ("fap", "fap+t"):
        kept = [(n, summ[(n, mit)]) for n in pts if (n, mit) in summ]
        if kept:
            ok = [n for n, a in kept if a >= base - 0.05]
            out[f"{mit}_max_faulty_pes_within_5pt"] = max(ok) if ok else 0
            out[f"{mit}_accuracy_at_max_faults"] = kept[-1][1]
    rows, cols = (int(v) for v in results["array"].split("x"))
    if pts and any(k[1] == "fap" for k in summ):
        top = pts[-1]
        # judged only when the sweep reaches a high fault rate (>= 10% of the PEs)
        out["fap_keeps_most_at_high_rates"] = (summ.get((top, "fap"), 0.0) >= 0.8 * base
                                               if top >= 0.1 * rows * cols else None)
    tsum = {(r["rate"], r["mode"]): r["median"] for r in results.get("timing_summary", [])}
    rates = sorted({k[0] for k in tsum})
    if rates:
        first_drop = {m: next((r for r in rates if tsum.get((r, m), base) < base - 0.05), None)
                      for m in ("propagate", "te-drop")}
        out["timing_first_rate_losing_5pt"] = first_drop
        p, d = first_drop["propagate"], first_drop["te-drop"]
        out["te_drop_tolerates_higher_rate"] = p is not None and (d is None or d > p)
    return out


def write_results(results: dict, out_dir, maps: dict[int, FaultMap] | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results, sort_keys=False, nan="null")
    _write_csv(out / "stuck_at.csv", results["stuck_at"])
    _write_csv(out / "timing.csv", results["timing"])
    if maps:
        for s, fm in maps.items():
            fm.save(out / "maps" / f"seed-{s}.json")
    plot_results(results, out / "mlp_faults.png")
    return out


def save_png(fig, path) -> Path:
    """Lay out ``fig``, write it as a 110 dpi PNG atomically, close it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def plot_results(results: dict, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    summ = results["stuck_at_summary"]
    base = results["model"]["int8_accuracy"]
    for mit, style in (("none", "o-"), ("fap", "s-"), ("fap+t", "^-")):
        rows = sorted((r for r in summ if r["mitigation"] == mit), key=lambda r: r["faulty_pes"])
        if not rows:
            continue
        x = np.array([max(r["faulty_pes"], 0.5) for r in rows])
        med = np.array([r["median"] for r in rows])
        ax.plot(x, med, style, label=mit)
        ax.fill_between(x, [r["min"] for r in rows], [r["max"] for r in rows], alpha=0.2)
    ax.axhline(base, color="grey", lw=0.8, ls="--", label="int8, no fault")
    ax.set_xscale("log")
    ax.set_xlabel(f"faulty PEs (of {results['array']}; 0 plotted at 0.5)")
    ax.set_ylabel("test accuracy")
    ax.set_title("stuck-at faults: median, min–max over maps")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax = axes[1]
    tsum = results.get("timing_summary", [])
    for mode, style in (("propagate", "o-"), ("te-drop", "s-")):
        rows = sorted((r for r in tsum if r["mode"] == mode), key=lambda r: r["rate"])
        if not rows:
            continue
        x = np.array([r["rate"] for r in rows])
        ax.plot(x, [r["median"] for r in rows], style, label=mode)
        ax.fill_between(x, [r["min"] for r in rows], [r["max"] for r in rows], alpha=0.2)
    ax.axhline(base, color="grey", lw=0.8, ls="--", label="no error")
    ax.set_xscale("log")
    ax.set_xlabel("timing error rate per MAC")
    ax.set_title("timing errors")
    ax.set_ylim(0, 1.02)
    ax.legend()
    return save_png(fig, path)

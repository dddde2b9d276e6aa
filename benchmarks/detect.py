"""Detector throughput: the ultralytics (torch) adapter against the ONNX Runtime fp32 adapter.

Same weights (a yolov8n, 80 classes, random weights made input-dependent), same 640x480
images, same pre- and post-processing (letterbox to 640, our NMS at the mAP floor 0.001), same
thread count; measured side by side in one run, rounds interleaved, median of the rounds.
Prints images/second end to end (``predict``) and for the network alone, and the ratios.

    .venv/bin/python benchmarks/detect.py [--images 8] [--rounds 3] [--batch 1 8] [--threads 1]

Offline: the model is built from its yaml, nothing is downloaded.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8, help="640x480 images per round (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per adapter (default 3)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for both runtimes (default 1: on a shared, busy machine, more threads "
                         "than free cores make OpenMP spin and torch slows down many-fold)")
    ap.add_argument("--imgsz", type=int, default=640, help="network input size (default 640)")
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from oddsuite.models import export_onnx, load_detector, save_model_dir
    from oddsuite.models.common import preprocess
    from oddsuite.training.toy import lively_random_model, make_toy_suite

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        suite = make_toy_suite(tmp / "suite", scenes=max(1, args.images // 2), size=(480, 640), seed=0)
        files = sorted((suite / "images").rglob("*.png"))
        images = [np.asarray(Image.open(f).convert("RGB")) for f in files][: args.images]
        while len(images) < args.images:
            images.append(images[len(images) % len(files)].copy())
        assert images[0].shape == (480, 640, 3)

        model = lively_random_model(nc=80, images=images[:8], imgsz=args.imgsz, seed=0)
        names = {i: f"class{i}" for i in range(80)}
        mdir = save_model_dir(model, tmp / "model", names, args.imgsz, name="yolov8n-random")
        torch_det = load_detector(mdir)
        fused_det = load_detector(mdir)
        fused_det.torch_model = copy.deepcopy(fused_det.torch_model).fuse(verbose=False)
        onnx_det = load_detector(export_onnx(torch_det, tmp / "model.onnx", args.imgsz), threads=args.threads)
        adapters = [("ultralytics torch fp32", torch_det), ("ultralytics torch fp32 (Conv+BN fused)", fused_det),
                    ("ONNX Runtime fp32", onnx_det)]

        print(f"yolov8n (80 classes, random weights), {len(images)} images 640x480 -> letterbox {args.imgsz}, "
              f"conf 0.001, {args.threads} threads; torch {torch.__version__}, "
              f"onnxruntime {__import__('onnxruntime').__version__}; median of {args.rounds} rounds")
        n_boxes = {}
        results: dict[tuple[str, int], tuple[float, float]] = {}
        for bs in args.batch:
            for _, det in adapters:
                det.batch_size = bs
                det.predict(images[:bs])  # warm up
            pre = [preprocess(images[i:i + bs], (args.imgsz, args.imgsz))[0] for i in range(0, len(images), bs)]
            e2e: dict[str, list[float]] = {n: [] for n, _ in adapters}
            net: dict[str, list[float]] = {n: [] for n, _ in adapters}
            for _ in range(args.rounds):
                for name, det in adapters:  # interleaved: drift of the machine hits all alike
                    t = time.perf_counter()
                    out = det.predict(images)
                    e2e[name].append(len(images) / (time.perf_counter() - t))
                    n_boxes[name] = sum(len(d) for d in out) / len(out)
                    t = time.perf_counter()
                    for b in pre:
                        det.raw(b)
                    net[name].append(len(images) / (time.perf_counter() - t))
            for name, _ in adapters:
                results[(name, bs)] = (statistics.median(e2e[name]), statistics.median(net[name]))

        w = max(len(n) for n, _ in adapters)
        print(f"\n{'adapter':<{w}}  batch  predict img/s  network img/s  boxes/img")
        for bs in args.batch:
            for name, _ in adapters:
                e, n = results[(name, bs)]
                print(f"{name:<{w}}  {bs:>5}  {e:>13.2f}  {n:>13.2f}  {n_boxes[name]:>9.1f}")
        print()
        base = adapters[0][0]
        for bs in args.batch:
            for name, _ in adapters[1:]:
                e, n = results[(name, bs)]
                e0, n0 = results[(base, bs)]
                print(f"batch {bs}: {name} / {base}: predict x{e / e0:.2f}, network x{n / n0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``oddsuite quantize --model M --calib SUITE --out X.onnx``: post-training static int8 quantization."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from oddsuite.commands._args import positive_int


def _percentile(text: str) -> float:
    try:
        v = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a number in (50, 100], got {text!r}") from e
    if not 50.0 < v <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a number in (50, 100], got {text!r}")
    return v


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "quantize", help="int8 post-training quantization (ONNX Runtime, QDQ) calibrated on a suite",
        description="Quantize a detector to int8 with ONNX Runtime (static, QDQ format, per-channel QInt8 weights), "
                    "calibrated on a seeded sample of a suite's images pre-processed as the ONNX adapter does. "
                    "A model that is not ONNX is exported first. Writes OUT and OUT.json, the record of how it "
                    "was made (hashes, calibration images, settings, versions).")
    p.add_argument("--model", required=True, type=Path, metavar="M",
                   help="source model: ONNX file, model directory, .safetensors, or trusted .pt")
    p.add_argument("--calib", required=True, type=Path, metavar="SUITE", help="suite whose images calibrate")
    p.add_argument("--out", required=True, type=Path, metavar="X.onnx", help="quantized model file to write")
    p.add_argument("--calib-images", type=positive_int, default=64, metavar="N",
                   help="calibration images drawn from the suite (default 64; all if it has fewer)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration sample (default 0)")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax",
                   help="calibration method (default minmax: the observed range of every tensor over the "
                        "calibration images)")
    p.add_argument("--percentile", type=_percentile, default=99.999, help="for --method percentile (default 99.999)")
    p.add_argument("--activations", choices=["quint8", "qint8"], default="quint8",
                   help="activation type (default quint8; with qint8, ONNX Runtime 1.32 fused only 6 of the "
                        "default detector's 62 int8 convolutions on an AVX-512 VNNI CPU: 0.58x the speed of fp32); "
                        "weights are always qint8, per channel unless --per-tensor")
    p.add_argument("--keep-float", default="decode+stem", metavar="decode+stem|decode|stem|head|none|REGEX",
                   help="nodes left in float: 'decode' (only the head's decoding tail: its convolutions are "
                        "quantized), 'stem' (the first module alone: the convolution that reads the image and "
                        "its activation), 'head' (the last Detect module and what follows it), 'none', "
                        "or a regular expression searched in node names (with what follows the matches); "
                        "join several with '+' (default decode+stem)")
    p.add_argument("--weights-range", choices=["auto", "full", "reduced"], default="auto",
                   help="int8 weights over the full 8-bit range or reduced to 7 bits (reduce_range). 'auto' "
                        "(default) chooses for this CPU, taken to be the one the model will run on: 7-bit on x86 "
                        "without VNNI or AMX-INT8 (AVX2 only: ONNX Runtime's u8s8 kernels saturate with 8-bit "
                        "weights), 8-bit elsewhere (more accurate). Quantizing for another CPU, say which")
    p.add_argument("--full-range-weights", dest="weights_range", action="store_const", const="full",
                   help="the same as --weights-range full")
    p.add_argument("--share-concat-scales", type=float, nargs="?", const=1.5, default=None, metavar="W",
                   help="give each Concat's inputs and output one scale where their union range is at most W "
                        "times a member's own (W default 1.5, about half a bit): ONNX Runtime then copies "
                        "instead of requantizing; calibrates twice. Off by default (it costs some accuracy)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weight scales")
    p.add_argument("--sha256", metavar="HEX", default=None, help="expected SHA-256 of the source model file")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow a pickled .pt source (unpickling runs code: only for files you trust)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from oddsuite.quant.quantize import quantize_model

    res = quantize_model(args.model, args.calib, args.out, calib_images=args.calib_images, seed=args.seed,
                         method=args.method, keep_float=args.keep_float, activations=args.activations,
                         per_channel=not args.per_tensor, sha256=args.sha256, trust_pickle=args.trust_pickle,
                         percentile=args.percentile, share_concat_scales=args.share_concat_scales,
                         reduce_range={"auto": None, "full": False, "reduced": True}[args.weights_range])
    r = res.record
    cal, st = r["calibration"], r["settings"]
    print(f"{r['source']['name']} ({r['source']['kind']}, sha256 {r['source']['sha256'][:12]}) -> {res.path}")
    print(f"  int8 QDQ, weights {st['weight_type']} {'per-channel' if st['per_channel'] else 'per-tensor'}, "
          f"activations {st['activation_type']}, {st['method']} calibration on {cal['n_images']} images "
          f"(seed {cal['seed']}), {st['n_nodes_kept_float']} nodes kept float ({st['keep_float']})")
    print(f"  weights range: {st['weights_range']}")
    if "concat_scale_groups" in r:
        gs = r["concat_scale_groups"]
        print(f"  Concat scales shared in {sum(g['shared'] for g in gs)} of {len(gs)} groups "
              f"(widening at most {st['share_concat_scales']})")
    print(f"  sha256 {r['output']['sha256']}  ({r['output']['bytes'] / 1e6:.1f} MB, "
          f"{r['output']['op_counts'].get('QuantizeLinear', 0)} QuantizeLinear)")
    print(f"record: {res.record_path}")
    return 0

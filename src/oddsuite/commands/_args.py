"""argparse value types shared by the sub-commands (each error says what was expected)."""
from __future__ import annotations

import argparse


def _int_from(text: str, lowest: int, what: str) -> int:
    try:
        v = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from e
    if v < lowest:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return _int_from(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _int_from(text, 0, "an integer >= 0")


def unit_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from e
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def share(text: str) -> float:
    """A share in [0, 1) (1 excluded)."""
    try:
        v = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text!r}") from e
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text!r}")
    return v


def model_arg(text: str) -> tuple[str, object]:
    """``--model-arg KEY=VALUE``: VALUE a Python literal (number, bool, list, quoted text) or plain text."""
    from oddsuite.models.torchvision_det import parse_model_arg

    try:
        return parse_model_arg(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def add_model_options(p: argparse.ArgumentParser) -> None:
    """``--model REF --sha256 --trust-pickle --weights --model-arg``: what ``load_detector`` takes."""
    p.add_argument("--model", required=True, metavar="REF",
                   help="a model file or folder (.safetensors with its yaml, .onnx, a trusted .pt), "
                        "torchvision:NAME with --weights, or package.module:function (a factory returning a Detector)")
    p.add_argument("--sha256", metavar="HEX", default=None,
                   help="expected SHA-256 of the model file (of --weights for torchvision: and factory models)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow model formats that unpickle Python objects (only for files you trust)")
    p.add_argument("--weights", metavar="FILE", default=None,
                   help="weights of a torchvision:NAME model (a state dict: torch.save(model.state_dict()) or "
                        ".safetensors) or of a factory model (passed to it as weights=PATH)")
    p.add_argument("--model-arg", type=model_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="a builder (torchvision) or factory argument, e.g. min_size=320; repeatable")

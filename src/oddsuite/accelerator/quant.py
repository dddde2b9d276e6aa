"""int8 quantisation as the simulated accelerator uses it.

- Weights: symmetric, per output channel, int8 in ``[-127, 127]`` (``scale = max|w| / 127``).
- Activations: symmetric, per tensor, int8 in ``[-128, 127]``; the scale is calibrated
  from the largest magnitude seen on calibration inputs (``scale = max|x| / 127``).
- Products and partial sums: 32-bit signed accumulators (see :mod:`.systolic`).
- Requantisation: the accumulator times ``x_scale * w_scale[j]`` is the float pre-activation;
  bias, normalisation and activation functions run in float and the next layer quantises its
  input again with its own calibrated scale.  :func:`requantize` does the same in one step
  for code that wants int8 out.

Rounding is round-half-to-even (``torch.round``) everywhere. These functions are the int8
case of :class:`.formats.IntFormat` (``formats.INT8``); the array itself asks its format.
"""
from __future__ import annotations

import torch

from .formats import INT8

#: int8 range of weights (symmetric, -128 unused so that negation is closed)
W_QMAX = INT8.qmax
#: int8 range of activations
A_QMIN, A_QMAX = INT8.qmin, INT8.qmax
#: the largest |int8 x int8| product the array sees (activation -128 x weight 127)
MAX_PRODUCT = INT8.max_product


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8 quantisation of a weight whose dim 0 is the output channel.

    Returns ``(q, scale)``: ``q`` int8 with the shape of ``weight``, ``scale`` float32 of shape
    ``(out_channels,)``; ``weight ≈ q * scale[:, None, ...]``. An all-zero channel gets scale 1.
    """
    return INT8.quantize_weight(weight)


def activation_scale(max_abs: float) -> float:
    """Per-tensor activation scale from a calibrated magnitude (1.0 when nothing was seen)."""
    return INT8.activation_scale(max_abs)


def quantize_activation(x: torch.Tensor, scale: float, dtype: torch.dtype = torch.int8,
                        overflow: str = "saturate") -> torch.Tensor:
    """Symmetric per-tensor quantisation; values are clamped to ``[-128, 127]`` (``overflow``:
    ``"wrap"`` wraps them instead, ``"none"`` keeps them, see :mod:`.formats`; then ``dtype``
    must be a float or a wide enough integer type).

    ``dtype`` may be a float type: the result then holds the same exact integers, which is
    what the simulator's fast path multiplies (no int conversions).
    """
    return INT8.quantize(x, scale, dtype, overflow=overflow)


def dequantize_acc(acc: torch.Tensor, x_scale: float, w_scale: torch.Tensor) -> torch.Tensor:
    """Accumulators ``(..., N)`` to float: ``acc * x_scale * w_scale[j]``."""
    return INT8.dequantize(acc, float(x_scale) * w_scale.to(torch.float32))


def requantize(acc: torch.Tensor, x_scale: float, w_scale: torch.Tensor, out_scale: float,
               bias: torch.Tensor | None = None, overflow: str = "saturate") -> torch.Tensor:
    """int32 accumulators ``(..., N)`` to the next layer's operands: ``round((acc*sx*sw + b) / s_out)``,
    saturated to int8 (``overflow="wrap"``: wrapped; ``"none"``: unclipped, as int64)."""
    y = dequantize_acc(acc, x_scale, w_scale)
    if bias is not None:
        y = y + bias.to(torch.float32)
    return quantize_activation(y, out_scale, torch.int8 if overflow != "none" else torch.int64, overflow=overflow)

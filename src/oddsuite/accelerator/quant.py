"""int8 quantisation as the simulated accelerator uses it.

- Weights: symmetric, per output channel, int8 in ``[-127, 127]`` (``scale = max|w| / 127``).
- Activations: symmetric, per tensor, int8 in ``[-128, 127]``; the scale is calibrated
  from the largest magnitude seen on calibration inputs (``scale = max|x| / 127``).
- Products and partial sums: 32-bit signed accumulators (see :mod:`.systolic`).
- Requantisation: the accumulator times ``x_scale * w_scale[j]`` is the float pre-activation;
  bias, normalisation and activation functions run in float and the next layer quantises its
  input again with its own calibrated scale.  :func:`requantize` does the same in one step
  for code that wants int8 out.

Rounding is round-half-to-even (``torch.round``) everywhere.
"""
from __future__ import annotations

import numpy as np
import torch

#: int8 range of weights (symmetric, -128 unused so that negation is closed)
W_QMAX = 127
#: int8 range of activations
A_QMIN, A_QMAX = -128, 127
#: the largest |int8 x int8| product the array sees (activation -128 x weight 127)
MAX_PRODUCT = 128 * 127


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8 quantisation of a weight whose dim 0 is the output channel.

    Returns ``(q, scale)``: ``q`` int8 with the shape of ``weight``, ``scale`` float32 of shape
    ``(out_channels,)``; ``weight ≈ q * scale[:, None, ...]``. An all-zero channel gets scale 1.
    """
    w = weight.detach().float()
    amax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / W_QMAX, torch.ones_like(amax))
    shape = (-1,) + (1,) * (w.dim() - 1)
    q = torch.clamp(torch.round(w / scale.view(shape)), -W_QMAX, W_QMAX).to(torch.int8)
    return q, scale.float()


def activation_scale(max_abs: float) -> float:
    """Per-tensor activation scale from a calibrated magnitude (1.0 when nothing was seen)."""
    max_abs = float(max_abs)
    return max_abs / A_QMAX if max_abs > 0 and np.isfinite(max_abs) else 1.0


def quantize_activation(x: torch.Tensor, scale: float, dtype: torch.dtype = torch.int8) -> torch.Tensor:
    """Symmetric per-tensor quantisation; values are clamped to ``[-128, 127]``.

    ``dtype`` may be a float type: the result then holds the same exact integers, which is
    what the simulator's fast path multiplies (no int conversions).
    """
    q = torch.clamp(torch.round(x / scale), A_QMIN, A_QMAX)
    return q.to(dtype)


def dequantize_acc(acc: torch.Tensor, x_scale: float, w_scale: torch.Tensor) -> torch.Tensor:
    """Accumulators ``(..., N)`` to float: ``acc * x_scale * w_scale[j]``."""
    return acc.to(torch.float32) * (float(x_scale) * w_scale.to(torch.float32))


def requantize(acc: torch.Tensor, x_scale: float, w_scale: torch.Tensor, out_scale: float,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """int32 accumulators ``(..., N)`` to the next layer's int8: ``round((acc*sx*sw + b) / s_out)``."""
    y = dequantize_acc(acc, x_scale, w_scale)
    if bias is not None:
        y = y + bias.to(torch.float32)
    return quantize_activation(y, out_scale)


def wrap_int32(v: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap of an integer tensor to 32 bits (returned as int64)."""
    return v.to(torch.int64).to(torch.int32).to(torch.int64)

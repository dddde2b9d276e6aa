"""Number formats of the simulated array: how a float becomes an operand, and back.

GoldenEye's pattern (``num_sys_class.py``: a base ``_number_sys`` with ``real_to_format`` /
``format_to_real``, one subclass per format), made small, vectorised and exact. A format says

- ``bits``: the width of one operand (a weight or an activation);
- ``acc_bits``: the width of the accumulator partial sums flow through (the stuck-at faults
  sit on its bits);
- :meth:`quantize_weight` / :meth:`quantize` / :meth:`dequantize`: float ↔ operand values,
  held in a float tensor of exact integers where the array multiplies them;
- :meth:`flip_bits`: transient faults on the stored operand bits;
- ``max_product``: the largest ``|weight x activation|`` product, from which the array derives
  how long a float32 sum stays exact.

The **requantisation** of a layer's output into the next layer's input is selectable, because
it decides whether a corrupted accumulator reaches the next layer (seed ``002``; spec
``accelerator.md``). ``quantize(x, scale, overflow=...)``:

- ``"saturate"`` (default, a deployed int8 pipeline): ``clamp(round(x / s), qmin, qmax)``;
- ``"wrap"``: the value wrapped into the operand's two's-complement range (an int register
  that overflows): ``((round(x / s) - qmin) mod 2**bits) + qmin``;
- ``"none"`` (the seed's fixed-point arithmetic): ``round(x / s)`` carried at the
  accumulator's width, unclipped (wrapped only past ``2**(acc_bits - 1)``), so a corrupted
  accumulator goes on into the next layer's products.

:class:`IntFormat` is the symmetric integer format (``INT8``, the accelerator's default;
``INT4`` a narrower one). A float array (fp8, bf16) would be one more subclass whose
``quantize`` rounds to the format's grid (GoldenEye's ``real_to_format``); the stuck-at
replay of :mod:`.systolic` needs an integer accumulator (``integer_accumulator``), the
clean product, FAP and transient flips do not.

Rounding is round-half-to-even (``torch.round``) everywhere.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

#: requantisation modes (see the module doc); the first is the default
OVERFLOW_MODES = ("saturate", "wrap", "none")


def check_overflow(mode: str) -> str:
    """``mode`` if it is one of :data:`OVERFLOW_MODES`, else a ValueError naming them."""
    if mode not in OVERFLOW_MODES:
        raise ValueError(f"requantisation must be one of {OVERFLOW_MODES}, got {mode!r}")
    return mode


def wrap_to_bits(v: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's-complement wrap of integer values (any dtype holding integers) to ``bits`` bits;
    the result has ``v``'s dtype. Exact for ``|v| < 2**53`` in float64, any int64."""
    span = float(1 << bits) if v.is_floating_point() else (1 << bits)
    half = span / 2 if v.is_floating_point() else (1 << (bits - 1))
    return torch.remainder(v + half, span) - half


class NumberFormat(ABC):
    """One operand format of the array (see the module doc)."""

    #: short name (``int8``) used in results and on the command line
    name: str = ""
    #: bits of one stored operand
    bits: int = 8
    #: bits of the accumulator the partial sums flow through
    acc_bits: int = 32
    #: True when operands and partial sums are integers (what the stuck-at replay needs)
    integer_accumulator: bool = True

    @property
    @abstractmethod
    def max_product(self) -> float:
        """The largest ``|weight x activation|`` product of two in-range operands."""

    @property
    @abstractmethod
    def act_bound(self) -> float:
        """The largest operand magnitude a saturated activation can have."""

    @abstractmethod
    def quantize_weight(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q, scale)``: per-output-channel (dim 0) operands and float32 scales ``(out,)``."""

    @abstractmethod
    def activation_scale(self, max_abs: float) -> float:
        """Per-tensor activation scale from a calibrated magnitude."""

    @abstractmethod
    def quantize(self, x: torch.Tensor, scale: float, dtype: torch.dtype = torch.float32,
                 overflow: str = "saturate") -> torch.Tensor:
        """Float activations to operand values (``dtype``; a float dtype holds them exactly)."""

    def dequantize(self, q: torch.Tensor, scale) -> torch.Tensor:
        """Operand values (or accumulators) back to float32: ``q * scale``."""
        return q.to(torch.float32) * scale

    @abstractmethod
    def flip_bits(self, q: torch.Tensor, rate: float, rng: np.random.Generator) -> torch.Tensor:
        """Transient faults: flip each stored bit of ``q`` with probability ``rate`` (a copy)."""

    def describe(self) -> dict:
        return {"name": self.name, "bits": int(self.bits), "acc_bits": int(self.acc_bits)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class IntFormat(NumberFormat):
    """Symmetric signed integers of ``bits`` bits (2..8) and a 32-bit two's-complement accumulator.

    Weights: per output channel in ``[-(2**(b-1) - 1), 2**(b-1) - 1]`` (the most negative
    value unused, so negation is closed), ``scale = max|w| / qmax``; an all-zero channel gets
    scale 1. Activations: per tensor in ``[-2**(b-1), 2**(b-1) - 1]``, ``scale = max|x| / qmax``
    from calibration (1.0 when nothing was seen).
    """

    def __init__(self, bits: int = 8, acc_bits: int = 32):
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"integer operands of 2..8 bits are modelled, got {bits}")
        if int(acc_bits) != 32:
            raise ValueError(f"the array's replay is written for a 32-bit accumulator, got {acc_bits}")
        self.bits, self.acc_bits = int(bits), int(acc_bits)
        self.name = f"int{self.bits}"
        self.qmax = (1 << (self.bits - 1)) - 1
        self.qmin = -(1 << (self.bits - 1))

    @property
    def max_product(self) -> int:
        return -self.qmin * self.qmax

    @property
    def act_bound(self) -> int:
        return -self.qmin

    def quantize_weight(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = weight.detach().float()
        amax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
        scale = torch.where(amax > 0, amax / self.qmax, torch.ones_like(amax))
        shape = (-1,) + (1,) * (w.dim() - 1)
        q = torch.clamp(torch.round(w / scale.view(shape)), -self.qmax, self.qmax).to(torch.int8)
        return q, scale.float()

    def activation_scale(self, max_abs: float) -> float:
        max_abs = float(max_abs)
        return max_abs / self.qmax if max_abs > 0 and np.isfinite(max_abs) else 1.0

    def quantize(self, x: torch.Tensor, scale: float, dtype: torch.dtype = torch.float32,
                 overflow: str = "saturate") -> torch.Tensor:
        q = torch.round(x / scale)
        if overflow == "saturate":
            q = torch.clamp(q, self.qmin, self.qmax)
        elif overflow == "wrap":
            q = wrap_to_bits(q.to(torch.float64), self.bits)
        elif overflow == "none":
            q = wrap_to_bits(q.to(torch.float64).nan_to_num(0.0), self.acc_bits)
        else:
            check_overflow(overflow)
        return q.to(dtype)

    def flip_bits(self, q: torch.Tensor, rate: float, rng: np.random.Generator) -> torch.Tensor:
        """Flip each of the ``bits`` stored bits of every value (two's complement) with probability
        ``rate``; ``q`` is an integer tensor or a float tensor holding in-range values."""
        if rate <= 0 or q.numel() == 0:
            return q.clone()
        b = self.bits
        n_bits = q.numel() * b
        n = int(rng.binomial(n_bits, min(float(rate), 1.0)))
        flat = (q.detach().reshape(-1).to(torch.int64).numpy() & ((1 << b) - 1)).astype(np.int64)
        if n:
            pos = np.unique(rng.integers(0, n_bits, size=n, dtype=np.int64))
            np.bitwise_xor.at(flat, pos // b, (1 << (pos % b)).astype(np.int64))
        flat = np.where(flat >= (1 << (b - 1)), flat - (1 << b), flat)
        return torch.from_numpy(flat).reshape(q.shape).to(q.dtype)


#: the accelerator's format: int8 operands, 32-bit accumulators
INT8 = IntFormat(8)
#: a narrower integer array (4-bit operands)
INT4 = IntFormat(4)

#: formats by name (``--format``-style lookups); a new format registers here
FORMATS: dict[str, NumberFormat] = {f.name: f for f in (INT8, INT4)}


def number_format(name_or_format: str | NumberFormat | None) -> NumberFormat:
    """The format named ``name`` (or the one given; None is int8); ValueError names the known ones."""
    if name_or_format is None:
        return INT8
    if isinstance(name_or_format, NumberFormat):
        return name_or_format
    try:
        return FORMATS[str(name_or_format).lower()]
    except KeyError:
        raise ValueError(f"number format must be one of {sorted(FORMATS)}, got {name_or_format!r}") from None

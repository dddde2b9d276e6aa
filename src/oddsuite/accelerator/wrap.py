"""Run a torch module with every Conv2d and Linear on the simulated int8 systolic array.

:func:`accelerate` returns a copy of the module (same class, so code that inspects it —
ultralytics' ``stride``, ``names``, the Detect head — keeps working) in which every
``nn.Conv2d`` (lowered by im2col with ``F.unfold``; grouped convolutions run one product per
group) and every ``nn.Linear`` is replaced by an accelerated layer; all other layers run in
float as usual. The layers share one :class:`Accelerator`, the "chip": one array, one fault
map, one mitigation, one timing-error setting (static mapping: every layer uses the same PEs).

Each accelerated layer quantises its input per tensor (scale calibrated on real inputs, see
:meth:`Accelerator.calibrating`), multiplies int8 by its per-output-channel int8 weights on
the array into 32-bit accumulators, and dequantises (``acc * x_scale * w_scale[j]``) before
adding the bias in float. BatchNorm is folded into the convolutions first when the module has
an ultralytics-style ``fuse()`` (as a real int8 deployment does); otherwise BN runs in float.

Modes: ``"int8"`` (default, simulated), ``"calibrate"`` (float, recording input ranges),
``"float"`` (the original float layers, for comparison).
"""
from __future__ import annotations

import contextlib
import copy
import logging
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .faults import FaultMap, TimingErrors, flip_bits_int8
from .quant import activation_scale, quantize_activation, quantize_weight
from .systolic import MITIGATIONS, RunStats, SystolicArray

log = logging.getLogger(__name__)

MODES = ("int8", "calibrate", "float")


class TransientFlips:
    """Transient bit flips: each bit of each int8 weight (flipped once per configuration) and of
    each int8 activation (flipped anew on every call) flips with the given probability."""

    def __init__(self, weight_rate: float = 0.0, act_rate: float = 0.0, seed: int = 0):
        self.weight_rate, self.act_rate, self.seed = float(weight_rate), float(act_rate), int(seed)

    def to_dict(self) -> dict:
        return {"weight_rate": self.weight_rate, "act_rate": self.act_rate, "seed": self.seed}


class Accelerator:
    """State shared by the accelerated layers of one module (one simulated chip)."""

    def __init__(self, array: SystolicArray):
        self.array = array
        self.mode = "int8"
        self.faults: FaultMap | None = None
        self.mitigation = "none"
        self.timing: TimingErrors | None = None
        self.transient: TransientFlips | None = None
        self.stats = RunStats()
        self.layers: list[_AccelLayer] = []
        self.calibrated = False

    def configure(self, faults: FaultMap | None = None, mitigation: str = "none",
                  timing: TimingErrors | None = None, transient: TransientFlips | None = None) -> "Accelerator":
        """Set the fault state of the chip (replaces the previous one) and reset counters.

        ``mitigation``: ``"none"`` or ``"fap"`` for stuck-at maps; TE-Drop is chosen by
        ``timing.mode == "te-drop"``.
        """
        if mitigation not in MITIGATIONS:
            raise ValueError(f"mitigation must be one of {MITIGATIONS}, got {mitigation!r}")
        if faults is not None and (faults.rows, faults.cols) != (self.array.rows, self.array.cols):
            raise ValueError(f"fault map is for {faults.rows}x{faults.cols}, the array is {self.array.rows}x{self.array.cols}")
        if faults is not None and len(faults) and timing is not None:
            raise ValueError("timing errors together with a stuck-at fault map are not modelled")
        self.faults = faults if faults is not None and len(faults) else None
        self.mitigation = mitigation
        self.timing = timing if timing is not None and timing.rate > 0 else None
        self.transient = transient
        self.stats = RunStats()
        for layer in self.layers:
            layer._configure()
        return self

    def describe(self) -> dict:
        return {"array": f"{self.array.rows}x{self.array.cols}",
                "faulty_pes": 0 if self.faults is None else len(self.faults.faulty_pes),
                "mitigation": self.mitigation,
                "timing": None if self.timing is None else self.timing.to_dict(),
                "transient": None if self.transient is None else self.transient.to_dict()}

    @contextlib.contextmanager
    def calibrating(self) -> Iterator["Accelerator"]:
        """Inside, forward passes run in float and record each layer's input range; on exit
        the activation scales are set and the mode returns to int8."""
        for layer in self.layers:
            layer.x_amax.zero_()
        prev, self.mode = self.mode, "calibrate"
        try:
            yield self
        finally:
            self.mode = prev if prev != "calibrate" else "int8"
        unseen = [layer.layer_name for layer in self.layers if float(layer.x_amax) == 0.0]
        if unseen:
            log.warning("calibration saw no (non-zero) input for %d layer(s), e.g. %s; their scale is 1.0",
                        len(unseen), unseen[:3])
        self.calibrated = True

    def calibrate(self, run: Callable[[], object]) -> "Accelerator":
        """Calibrate by calling ``run()`` (which runs the module's forward on calibration data)."""
        with self.calibrating():
            with torch.no_grad():
                run()
        return self

    @contextlib.contextmanager
    def in_mode(self, mode: str) -> Iterator["Accelerator"]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        prev, self.mode = self.mode, mode
        try:
            yield self
        finally:
            self.mode = prev


class _AccelLayer(nn.Module):
    """Common part of the accelerated Linear / Conv2d."""

    def _setup(self, src: nn.Module, acc: Accelerator, index: int, name: str) -> None:
        self.acc = [acc]  # a list so nn.Module does not register it; shared, not copied per layer
        self.index = index
        self.layer_name = name
        self.weight = nn.Parameter(src.weight.detach().clone(), requires_grad=False)
        self.bias = None if src.bias is None else nn.Parameter(src.bias.detach().clone(), requires_grad=False)
        self.register_buffer("x_amax", torch.zeros(()))
        self.calls = 0
        q, s = quantize_weight(self.weight)
        self.register_buffer("w_q", q)          # int8, the weight's own shape
        self.register_buffer("w_scale", s)      # (out,)
        self._configure()

    @property
    def accelerator(self) -> Accelerator:
        return self.acc[0]

    def _mats(self) -> list[torch.Tensor]:
        """The weight as ``(K, N)`` float matrices of int8 values, one per group."""
        raise NotImplementedError

    def _configure(self) -> None:
        acc = self.accelerator
        self.calls = 0
        w = self.w_q
        if acc.transient is not None and acc.transient.weight_rate > 0:
            rng = np.random.default_rng(np.random.SeedSequence([acc.transient.seed, 1, self.index]))
            w = flip_bits_int8(w, acc.transient.weight_rate, rng)
        self._w_eff = w
        mats = self._mats_of(w)  # W^T per group: (N_g, K_g)
        self._plans = [None] * len(mats)
        if acc.faults is not None and acc.mitigation == "fap":
            # FAP: the weights on faulty PEs are zeroed once; the bypassed PEs then add nothing
            mats = [m.masked_fill(acc.array.faulty_weight_mask(m.shape[1], m.shape[0], acc.faults).t(), 0.0)
                    for m in mats]
        elif acc.faults is not None:
            self._plans = [acc.array.plan_stuck_at_t(m, acc.faults) for m in mats]
        self._w_mats = mats

    def _mats_of(self, w: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def _x_scale(self) -> float:
        return activation_scale(float(self.x_amax))

    def _product(self, XT: torch.Tensor, g: int, part: int = 0) -> torch.Tensor:
        """Float ``(N_g, M)`` pre-activations (no bias) of group ``g`` for int8 inputs ``XT (K_g, M)``
        (``part``: the image of a batch that a convolution runs one by one)."""
        acc = self.accelerator
        WT = self._w_mats[g]
        rng = None
        if acc.timing is not None:
            rng = np.random.default_rng(np.random.SeedSequence([acc.timing.seed, 0, self.index, g, self.calls, part]))
        stuck = acc.faults if acc.mitigation == "none" else None  # FAP is already in the weights
        a = acc.array.accumulate_t(XT, WT, faults=stuck, timing=acc.timing, rng=rng, stats=acc.stats,
                                   plan=self._plans[g], exact=False)
        n0 = g * WT.shape[0]
        scale = self._x_scale() * self.w_scale[n0:n0 + WT.shape[0]]
        return a.to(torch.float32).mul_(scale[:, None]) if a.dtype != torch.float32 else a * scale[:, None]

    def _quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        acc = self.accelerator
        xq = quantize_activation(x.float(), self._x_scale(), torch.float32)
        if acc.transient is not None and acc.transient.act_rate > 0:
            rng = np.random.default_rng(np.random.SeedSequence([acc.transient.seed, 2, self.index, self.calls]))
            xq = flip_bits_int8(xq, acc.transient.act_rate, rng)
        return xq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.accelerator.mode
        if mode == "calibrate":
            self.x_amax.copy_(torch.maximum(self.x_amax, x.detach().abs().max().float()))
            return self._float(x)
        if mode == "float":
            return self._float(x)
        y = self._int8(x)
        self.calls += 1
        return y


class AccelLinear(_AccelLayer):
    def __init__(self, src: nn.Linear, acc: Accelerator, index: int, name: str = ""):
        super().__init__()
        self.in_features, self.out_features = src.in_features, src.out_features
        self._setup(src, acc, index, name)

    def _mats_of(self, w):
        return [w.to(torch.float32).contiguous()]

    def _float(self, x):
        return F.linear(x, self.weight, self.bias)

    def _int8(self, x):
        shape = x.shape
        X = self._quantize_input(x).reshape(-1, self.in_features)
        y = self._product(X.t(), 0).t()
        if self.bias is not None:
            y = y + self.bias.float()
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, simulated int8"


class AccelConv2d(_AccelLayer):
    def __init__(self, src: nn.Conv2d, acc: Accelerator, index: int, name: str = ""):
        super().__init__()
        for k in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                  "padding_mode"):
            setattr(self, k, getattr(src, k))
        self._rpad = getattr(src, "_reversed_padding_repeated_twice", None)
        self._setup(src, acc, index, name)

    def _mats_of(self, w):
        g = self.groups
        n_g = self.out_channels // g
        w2 = w.to(torch.float32).reshape(self.out_channels, -1)  # (N, Cin/g*kh*kw): W^T
        return [w2[i * n_g:(i + 1) * n_g].contiguous() for i in range(g)]

    def _float(self, x):
        if self.padding_mode != "zeros":
            return F.conv2d(F.pad(x, self._rpad, mode=self.padding_mode), self.weight, self.bias, self.stride,
                            0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _int8(self, x):
        B = x.shape[0]
        xq = self._quantize_input(x)
        padding = self.padding
        if self.padding_mode != "zeros":
            xq = F.pad(xq, self._rpad, mode=self.padding_mode)
            padding = 0
        if isinstance(padding, str):  # "same" / "valid"
            if padding == "valid":
                padding = 0
            else:
                pads = []
                for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                    total = d * (k - 1)
                    pads += [total // 2, total - total // 2]
                xq = F.pad(xq, pads)
                padding = 0
        H, W = xq.shape[-2:]
        kh, kw = self.kernel_size
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        sh, sw = self.stride
        dh, dw = self.dilation
        Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if kh == kw == 1 and ph == pw == 0 and sh == sw == 1:
            cols = xq.reshape(B, self.in_channels, H * W)  # 1x1: no unfold needed
        else:
            cols = F.unfold(xq, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))  # (B, Cin*kh*kw, L)
        L = cols.shape[-1]
        K = cols.shape[1]
        k_g = K // self.groups
        # one product per image and group: im2col's (K, L) block is the array's X^T as it comes,
        # and the (N, L) result is the image's output layout
        y = torch.empty(B, self.out_channels, L, dtype=torch.float32)
        n_g = self.out_channels // self.groups
        for b in range(B):
            for g in range(self.groups):
                y[b, g * n_g:(g + 1) * n_g] = self._product(cols[b, g * k_g:(g + 1) * k_g], g, b)
        if self.bias is not None:
            y += self.bias.float()[None, :, None]
        return y.view(B, self.out_channels, Ho, Wo).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}, simulated int8")


def _fuse_bn(module: nn.Module) -> None:
    fuse = getattr(module, "fuse", None)
    if callable(fuse):
        try:
            fuse(verbose=False)
        except TypeError:
            fuse()


def accelerate(module: nn.Module, array: SystolicArray | None = None, *, fuse: bool = True,
               exclude: Callable[[str, nn.Module], bool] | None = None, inplace: bool = False) -> nn.Module:
    """A copy of ``module`` with every Conv2d and Linear executed on the simulated ``array``
    (default 256x256). ``exclude(name, layer)`` keeps chosen layers in float. The copy is in
    eval mode; its :class:`Accelerator` is ``accelerator_of(copy)``. Calibrate before use."""
    array = array or SystolicArray(256, 256)
    m = module if inplace else copy.deepcopy(module)
    m.eval()
    if fuse:
        _fuse_bn(m)
    acc = Accelerator(array)
    targets = [(name, sub) for name, sub in m.named_modules()
               if isinstance(sub, (nn.Conv2d, nn.Linear)) and not isinstance(sub, _AccelLayer)
               and not (exclude is not None and exclude(name, sub))]
    for index, (name, sub) in enumerate(targets):
        new = (AccelConv2d if isinstance(sub, nn.Conv2d) else AccelLinear)(sub, acc, index, name)
        new.to(sub.weight.device)
        parent_name, _, child = name.rpartition(".")
        parent = m.get_submodule(parent_name) if parent_name else m
        if parent is m and not parent_name and name == "":
            raise ValueError("accelerate() needs a module that contains Conv2d/Linear layers, not a bare layer")
        setattr(parent, child, new)
        acc.layers.append(new)
    if not acc.layers:
        log.warning("accelerate(): %s has no Conv2d or Linear layer", type(module).__name__)
    m.__dict__["accelerator"] = acc
    return m


def accelerator_of(module: nn.Module) -> Accelerator:
    acc = module.__dict__.get("accelerator")
    if not isinstance(acc, Accelerator):
        raise ValueError(f"{type(module).__name__} was not made by accelerate()")
    return acc

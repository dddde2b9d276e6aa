"""Fault models of the simulated array: one class each, and the questions the array asks them.

The array (:mod:`.systolic`) owns the data flow — the clean product, the clean partial sums at
chosen PE rows, folding corrections back into the accumulators. A fault model owns what goes
wrong, and answers the array's questions (seed ``002`` section 2; spec ``accelerator.md``):

- :meth:`FaultModel.weights` — what happens to the stationary weights of a layer (FAP's
  pruning, transient flips), asked once per configuration;
- :meth:`FaultModel.inputs` — what happens to the activations entering the array, per call;
- :class:`ColumnSegmentFault` (permanent, per PE): :meth:`~ColumnSegmentFault.pe_payloads`
  "which PEs do you touch" (and the data the corruption needs), and
  :meth:`~ColumnSegmentFault.corrupt` "replay this column segment": what the faulty PE
  outputs for the partial sums reaching it. The array replays only the output columns whose
  PE column holds one of them, from the first faulty row down;
- :class:`MacEventFault` (per call): :meth:`~MacEventFault.events` "which MAC operations fail
  in this call", and :meth:`~MacEventFault.replay` "replay these passes": the change each
  failing column pass makes to its output, from the clean products and prefix sums the
  array gathers for just those events.

Kinds here: :class:`StuckAt` (stuck-at-0/1 bits of a PE's 32-bit partial sum),
:class:`TimingErrorPropagation` (a failing MAC's result loses its top bits and flows on),
:class:`TransientFlips` (bit flips of int8 weights and activations, as PyTorchFI does); and
the mitigated forms :class:`FapBypass` (FAP: weights on faulty PEs pruned, PEs bypassed) and
:class:`TimingErrorDrop` (TE-Drop), which :mod:`.mitigation`'s :class:`~.mitigation.FAP` and
:class:`~.mitigation.TEDrop` make from the first two.

A new fault model is one new file with one subclass, plus one registration line
(:func:`register_fault_model`); ``tests/test_accelerator_formats.py`` adds a toy one.
"""
from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .faults import FaultMap, TimingEvents, sample_timing_events


@dataclass
class CallContext:
    """What a fault model may need to know about one call: the layer, its group (of ``groups``:
    the weight matrix a hook sees stacks the groups' ``W^T`` row blocks), the call and image
    index (seeds of per-call randomness derive from them), a generator and the number format."""

    layer: int = 0
    group: int = 0
    groups: int = 1
    call: int = 0
    part: int = 0
    rng: np.random.Generator | None = None
    format: Any = None


class FaultModel(ABC):
    """A fault of the array. Every method has a harmless default: a model overrides what it does."""

    #: registry name (``stuck-at``, ``timing``, ...)
    name: ClassVar[str] = ""
    #: True when it changes products through the replay (not only weights or inputs)
    replays: ClassVar[bool] = False

    def check(self, array) -> None:
        """Raise ValueError if the model does not fit ``array`` (e.g. a map for another size)."""

    def weights(self, array, WT: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        """The weights ``WT (N, K)`` (operand values) as the array holds them; asked once per
        configuration."""
        return WT

    def inputs(self, XT: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        """The activations ``XT (K, M)`` as they enter the array; asked on every call."""
        return XT

    def to_dict(self) -> dict:
        return {"model": self.name}


class ColumnSegmentFault(FaultModel):
    """A permanent fault of individual PEs: every partial sum leaving the PE is corrupted.

    The array replays the affected column segments (see :mod:`.systolic`): for the faulty rows
    ``r_1 < ... < r_n`` of a column it computes the clean prefixes ``P_i`` and runs
    ``s_i = corrupt(s_{i-1} + P_i - P_{i-1})`` with this model's :meth:`corrupt`.
    """

    replays = True

    def pe_payloads(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """``{(row, col): payload}`` of every faulty PE; the payload is a tuple of signed 32-bit
        ints handed back to :meth:`corrupt` (its length is the same for every PE)."""
        raise NotImplementedError

    def corrupt(self, v: torch.Tensor, payload: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """What the faulty PEs output for the partial sums ``v (T, F, m)`` (integer dtype,
        32-bit values) reaching them; ``payload`` holds one ``(F, 1)`` tensor per payload
        field. May work in place on ``v`` (the array hands it a tensor it owns)."""
        raise NotImplementedError


class MacEventFault(FaultModel):
    """Faults of individual MAC operations, drawn anew on every call."""

    replays = True
    rate: float = 0.0
    seed: int = 0

    def events(self, M: int, T: int, R: int, N: int, rng: np.random.Generator) -> TimingEvents:
        """The failing MACs among ``M x T x R x N`` operations of this call."""
        return sample_timing_events(M, T, R, N, self.rate, rng)

    def replay(self, passes) -> tuple[np.ndarray, torch.Tensor, int]:
        """For the failing MACs in ``passes`` (a :class:`~.systolic.EventPasses`: events sorted
        by column pass, with the clean products and prefixes the array gathers for them):
        ``(event indices whose pass output changes, int64 deltas, effective failures)``."""
        raise NotImplementedError


# --------------------------------------------------------------------------- permanent stuck-at


class StuckAt(ColumnSegmentFault):
    """Stuck-at-0/1 bits of PEs' 32-bit partial sums (:class:`~.faults.FaultMap`)."""

    name = "stuck-at"

    def __init__(self, fault_map: FaultMap):
        self.fault_map = fault_map

    def check(self, array) -> None:
        if (self.fault_map.rows, self.fault_map.cols) != (array.rows, array.cols):
            raise ValueError(f"fault map is for a {self.fault_map.rows}x{self.fault_map.cols} array, "
                             f"this one is {array.rows}x{array.cols}")

    def pe_payloads(self) -> dict[tuple[int, int], tuple[int, int]]:
        """``(and_mask, or_mask)`` per faulty PE: ``out = (v & and) | or``."""
        return self.fault_map.pe_masks()

    def corrupt(self, v: torch.Tensor, payload: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a, o = payload
        v &= a
        v |= o
        return v

    def to_dict(self) -> dict:
        return {"model": self.name, "faulty_pes": len(self.fault_map.faulty_pes), "seed": self.fault_map.seed}


class FapBypass(FaultModel):
    """FAP applied to a fault map: weights mapped to faulty PEs are zero and those PEs bypassed,
    so the product is the clean product of the pruned weights (nothing to replay)."""

    name = "fap"

    def __init__(self, fault_map: FaultMap):
        self.fault_map = fault_map

    def check(self, array) -> None:
        StuckAt(self.fault_map).check(array)

    def weights(self, array, WT: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        n_g = WT.shape[0] // max(1, ctx.groups)  # each group is its own (K, N/groups) product
        mask = array.faulty_weight_mask(WT.shape[1], n_g, self.fault_map).t()
        return WT.masked_fill(mask.repeat(max(1, ctx.groups), 1), 0.0)

    def to_dict(self) -> dict:
        return {"model": self.name, "faulty_pes": len(self.fault_map.faulty_pes), "seed": self.fault_map.seed}


# --------------------------------------------------------------------------- timing errors


class TimingErrorPropagation(MacEventFault):
    """Timing error propagation (TEP): a failing MAC latches its result with the top bits lost
    (only the low ``keep_bits`` bits of the correct 32-bit sum arrive), and the erroneous
    value flows on down the column."""

    name = "timing"

    def __init__(self, rate: float, keep_bits: int = 16, seed: int = 0):
        self.rate, self.keep_bits, self.seed = float(rate), int(keep_bits), int(seed)

    def replay(self, passes) -> tuple[np.ndarray, torch.Tensor, int]:
        low = (1 << self.keep_bits) - 1
        P = passes.prefixes()                     # clean partial sum after each failing MAC
        rank = passes.rank
        n = len(rank)
        s = torch.zeros(n, dtype=torch.int64)     # corrupted partial sum after each event
        changed = torch.zeros(n, dtype=torch.bool)
        for k in range(int(rank.max()) + 1):
            idx = torch.from_numpy(np.nonzero(rank == k)[0])
            if k == 0:
                v = P[idx]
            else:  # previous event of the same pass: its corrupted value plus the clean rows between
                v = s[idx - 1] + P[idx] - P[idx - 1]
            v = _wrap32(v)
            e = v & low
            changed[idx] = e != v
            s[idx] = e
        li = passes.last_of_pass()
        return li, s[li] - P[li], int(changed.sum())

    def to_dict(self) -> dict:
        return {"model": self.name, "mode": "propagate", "rate": self.rate, "keep_bits": self.keep_bits,
                "seed": self.seed}


class TimingErrorDrop(MacEventFault):
    """TE-Drop: the failing MAC's own contribution is added correctly by stealing the next
    cycle from its successor in the column, whose product is dropped. A failure of a MAC
    whose product is already being dropped has no effect; one in the bottom PE row drops
    nothing (its successor is the accumulator)."""

    name = "timing"

    def __init__(self, rate: float, seed: int = 0):
        self.rate, self.seed = float(rate), int(seed)

    def replay(self, passes) -> tuple[np.ndarray, torch.Tensor, int]:
        r, first, R = passes.r, passes.new_pass, passes.R
        effective = np.ones(len(r), dtype=bool)
        adj = np.nonzero((~first[1:]) & (r[1:] == r[:-1] + 1))[0] + 1
        for i in adj:  # ascending: effective[i-1] is final
            effective[i] = not effective[i - 1]
        effective &= r < R - 1
        e = np.nonzero(effective)[0]
        dprod = passes.successor_products(e)
        return e, -dprod.to(torch.int64), int((dprod != 0).sum())

    def to_dict(self) -> dict:
        return {"model": self.name, "mode": "te-drop", "rate": self.rate, "seed": self.seed}


# --------------------------------------------------------------------------- transient flips


class TransientFlips(FaultModel):
    """Transient bit flips: each bit of each stored weight (flipped once per configuration) and
    of each activation (flipped anew on every call) flips with the given probability."""

    name = "transient"

    def __init__(self, weight_rate: float = 0.0, act_rate: float = 0.0, seed: int = 0):
        self.weight_rate, self.act_rate, self.seed = float(weight_rate), float(act_rate), int(seed)

    def weights(self, array, WT: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        if self.weight_rate <= 0:
            return WT
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1, ctx.layer]))
        return array.format.flip_bits(WT, self.weight_rate, rng)

    def inputs(self, XT: torch.Tensor, ctx: CallContext) -> torch.Tensor:
        if self.act_rate <= 0:
            return XT
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 2, ctx.layer, ctx.call]))
        return ctx.format.flip_bits(XT, self.act_rate, rng)

    def to_dict(self) -> dict:
        return {"weight_rate": self.weight_rate, "act_rate": self.act_rate, "seed": self.seed}


def _wrap32(v: torch.Tensor) -> torch.Tensor:
    return v.to(torch.int64).to(torch.int32).to(torch.int64)


#: fault models by name; a new one registers here (one line)
FAULT_MODELS: dict[str, type[FaultModel]] = {}


def register_fault_model(cls: type[FaultModel]) -> type[FaultModel]:
    """Register a fault model class under its ``name`` (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name to register under")
    FAULT_MODELS.setdefault(cls.name, cls)
    return cls


for _cls in (StuckAt, FapBypass, TimingErrorPropagation, TransientFlips):
    register_fault_model(_cls)

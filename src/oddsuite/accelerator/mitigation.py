"""Mitigations over the fault-model interface (FAP, TE-Drop), FAP masks and FAP+T fine-tuning.

A :class:`Mitigation` turns a fault model into the mitigated one the array runs (seed ``002``
section 2.2): :class:`FAP` makes a :class:`~.fault_models.StuckAt` a
:class:`~.fault_models.FapBypass` (every weight mapped to a faulty PE zeroed, the PE bypassed),
:class:`TEDrop` makes a :class:`~.fault_models.TimingErrorPropagation` a
:class:`~.fault_models.TimingErrorDrop`. :func:`fault_models` builds the list an
:class:`~.wrap.Accelerator` (or one :meth:`~.systolic.SystolicArray.accumulate_t` call) runs
from the classic settings (a fault map, a mitigation name, a timing setting, transient flips).

FAP+T first fine-tunes the float model with the FAP weights held at zero, then runs it with
FAP: the pruning mask of a layer is the layer's weight-to-PE mapping evaluated on the chip's
fault map (static mapping, one fine-tuned model per chip).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from .fault_models import (FapBypass, FaultModel, MacEventFault, StuckAt, TimingErrorDrop, TimingErrorPropagation,
                           TransientFlips)
from .faults import FaultMap, TimingErrors, TimingEvents

if TYPE_CHECKING:
    from .systolic import SystolicArray

#: mitigation names of stuck-at maps (``none`` or ``fap``)
MITIGATIONS = ("none", "fap")


class Mitigation(ABC):
    """A mitigation of one kind of fault: ``apply(fault) -> the fault model the array runs``."""

    name: ClassVar[str] = ""
    applies_to: ClassVar[tuple[type, ...]] = ()

    def apply(self, fault: FaultModel) -> FaultModel:
        if not isinstance(fault, self.applies_to):
            raise ValueError(f"{self.name} mitigates {', '.join(c.name for c in self.applies_to)} faults, "
                             f"not {type(fault).__name__}")
        return self._apply(fault)

    @abstractmethod
    def _apply(self, fault: FaultModel) -> FaultModel:
        ...


class FAP(Mitigation):
    """Fault-aware pruning: weights on faulty PEs are zeroed and the PEs bypassed."""

    name = "fap"
    applies_to = (StuckAt,)

    def _apply(self, fault: FaultModel) -> FaultModel:
        return FapBypass(fault.fault_map)  # type: ignore[attr-defined]


class TEDrop(Mitigation):
    """TE-Drop: a failing MAC steals its successor's cycle; the successor's product is dropped."""

    name = "te-drop"
    applies_to = (TimingErrorPropagation,)

    def _apply(self, fault: FaultModel) -> FaultModel:
        return TimingErrorDrop(fault.rate, seed=fault.seed)  # type: ignore[attr-defined]


def timing_model(timing: TimingErrors) -> FaultModel:
    """The fault model of a :class:`~.faults.TimingErrors` setting (``te-drop`` mode: TE-Drop applied)."""
    tep = TimingErrorPropagation(timing.rate, keep_bits=timing.keep_bits, seed=timing.seed)
    return TEDrop().apply(tep) if timing.mode == "te-drop" else tep


def fault_models(faults: FaultMap | None = None, mitigation: str = "none", timing: TimingErrors | None = None,
                 transient: TransientFlips | None = None,
                 events: TimingEvents | None = None) -> list[FaultModel]:
    """The fault models of the classic settings, in the order the array asks them (transient
    weight flips before FAP's pruning, as a chip's stored weights are what its PEs see).

    ``events`` (explicit failing MACs, for tests) stand for ``timing``'s sampling; their mode is
    ``timing``'s (default ``propagate``, keeping 16 bits).
    """
    if mitigation not in MITIGATIONS:
        raise ValueError(f"mitigation must be one of {MITIGATIONS}, got {mitigation!r}")
    if faults is not None and len(faults) == 0:
        faults = None
    if (timing is not None or events is not None) and faults is not None:
        raise ValueError("timing errors together with a stuck-at fault map are not modelled")
    out: list[FaultModel] = []
    if transient is not None:
        out.append(transient)
    if faults is not None:
        out.append(FAP().apply(StuckAt(faults)) if mitigation == "fap" else StuckAt(faults))
    if timing is not None or events is not None:
        model = timing_model(timing if timing is not None else TimingErrors(0.0))
        if events is not None:
            model = FixedEvents(model, events)
        out.append(model)
    return out


class FixedEvents(MacEventFault):
    """A timing fault model whose failing MACs are given (the same on every call), not drawn."""

    def __init__(self, model: MacEventFault, events: TimingEvents):
        self.model, self.fixed = model, events
        self.name = model.name
        self.rate, self.seed = model.rate, model.seed

    def events(self, M: int, T: int, R: int, N: int, rng) -> TimingEvents:
        return self.fixed

    def replay(self, passes):
        return self.model.replay(passes)

    def to_dict(self) -> dict:
        return {**self.model.to_dict(), "events": len(self.fixed)}


def weight_pe_mask(weight_shape: tuple[int, ...], groups: int, array: SystolicArray, faults: FaultMap) -> torch.Tensor:
    """Bool mask in a Linear/Conv2d weight's own shape: True where the weight sits on a faulty PE.

    The layer's matrix has ``K = in/groups * kh * kw`` rows (the flattened weight of one output
    channel) and ``N/groups`` columns per group; ``W[k, j]`` lives in PE ``(k mod R, j mod C)``.
    """
    N = weight_shape[0]
    K = int(np.prod(weight_shape[1:]))
    n_g = N // groups
    grid = torch.from_numpy(faults.pe_grid())
    rk = torch.arange(K) % array.rows
    cj = (torch.arange(N) % n_g) % array.cols
    return grid[rk][:, cj].t().reshape(weight_shape)


def fap_masks(model: nn.Module, array: SystolicArray, faults: FaultMap) -> dict[str, torch.Tensor]:
    """``{parameter name: pruned mask}`` for every Conv2d / Linear weight of a float model, in
    the same layer order as :func:`accelerate` maps them."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            groups = getattr(m, "groups", 1)
            out[f"{name}.weight" if name else "weight"] = weight_pe_mask(tuple(m.weight.shape), groups, array, faults)
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].masked_fill_(mask.to(params[name].device), 0.0)


def fine_tune_with_masks(model: nn.Module, masks: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor, *,
                         epochs: int = 5, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                         loss_fn: Callable = nn.functional.cross_entropy) -> nn.Module:
    """FAP+T for a classifier trained on ``(X, y)``: prune the masked weights, fine-tune with
    the mask held fixed (gradients of pruned weights zeroed, weights re-zeroed after each
    step). Modifies and returns ``model``."""
    params = dict(model.named_parameters())
    apply_masks(model, masks)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(int(seed))
    model.train()
    n = len(X)
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            for name, mask in masks.items():
                if params[name].grad is not None:
                    params[name].grad.masked_fill_(mask, 0.0)
            opt.step()
            apply_masks(model, masks)  # Adam's momentum must not revive pruned weights
    model.eval()
    return model

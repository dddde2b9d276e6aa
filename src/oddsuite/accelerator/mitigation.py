"""Fault-aware pruning: FAP masks for a float model, and FAP+T fine-tuning.

FAP itself runs on the array (``Accelerator.configure(faults, mitigation="fap")`` zeroes the
weights mapped to faulty PEs and bypasses those PEs). FAP+T first fine-tunes the float model
with those same weights held at zero, then runs it with FAP: the pruning mask of a layer is
the layer's weight-to-PE mapping evaluated on the chip's fault map (static mapping, one fine-
tuned model per chip).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .faults import FaultMap
from .systolic import SystolicArray


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

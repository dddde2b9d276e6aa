"""Number formats, the fault-model interface (with a toy fault model added here in one class and
one registration line), mitigations over it, wide operands and the requantisation modes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from oddsuite.accelerator import (FAP, INT4, INT8, ColumnSegmentFault, FapBypass, Fault, FaultMap, IntFormat,
                                         StuckAt, SystolicArray, TEDrop, TimingErrorDrop, TimingErrorPropagation,
                                         TimingErrors, TimingEvents, accelerate, accelerator_of, register_fault_model)
from oddsuite.accelerator.fault_models import FAULT_MODELS
from oddsuite.accelerator.faults import flip_bits_int8
from oddsuite.accelerator.quant import quantize_activation

from test_accelerator import rand_int8, slow_reference, wrap32


# --------------------------------------------------------------------------- formats

def test_int8_format_is_the_quant_functions():
    x = torch.tensor([0.4, 1.0, -2.6, 200.0, -300.0])
    assert torch.equal(INT8.quantize(x, 1.0, torch.int8), quantize_activation(x, 1.0))
    assert INT8.max_product == 128 * 127 and INT8.acc_bits == 32 and INT8.bits == 8
    q = torch.randint(-128, 128, (500,), dtype=torch.int8)
    assert torch.equal(INT8.flip_bits(q, 0.02, np.random.default_rng(3)), flip_bits_int8(q, 0.02, np.random.default_rng(3)))


def test_requantisation_modes_hand_worked():
    """scale 1: 0.4 -> 0, 1 -> 1, -2.6 -> -3; 200 saturates to 127, wraps to 200 - 256 = -56,
    stays 200 unclipped; -300 saturates to -128, wraps to -300 + 512 = 212 - 256 = -44."""
    x = torch.tensor([0.4, 1.0, -2.6, 200.0, -300.0])
    assert INT8.quantize(x, 1.0, overflow="saturate").tolist() == [0, 1, -3, 127, -128]
    assert INT8.quantize(x, 1.0, overflow="wrap").tolist() == [0, 1, -3, -56, -44]
    assert INT8.quantize(x, 1.0, overflow="none").tolist() == [0, 1, -3, 200, -300]
    assert INT4.quantize(x, 1.0, overflow="saturate").tolist() == [0, 1, -3, 7, -8]
    assert INT4.quantize(x, 1.0, overflow="wrap").tolist() == [0, 1, -3, 200 - 13 * 16, -300 + 19 * 16]
    with pytest.raises(ValueError, match="requantisation"):
        INT8.quantize(x, 1.0, overflow="clip")


def test_int4_weights_flips_and_exact_products_with_faults():
    w = torch.tensor([[0.7, -0.1, 0.35], [0.0, 0.0, 0.0]])
    q, s = INT4.quantize_weight(w)
    assert q.tolist() == [[7, -1, 4], [0, 0, 0]] and torch.allclose(s, torch.tensor([0.1, 1.0]))
    v = torch.arange(-8, 8)
    flipped = INT4.flip_bits(v, 0.3, np.random.default_rng(0))
    assert flipped.min() >= -8 and flipped.max() <= 7 and not torch.equal(flipped, v)
    bits = ((v & 15) ^ (flipped & 15))
    assert 0 < sum(bin(int(b)).count("1") for b in bits) < 64
    # an int4 array is the same array: exact against the per-PE reference, with stuck-at faults
    rng = np.random.default_rng(9)
    a = SystolicArray(4, 3, "int4")
    assert a.format is INT4 and a._k_exact == 1024
    for seed in range(3):
        x = rng.integers(-8, 8, size=(5, 11))
        wq = rng.integers(-7, 8, size=(11, 7))
        fm = FaultMap.random(4, 3, 5, seed=seed)
        np.testing.assert_array_equal(a.matmul(x, wq, faults=fm), slow_reference(x, wq, 4, 3, fm))
    with pytest.raises(ValueError, match="2..8 bits"):
        IntFormat(12)
    with pytest.raises(ValueError, match="number format"):
        SystolicArray(4, 4, "fp8")


# --------------------------------------------------------------------------- a toy fault model

class StuckInvert(ColumnSegmentFault):
    """A toy permanent fault: PE ``(row, col)`` inverts bit ``bit`` of the partial sum it outputs."""

    name = "stuck-invert"

    def __init__(self, rows: int, cols: int, pes: dict[tuple[int, int], int]):
        self.rows, self.cols, self.pes = rows, cols, pes

    def pe_payloads(self):
        return {pe: (wrap32(1 << bit),) for pe, bit in self.pes.items()}

    def corrupt(self, v, payload):
        (x,) = payload
        v ^= x
        return v


register_fault_model(StuckInvert)  # the one registration line


def _invert_reference(x, w, R, C, pes):
    x, w = np.asarray(x, np.int64), np.asarray(w, np.int64)
    M, K = x.shape
    N = w.shape[1]
    out = np.zeros((M, N), np.int64)
    for m in range(M):
        for j in range(N):
            total = 0
            for t in range(math.ceil(K / R)):
                ps = 0
                for r in range(R):
                    k = t * R + r
                    ps = wrap32(ps + (int(x[m, k]) * int(w[k, j]) if k < K else 0))
                    if (r, j % C) in pes:
                        ps = wrap32((ps & 0xFFFFFFFF) ^ (1 << pes[(r, j % C)]))
                total = wrap32(total + ps)
            out[m, j] = total
    return out


@pytest.mark.parametrize("R,C,K,N", [(3, 2, 5, 4), (6, 2, 20, 3), (20, 1, 45, 2)])
def test_a_new_fault_model_is_one_class_and_one_registration(R, C, K, N):
    assert FAULT_MODELS["stuck-invert"] is StuckInvert
    rng = np.random.default_rng(R * K)
    x, w = rand_int8(rng, (4, K)), rand_int8(rng, (K, N), -127, 128)
    pes = {(int(rng.integers(R)), int(rng.integers(C))): int(rng.integers(0, 32)) for _ in range(4)}
    if R == 20:  # enough faulty rows in one column for the dense (cumulative-sum) replay
        pes.update({(r, 0): 31 - r for r in range(R)})
    got = SystolicArray(R, C).matmul(x, w, models=[StuckInvert(R, C, pes)])
    np.testing.assert_array_equal(got, _invert_reference(x, w, R, C, pes))


# --------------------------------------------------------------------------- mitigations and the interface

def test_mitigations_turn_fault_models_into_mitigated_ones():
    fm = FaultMap.random(8, 4, 6, seed=5)
    fap = FAP().apply(StuckAt(fm))
    assert isinstance(fap, FapBypass) and fap.fault_map is fm
    drop = TEDrop().apply(TimingErrorPropagation(1e-3, seed=4))
    assert isinstance(drop, TimingErrorDrop) and (drop.rate, drop.seed) == (1e-3, 4)
    with pytest.raises(ValueError, match="fap mitigates stuck-at"):
        FAP().apply(TimingErrorPropagation(1e-3))
    with pytest.raises(ValueError, match="te-drop mitigates timing"):
        TEDrop().apply(StuckAt(fm))
    # the models given directly equal the classic keyword settings
    rng = np.random.default_rng(2)
    x, w = rand_int8(rng, (6, 30)), rand_int8(rng, (30, 9))
    a = SystolicArray(8, 4)
    np.testing.assert_array_equal(a.matmul(x, w, models=[StuckAt(fm)]), a.matmul(x, w, faults=fm))
    np.testing.assert_array_equal(a.matmul(x, w, models=[fap]), a.matmul(x, w, faults=fm, mitigation="fap"))
    ev = TimingEvents.of([(0, 0, 1, 2), (3, 1, 5, 0)])
    te = TimingErrors(0.0, "te-drop")
    from oddsuite.accelerator.mitigation import FixedEvents
    np.testing.assert_array_equal(a.matmul(x, w, models=[FixedEvents(TimingErrorDrop(0.0), ev)]),
                                  a.matmul(x, w, timing=te, events=ev))
    with pytest.raises(ValueError, match="at most"):
        a.matmul(x, w, models=[StuckAt(fm), StuckInvert(8, 4, {(0, 0): 3})])


# --------------------------------------------------------------------------- wide operands (requant "none")

@pytest.mark.parametrize("case", range(6))
def test_wide_operands_exact_with_stuck_at_and_timing(case):
    """Activations far beyond int8 (what an unclipped requantisation carries) multiply exactly and
    the partial sums wrap at 32 bits, in every replay path (one tile, many tiles, dense columns)."""
    rng = np.random.default_rng(300 + case)
    R, C = [(4, 3), (3, 2), (20, 2), (6, 1), (5, 5), (2, 2)][case]
    M, K, N = 3, [4, 10, 50, 13, 5, 7][case], 4
    x = rng.integers(-2**27, 2**27, size=(M, K))
    x[0, 0] = 2**31 - 1
    w = rand_int8(rng, (K, N), -127, 128)
    a = SystolicArray(R, C)
    clean = np.array([[wrap32(sum(int(x[m, k]) * int(w[k, j]) for k in range(K))) for j in range(N)] for m in range(M)])
    np.testing.assert_array_equal(a.matmul(x, w), clean)
    fm = FaultMap.random(R, C, min(R * C, 5), seed=case, bits=[3, 17, 30, 31])
    if R == 20:
        fm = FaultMap(R, C, fm.faults + tuple(Fault(r, 0, 31 - r % 5, "stuck-at-0") for r in range(R)
                                              if (r, 0) not in fm.faulty_pes))
    np.testing.assert_array_equal(a.matmul(x, w, faults=fm), slow_reference(x, w, R, C, fm))
    ev = [(0, 0, 0, 0), (1, 0, min(1, R - 1), 1), (2, a.n_tiles(K) - 1, R - 1, N - 1)]
    for mode in ("propagate", "te-drop"):
        got = a.matmul(x, w, timing=TimingErrors(0.0, mode), events=TimingEvents.of(ev))
        np.testing.assert_array_equal(got, slow_reference(x, w, R, C, events=ev, mode=mode))


# --------------------------------------------------------------------------- requantisation on a tiny network

def _two_layers(requant: str):
    """Linear(1 -> 2) then Linear(2 -> 2) on a 1x2 array (one PE row, two PE columns).

    Calibrated on x = 1 (every scale 1/127, every weight 1 -> 127). Layer 1: both outputs
    127 * 127 = 16129. Stuck-at-1 on bit 20 of PE (0, 0) corrupts output 0 only:
    16129 | 2**20 = 1064705, i.e. 1064705 / 16129 = 66.0118 instead of 1. Layer 2's output 1
    (weights [1, 1], PE column 1: fault free) sums both inputs, requantised with scale 1/127:
    output 0 is 1064705 / 127 = 8383.50 -> 8384 before any clipping.
      saturate: [127, 127]   -> 127*127 + 127*127 = 32258          -> 2.0 (the fault is gone)
      none:     [8384, 127]  -> 8384*127 + 16129 = 1080897         -> 1080897 / 16129 = 67.0157
      wrap:     8384 = 32*256 + 192 -> 192 - 256 = -64; -64*127 + 16129 = 8001 -> 0.4961
    """
    net = nn.Sequential(nn.Linear(1, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
        net[1].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    q = accelerate(net, SystolicArray(1, 2), fuse=False, requant=requant)
    acc = accelerator_of(q)
    x = torch.tensor([[1.0]])
    acc.calibrate(lambda: q(x))
    return q, acc, x


@pytest.mark.parametrize("requant,want", [("saturate", 2.0), ("none", 1080897 / 16129), ("wrap", 8001 / 16129)])
def test_high_bit_fault_clipped_by_saturation_unbounded_in_fixed_point(requant, want):
    q, acc, x = _two_layers(requant)
    with torch.no_grad():
        assert q(x)[0, 1].item() == pytest.approx(2.0, abs=1e-5)  # no fault: every mode gives 1 + 1
        acc.configure(FaultMap(1, 2, (Fault(0, 0, 20, "stuck-at-1"),)))
        y = q(x)
    assert y[0, 1].item() == pytest.approx(want, rel=1e-5)
    assert acc.describe()["requant"] == requant
    acc.configure(requant="saturate")
    with torch.no_grad():
        assert q(x)[0, 1].item() == pytest.approx(2.0, abs=1e-5)

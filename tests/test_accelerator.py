"""The simulated systolic array: exactness, hand-worked faults, fast path == per-PE reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oddsuite.accelerator import (Fault, FaultMap, FaultMapError, SystolicArray, TimingErrors, TimingEvents,
                                         sample_timing_events)
from oddsuite.accelerator.faults import flip_bits_int8


def wrap32(v: int) -> int:
    return ((int(v) + 2**31) % 2**32) - 2**31


def slow_reference(x, w, R, C, fault_map: FaultMap | None = None, fap: bool = False, events=(),
                   mode: str = "propagate", keep_bits: int = 16) -> np.ndarray:
    """Cycle-free but PE-by-PE simulation, written independently of the package.

    Every (input row m, output column j, K tile t): the partial sum enters PE row 0 as 0 and
    passes PE rows 0..R-1 of PE column j % C; each PE adds x*w (0 past K), wraps to 32 bits,
    then applies its stuck-at bits. Tiles are summed in a wrapping 32-bit accumulator.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    M, K = x.shape
    N = w.shape[1]
    T = max(1, math.ceil(K / R))
    stuck = {}
    if fault_map is not None:
        for f in fault_map.faults:
            stuck.setdefault((f.row, f.col), []).append((f.bit, f.kind))
    events = set(map(tuple, events))
    low = (1 << keep_bits) - 1
    out = np.zeros((M, N), dtype=np.int64)
    for m in range(M):
        for j in range(N):
            c = j % C
            total = 0
            for t in range(T):
                ps = 0
                drop_this = False
                for r in range(R):
                    k = t * R + r
                    xv = int(x[m, k]) if k < K else 0
                    wv = int(w[k, j]) if k < K else 0
                    if fap and (r, c) in stuck:
                        continue  # bypassed: partial sum passes unchanged
                    if drop_this:  # TE-Drop: the predecessor stole this cycle
                        drop_this = False
                        continue
                    new = wrap32(ps + xv * wv)
                    if (m, t, r, j) in events:
                        if mode == "propagate":
                            new = new & low
                        else:
                            drop_this = r < R - 1
                    for bit, kind in stuck.get((r, c), []):
                        u = new & 0xFFFFFFFF
                        u = (u | (1 << bit)) if kind == "stuck-at-1" else (u & ~(1 << bit))
                        new = wrap32(u)
                    ps = new
                total = wrap32(total + ps)
            out[m, j] = total
    return out


def rand_int8(rng, shape, lo=-128, hi=128):
    return rng.integers(lo, hi, size=shape).astype(np.int8)


# --------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("M,K,N,R,C", [(7, 5, 3, 4, 2), (33, 300, 70, 64, 32), (5, 2100, 9, 256, 256),
                                       (64, 784, 256, 256, 256)])
def test_clean_equals_int8_reference(M, K, N, R, C):
    rng = np.random.default_rng(M * K + N)
    x, w = rand_int8(rng, (M, K)), rand_int8(rng, (K, N), -127, 128)
    ref = (x.astype(np.int64) @ w.astype(np.int64)).astype(np.int32)
    got = SystolicArray(R, C).matmul(x, w)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)
    # extreme values: every product is -128*127 or 127*127
    xe = np.where(rng.random((M, K)) < 0.5, -128, 127).astype(np.int8)
    we = np.full((K, N), 127, np.int8)
    np.testing.assert_array_equal(SystolicArray(R, C).matmul(xe, we), (xe.astype(np.int64) @ we.astype(np.int64)).astype(np.int32))


def test_clean_torch_inputs_and_fap_without_faults():
    rng = np.random.default_rng(1)
    x, w = rand_int8(rng, (9, 40)), rand_int8(rng, (40, 6))
    a = SystolicArray(8, 4)
    got = a.matmul(torch.from_numpy(x), torch.from_numpy(w))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int32
    np.testing.assert_array_equal(got.numpy(), x.astype(np.int64) @ w.astype(np.int64))
    np.testing.assert_array_equal(a.matmul(x, w, faults=FaultMap(8, 4), mitigation="fap"), got.numpy())


# --------------------------------------------------------------------------- hand-worked cases

X_HAND = np.array([[1, 3, 3],
                   [-2, 1, 0]], dtype=np.int8)
W_HAND = np.array([[1, 2],
                   [5, -1],
                   [5, 4]], dtype=np.int8)


def test_hand_stuck_at_1_bit4():
    """2x2 array, W is 3x2: K tiles {k=0,1} on PE rows 0,1 and {k=2} on PE row 0 (row 1 padded).

    Stuck-at-1 on bit 4 (16) of PE (0, 0), i.e. column j=0:
      m=0, tile 0: PE(0,0): 1*1 = 1 -> 1|16 = 17;  PE(1,0): 17 + 3*5 = 32 (the +15 carries
               out of bit 4 into bit 5: the later PE adds onto the corrupted value)
           tile 1: PE(0,0): 3*5 = 15 -> 15|16 = 31;  PE(1,0) (padding): 31 + 0 = 31
           accumulator: 32 + 31 = 63            (clean: 1 + 15 + 15 = 31)
      m=1, tile 0: PE(0,0): -2*1 = -2 = 0x...FFFE, bit 4 already 1 -> -2; PE(1,0): -2 + 1*5 = 3
           tile 1: PE(0,0): 0*5 = 0 -> 16;  PE(1,0): 16
           accumulator: 3 + 16 = 19             (clean: -2 + 5 + 0 = 3)
    Column 1 (PE column 1) has no fault: [2 - 3 + 12, -4 - 1 + 0] = [11, -5].
    """
    a = SystolicArray(2, 2)
    clean = a.matmul(X_HAND, W_HAND)
    np.testing.assert_array_equal(clean, [[31, 11], [3, -5]])
    fm = FaultMap(2, 2, (Fault(0, 0, 4, "stuck-at-1"),))
    np.testing.assert_array_equal(a.matmul(X_HAND, W_HAND, faults=fm), [[63, 11], [19, -5]])
    np.testing.assert_array_equal(slow_reference(X_HAND, W_HAND, 2, 2, fm), [[63, 11], [19, -5]])


def test_hand_stuck_at_sign_bit_on_padding_row():
    """Stuck-at-1 on bit 31 of PE (1, 1): column j=1.
      m=0, tile 0: PE(0,1): 1*2 = 2; PE(1,1): 2 + 3*(-1) = -1 (bit 31 already set) -> -1
           tile 1: PE(0,1): 3*4 = 12; PE(1,1) (padding, weight 0): 12 -> 12 - 2**31
           accumulator: -1 + 12 - 2**31 = 11 - 2**31
      m=1, tile 0: -2*2 = -4; -4 + 1*(-1) = -5 (negative: unchanged)
           tile 1: 0*4 = 0; 0 -> -2**31
           accumulator: -5 - 2**31 wraps to 2**31 - 5
    Stuck-at-0 on bit 31 of the same PE instead: tile sums -1 -> 2**31 - 1, 12 stays 12;
      m=0: 2**31 - 1 + 12 wraps to -2**31 + 11;  m=1: -5 -> 2**31 - 5, 0 -> 0: 2**31 - 5.
    """
    a = SystolicArray(2, 2)
    sa1 = FaultMap(2, 2, (Fault(1, 1, 31, "stuck-at-1"),))
    np.testing.assert_array_equal(a.matmul(X_HAND, W_HAND, faults=sa1)[:, 1], [11 - 2**31, 2**31 - 5])
    sa0 = FaultMap(2, 2, (Fault(1, 1, 31, "stuck-at-0"),))
    np.testing.assert_array_equal(a.matmul(X_HAND, W_HAND, faults=sa0)[:, 1], [-2**31 + 11, 2**31 - 5])
    np.testing.assert_array_equal(a.matmul(X_HAND, W_HAND, faults=sa0)[:, 0], [31, 3])  # column 0 untouched


def test_fap_equals_clean_with_pruned_weights():
    rng = np.random.default_rng(3)
    R, C = 8, 4
    x, w = rand_int8(rng, (20, 37)), rand_int8(rng, (37, 11))
    fm = FaultMap.random(R, C, 6, seed=5)
    a = SystolicArray(R, C)
    pruned = w.astype(np.int64).copy()
    for (r, c) in fm.faulty_pes:
        pruned[r::R, c::C] = 0
    np.testing.assert_array_equal(a.matmul(x, w, faults=fm, mitigation="fap"), x.astype(np.int64) @ pruned)
    faulty = set(fm.faulty_pes)
    want_mask = np.array([[(k % R, j % C) in faulty for j in range(11)] for k in range(37)])
    np.testing.assert_array_equal(a.faulty_weight_mask(37, 11, fm).numpy(), want_mask)
    np.testing.assert_array_equal(slow_reference(x, w, R, C, fm, fap=True), x.astype(np.int64) @ pruned)


def test_hand_te_drop_vs_propagation():
    """One column of 4 PEs, K=4: products 10, -40, 90, 160; clean partial sums 10, -30, 60, 220.

    Timing error on the MAC of PE row 1 (the one producing -30):
      propagate (keep 16 bits): -30 = 0x...FFE2 -> 0xFFE2 = 65506; + 90 + 160 = 65756
      TE-Drop: -30 is correct (next cycle stolen), PE row 2's product 90 is dropped: -30 + 160 = 130
    Error in the bottom row (r=3): TE-Drop drops nothing -> 220; propagate: 220 < 2**16 -> 220.
    Errors in rows 1 and 2: TE-Drop: row 2 is already being dropped, its error changes nothing -> 130;
      propagate: 65506 + 90 = 65596 keeps 16 bits -> 60; + 160 = 220.
    Errors in rows 0 and 1, TE-Drop: row 0 drops row 1's product (-40): 10 + 90 + 160 = 260.
    """
    a = SystolicArray(4, 1)
    x = np.array([[1, 2, 3, 4]], np.int8)
    w = np.array([[10], [-20], [30], [40]], np.int8)
    prop, drop = TimingErrors(0.0, "propagate"), TimingErrors(0.0, "te-drop")
    cases = [([(0, 0, 1, 0)], 65756, 130), ([(0, 0, 3, 0)], 220, 220),
             ([(0, 0, 1, 0), (0, 0, 2, 0)], 220, 130), ([(0, 0, 0, 0), (0, 0, 1, 0)], 65756, 260)]
    for ev, want_prop, want_drop in cases:
        e = TimingEvents.of(ev)
        assert a.matmul(x, w, timing=prop, events=e)[0, 0] == want_prop, ev
        assert a.matmul(x, w, timing=drop, events=e)[0, 0] == want_drop, ev
        assert slow_reference(x, w, 4, 1, events=ev, mode="propagate")[0, 0] == want_prop
        assert slow_reference(x, w, 4, 1, events=ev, mode="te-drop")[0, 0] == want_drop


# --------------------------------------------------------------------------- fast path == per-PE reference

@pytest.mark.parametrize("case", range(12))
def test_stuck_at_fast_path_equals_slow_reference(case):
    rng = np.random.default_rng(100 + case)
    R, C = int(rng.integers(2, 7)), int(rng.integers(1, 5))
    M, K, N = int(rng.integers(1, 6)), int(rng.integers(1, 3 * R + 2)), int(rng.integers(1, 2 * C + 3))
    x, w = rand_int8(rng, (M, K)), rand_int8(rng, (K, N), -127, 128)
    n_f = int(rng.integers(1, R * C + 1))
    # a random map, plus extra faults stacked on PEs already faulty (several bits on one PE)
    fm = FaultMap.random(R, C, n_f, seed=case, bits=[0, 3, 4, 15, 16, 30, 31] if case % 2 else None)
    extra = tuple(Fault(f.row, f.col, int(rng.integers(0, 32)), ("stuck-at-0", "stuck-at-1")[int(rng.integers(2))])
                  for f in fm.faults[: n_f // 2])
    fm = FaultMap(R, C, fm.faults + extra)
    want = slow_reference(x, w, R, C, fm)
    got = SystolicArray(R, C).matmul(x, w, faults=fm)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_replay_in_both_integer_widths(monkeypatch, dtype):
    """The replay runs in int32 where torch's int32 arithmetic wraps (checked at import), else int64."""
    from oddsuite.accelerator import systolic

    monkeypatch.setattr(systolic, "_REPLAY_DTYPE", dtype)
    rng = np.random.default_rng(5)
    R, C = 6, 3
    x, w = rand_int8(rng, (5, 20)), rand_int8(rng, (20, 7), -127, 128)
    for seed in range(4):
        fm = FaultMap.random(R, C, 12, seed=seed, bits=[29, 30, 31])  # large values: wraps happen
        fm = FaultMap(R, C, fm.faults + tuple(Fault(f.row, f.col, 31, "stuck-at-1") for f in fm.faults[:3]))
        np.testing.assert_array_equal(SystolicArray(R, C).matmul(x, w, faults=fm), slow_reference(x, w, R, C, fm))


def test_dense_fault_columns_use_cumsum_path_and_match():
    """More faulty rows per column than the sparse threshold: the cumulative-sum prefix path."""
    rng = np.random.default_rng(7)
    R, C = 40, 3
    x, w = rand_int8(rng, (4, 95)), rand_int8(rng, (95, 7), -127, 128)
    fm = FaultMap.random(R, C, 100, seed=11)  # ~33 faulty rows per column
    np.testing.assert_array_equal(SystolicArray(R, C).matmul(x, w, faults=fm), slow_reference(x, w, R, C, fm))
    x2, w2 = rand_int8(rng, (3, 80)), rand_int8(rng, (80, 4), -127, 128)  # K = 2R exactly: no padding
    np.testing.assert_array_equal(SystolicArray(R, C).matmul(x2, w2, faults=fm), slow_reference(x2, w2, R, C, fm))


@pytest.mark.parametrize("dense", [False, True])
def test_faults_on_padding_rows_keep_their_row_order(dense):
    """K=2 < R=20: PE rows 2.. only pass the sum on; their faults still apply, in row order."""
    R = 20
    x = np.array([[3, 4], [-1, 2]], np.int8)
    w = np.array([[5], [6]], np.int8)  # sums 39 (0b100111) and 7
    faults = [Fault(9, 0, 5, "stuck-at-0"), Fault(4, 0, 5, "stuck-at-1")]  # row 4 sets bit 5, row 9 clears it
    if dense:  # enough faults in the column to take the cumulative-sum path
        faults += [Fault(r, 0, 31, "stuck-at-0") for r in range(10, 20)] + [Fault(1, 0, 0, "stuck-at-1"), Fault(0, 0, 1, "stuck-at-1")]
    fm = FaultMap(R, 1, tuple(faults))
    got = SystolicArray(R, 1).matmul(x, w, faults=fm)
    np.testing.assert_array_equal(got, slow_reference(x, w, R, 1, fm))
    if not dense:
        np.testing.assert_array_equal(got, [[7], [7]])  # 39 -> 39|32 -> 39 & ~32 = 7; 7 -> 39 -> 7


@pytest.mark.parametrize("mode", ["propagate", "te-drop"])
@pytest.mark.parametrize("case", range(6))
def test_timing_fast_path_equals_slow_reference(mode, case):
    rng = np.random.default_rng(200 + case)
    R, C = int(rng.integers(2, 6)), int(rng.integers(1, 4))
    M, K, N = int(rng.integers(1, 5)), int(rng.integers(1, 3 * R + 1)), int(rng.integers(1, 6))
    x, w = rand_int8(rng, (M, K)), rand_int8(rng, (K, N), -127, 128)
    T = math.ceil(K / R)
    ev = sample_timing_events(M, T, R, N, 0.3, np.random.default_rng(case))  # dense: runs of adjacent errors
    keep = int(rng.integers(4, 17))
    te = TimingErrors(0.3, mode, keep_bits=keep)
    evs = list(zip(ev.m, ev.t, ev.r, ev.j))
    want = slow_reference(x, w, R, C, events=evs, mode=mode, keep_bits=keep)
    np.testing.assert_array_equal(SystolicArray(R, C).matmul(x, w, timing=te, events=ev), want)


def test_timing_sampling_is_seeded_and_scaled():
    a = SystolicArray(16, 16)
    rng = np.random.default_rng(0)
    x, w = rand_int8(rng, (50, 40)), rand_int8(rng, (40, 20))
    te = TimingErrors(1e-3, "propagate", seed=4)
    r1, r2 = a.matmul(x, w, timing=te), a.matmul(x, w, timing=te)
    np.testing.assert_array_equal(r1, r2)
    ev = sample_timing_events(50, 3, 16, 20, 1e-3, np.random.default_rng(1))
    assert 20 <= len(ev) <= 80  # 48000 MACs x 1e-3
    assert len(sample_timing_events(50, 3, 16, 20, 0.0, np.random.default_rng(1))) == 0


def test_timing_with_stuck_at_map_is_refused():
    a = SystolicArray(2, 2)
    with pytest.raises(ValueError, match="not modelled"):
        a.matmul(X_HAND, W_HAND, faults=FaultMap(2, 2, (Fault(0, 0, 1),)), timing=TimingErrors(0.1))


# --------------------------------------------------------------------------- fault maps

def test_seeded_maps_deterministic_and_nested():
    a, b = FaultMap.random(32, 16, 40, seed=9), FaultMap.random(32, 16, 40, seed=9)
    assert a == b and a.to_json() == b.to_json()
    assert FaultMap.random(32, 16, 40, seed=10) != a
    small = FaultMap.random(32, 16, 10, seed=9)
    assert small.faults == a.faults[:10]
    assert len(a.faulty_pes) == 40  # distinct PEs
    assert all(0 <= f.bit <= 31 and f.kind in ("stuck-at-0", "stuck-at-1") for f in a.faults)


def test_fault_map_save_load_round_trip(tmp_path):
    fm = FaultMap.random(8, 8, 12, seed=1)
    p = fm.save(tmp_path / "sub" / "map.json")
    back = FaultMap.load(p)
    assert back == fm
    rng = np.random.default_rng(0)
    x, w = rand_int8(rng, (6, 20)), rand_int8(rng, (20, 10))
    a = SystolicArray(8, 8)
    np.testing.assert_array_equal(a.matmul(x, w, faults=back), a.matmul(x, w, faults=fm))
    assert not list((tmp_path / "sub").glob(".*tmp"))


def test_fault_map_errors_name_file_and_field(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"rows": 4, "cols": 4, "faults": [{"row": 1, "col": 9, "bit": 3, "kind": "stuck-at-1"}]}')
    with pytest.raises(FaultMapError, match=r"bad\.json: faults\[0\].*outside"):
        FaultMap.load(p)
    p.write_text('{"rows": 4, "cols": 4, "faults": [{"row": 1, "col": 1, "bit": 32, "kind": "stuck-at-1"}]}')
    with pytest.raises(FaultMapError, match=r"faults\[0\]\.bit"):
        FaultMap.load(p)
    p.write_text('{"rows": 4, "cols": 4, "faults": [{"row": 1, "col": 1, "bit": 3, "kind": "flip"}]}')
    with pytest.raises(FaultMapError, match=r"faults\[0\]\.kind"):
        FaultMap.load(p)
    p.write_text("{nope")
    with pytest.raises(FaultMapError, match="not valid JSON"):
        FaultMap.load(p)
    with pytest.raises(ValueError, match="fault map is for a 4x4"):
        SystolicArray(2, 2).matmul(X_HAND, W_HAND, faults=FaultMap(4, 4, (Fault(0, 0, 1),)))


def test_pe_masks_combine_faults_on_one_pe():
    fm = FaultMap(2, 2, (Fault(0, 0, 3, "stuck-at-1"), Fault(0, 0, 31, "stuck-at-1"), Fault(0, 0, 3, "stuck-at-0")))
    a, o = fm.pe_masks()[(0, 0)]
    assert (5 & a) | o == wrap32(5 | (1 << 31))  # bit 3 ends at 0 (the later fault wins), bit 31 at 1
    assert (8 & a) | o == wrap32(1 << 31)


def test_transient_flips_seeded():
    q = torch.randint(-128, 128, (1000,), dtype=torch.int8)
    a = flip_bits_int8(q, 0.01, np.random.default_rng(0))
    b = flip_bits_int8(q, 0.01, np.random.default_rng(0))
    assert torch.equal(a, b)
    flipped_bits = np.unpackbits((q.numpy() ^ a.numpy()).view(np.uint8)).sum()
    assert 40 <= flipped_bits <= 130  # 8000 bits x 1%
    assert torch.equal(flip_bits_int8(q, 0.0, np.random.default_rng(0)), q)

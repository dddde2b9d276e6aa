"""A weight-stationary systolic array of ``R x C`` int8 MAC processing elements (PEs).

A layer computes ``Y[m, j] = sum_k X[m, k] * W[k, j]`` (``X`` int8 activations ``M x K``,
``W`` int8 weights ``K x N``). The weight matrix is tiled in ``R x C`` tiles; ``W[k, j]``
sits in PE ``(k mod R, j mod C)``. Within a K tile ``t`` (rows ``tR .. tR+R-1`` of ``W``,
zero-padded past ``K``) the partial sum of output column ``j`` enters PE row 0 as 0 and flows
down PE rows ``0 .. R-1``, each PE adding its product; it leaves the bottom of the array
into a 32-bit accumulator where the K tiles are summed. All sums are 32-bit two's
complement (wrapping).

How it is computed (exact in every case, see the tests against a per-PE simulation):

- **Clean**: one fast float matrix multiply. int8 x int8 products are at most ``2**14`` in
  magnitude, so float32 sums of at most 1032 of them are exact integers; longer K is split
  into chunks of 1024 and summed in float64. Wrapping modulo ``2**32`` commutes with
  addition, so the clean 32-bit result is the exact sum wrapped once (it never wraps for
  ``K < 132104``).
- **Stuck-at faults** touch only the output columns ``j`` whose PE column holds a fault, and
  only from the first faulty row down. For such a column with faulty rows
  ``r_1 < ... < r_n``, let ``P_i`` be the clean partial sum of a tile through row ``r_i``.
  The faulty tile output is ``s_n + (tile_sum - P_n)`` with ``s_0 = 0`` and
  ``s_i = force_i(s_{i-1} + P_i - P_{i-1})``, so the column's result is
  ``clean_total + sum_t (s_n - P_n)``: only the clean prefixes at the faulty rows are
  needed. They come from one batched matrix multiply of the per-tile activations with the
  column's weights masked to rows ``<= r_i`` (few faults per column), or from a cumulative
  sum of the column's products (many faults per column). The cost of a run with ``F``
  faulty PEs is about ``1 + F / C`` clean runs.
- **FAP** (fault-aware pruning): the weights mapped to faulty PEs are zeroed and those PEs
  bypassed, so the result is exactly the clean product with those weights zeroed.
- **Timing errors** are sparse events (``m, t, r, j``), corrected one by one from clean
  prefixes gathered for just those events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .faults import FaultMap, TimingErrors, TimingEvents, sample_timing_events
from .quant import MAX_PRODUCT

#: exact-integer limit of float32 sums
_F32_EXACT = 1 << 24
#: elements per temporary tensor in the fault replay (float32: 64 MiB)
_BUDGET = 1 << 24
#: columns with more faulty rows than this use the cumulative-sum prefix method
_DENSE_FAULTS_PER_COLUMN = 12

MITIGATIONS = ("none", "fap")


def _as_float_tensor(a: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t


@dataclass
class RunStats:
    """Counters of what a simulated product saw (added to by each call)."""

    calls: int = 0
    macs: int = 0
    replayed_columns: int = 0
    timing_events: int = 0
    timing_effective: int = 0

    def add(self, other: "RunStats") -> None:
        for k in ("calls", "macs", "replayed_columns", "timing_events", "timing_effective"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class SystolicArray:
    """A weight-stationary ``rows x cols`` array; see the module docstring for the model."""

    def __init__(self, rows: int = 256, cols: int = 256):
        if rows <= 0 or cols <= 0:
            raise ValueError(f"array size must be positive, got {rows}x{cols}")
        self.rows, self.cols = int(rows), int(cols)
        # per-tile sums of up to R products must be exact in the replay dtype
        self._tile_dtype = torch.float32 if self.rows * MAX_PRODUCT < _F32_EXACT else torch.float64

    @classmethod
    def parse(cls, text: str) -> "SystolicArray":
        """``"256x256"`` -> ``SystolicArray(256, 256)``."""
        try:
            r, c = (int(v) for v in str(text).lower().split("x"))
        except ValueError:
            raise ValueError(f"array size must look like 256x256, got {text!r}") from None
        return cls(r, c)

    def __repr__(self) -> str:
        return f"SystolicArray({self.rows}, {self.cols})"

    def n_tiles(self, K: int) -> int:
        return max(1, math.ceil(K / self.rows))

    # ---- mapping -------------------------------------------------------------------
    def pe_of(self, k: int, j: int) -> tuple[int, int]:
        """The PE holding ``W[k, j]``."""
        return k % self.rows, j % self.cols

    def faulty_weight_mask(self, K: int, N: int, faults: FaultMap | None) -> torch.Tensor:
        """Bool ``(K, N)``: True where ``W[k, j]`` sits on a faulty PE (what FAP prunes)."""
        if faults is None or len(faults) == 0:
            return torch.zeros(K, N, dtype=torch.bool)
        self._check_map(faults)
        grid = torch.from_numpy(faults.pe_grid())
        rk = torch.arange(K) % self.rows
        cj = torch.arange(N) % self.cols
        return grid[rk][:, cj]

    def _check_map(self, faults: FaultMap) -> None:
        if (faults.rows, faults.cols) != (self.rows, self.cols):
            raise ValueError(f"fault map is for a {faults.rows}x{faults.cols} array, this one is {self.rows}x{self.cols}")

    # ---- public product ----------------------------------------------------------------
    def matmul(self, x, w, *, faults: FaultMap | None = None, mitigation: str = "none",
               timing: TimingErrors | None = None, rng: np.random.Generator | None = None,
               events: TimingEvents | None = None, stats: RunStats | None = None):
        """int32 accumulators of ``x @ w`` on this array.

        ``x``: ``(M, K)`` int8 values, ``w``: ``(K, N)`` int8 values (numpy or torch, integer or
        float dtype holding integers). Returns int32 ``(M, N)``, numpy if ``x`` was numpy.
        ``faults`` with ``mitigation="none"`` injects the stuck-at faults, with ``"fap"`` prunes
        and bypasses the faulty PEs. ``timing`` samples timing errors (from ``rng``, or
        ``default_rng(timing.seed)``); ``events`` gives them explicitly (mode from ``timing``,
        default ``"propagate"``).
        """
        as_numpy = not isinstance(x, torch.Tensor)
        acc = self.accumulate(_as_float_tensor(x), _as_float_tensor(w), faults=faults, mitigation=mitigation,
                              timing=timing, rng=rng, events=events, stats=stats)
        out = acc.to(torch.int64).to(torch.int32)
        return out.numpy() if as_numpy else out

    def accumulate(self, X: torch.Tensor, W: torch.Tensor, *, faults: FaultMap | None = None,
                   mitigation: str = "none", timing: TimingErrors | None = None,
                   rng: np.random.Generator | None = None, events: TimingEvents | None = None,
                   stats: RunStats | None = None, fap_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The fast path: ``X (M, K)``, ``W (K, N)`` float tensors holding int8 values.

        Returns the exact int32 accumulator values in a float32, float64 or int64 tensor
        (whichever was cheapest to keep exact); ``.to(torch.int64)`` gives the integers.
        ``fap_mask`` (bool ``(K, N)``, True = pruned) may be passed precomputed.
        """
        if mitigation not in MITIGATIONS:
            raise ValueError(f"mitigation must be one of {MITIGATIONS}, got {mitigation!r}")
        M, K = X.shape
        K2, N = W.shape
        if K != K2:
            raise ValueError(f"matmul shapes do not match: x {tuple(X.shape)}, w {tuple(W.shape)}")
        st = RunStats(calls=1, macs=M * self.n_tiles(K) * self.rows * N)
        if faults is not None and len(faults) == 0:
            faults = None
        if faults is not None:
            self._check_map(faults)
        if (timing is not None or events is not None) and faults is not None:
            raise ValueError("timing errors together with a stuck-at fault map are not modelled")

        if faults is not None and mitigation == "fap":
            mask = fap_mask if fap_mask is not None else self.faulty_weight_mask(K, N, faults)
            W = W.masked_fill(mask.to(W.device), 0.0)
        acc = self._clean(X, W)

        if faults is not None and mitigation == "none":
            acc = self._apply_stuck_at(X, W, acc, faults, st)
        if timing is not None or events is not None:
            if events is None:
                if rng is None:
                    rng = np.random.default_rng(timing.seed)
                events = sample_timing_events(M, self.n_tiles(K), self.rows, N, timing.rate, rng)
            mode = timing.mode if timing is not None else "propagate"
            keep_bits = timing.keep_bits if timing is not None else 16
            acc = self._apply_timing(X, W, acc, events, mode, keep_bits, st)
        if stats is not None:
            stats.add(st)
        return acc

    # ---- clean product --------------------------------------------------------------------
    def _clean(self, X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        K = X.shape[1]
        chunk = _F32_EXACT // MAX_PRODUCT  # 1032 -> use 1024
        chunk = 1024 if chunk >= 1024 else chunk
        Xf, Wf = X.to(torch.float32), W.to(torch.float32)
        if K <= chunk:
            acc = Xf @ Wf
        else:
            acc = None
            for a in range(0, K, chunk):
                part = (Xf[:, a:a + chunk] @ Wf[a:a + chunk]).to(torch.float64)
                acc = part if acc is None else acc.add_(part)
        if K * MAX_PRODUCT >= (1 << 31):  # can wrap: do it exactly
            acc = acc.to(torch.int64).to(torch.int32).to(torch.int64)
        return acc

    def _tiles(self, X: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-padded per-tile views: ``Xt (T, M, R)``, ``Wt (T, R, N)`` in the tile dtype."""
        M, K = X.shape
        N = W.shape[1]
        R, T = self.rows, self.n_tiles(K)
        pad = T * R - K
        Xp = torch.nn.functional.pad(X.to(self._tile_dtype), (0, pad))
        Wp = torch.nn.functional.pad(W.to(self._tile_dtype), (0, 0, 0, pad))
        return Xp.view(M, T, R).transpose(0, 1), Wp.view(T, R, N)

    # ---- stuck-at replay ------------------------------------------------------------------
    def _fault_instances(self, faults: FaultMap, N: int):
        """Per output column ``j`` the sorted faulty rows and their masks."""
        by_col: dict[int, list[tuple[int, int, int]]] = {}
        for (r, c), (a, o) in faults.pe_masks().items():
            if c >= N:
                continue  # PE column holds no output column of this layer
            for j in range(c, N, self.cols):
                by_col.setdefault(j, []).append((r, a, o))
        for j in by_col:
            by_col[j].sort()
        return by_col

    def _apply_stuck_at(self, X, W, acc, faults: FaultMap, st: RunStats) -> torch.Tensor:
        M = X.shape[0]
        N = W.shape[1]
        by_col = self._fault_instances(faults, N)
        if not by_col or M == 0:
            return acc
        st.replayed_columns += len(by_col)
        Xt, Wt = self._tiles(X, W)
        T, R = Xt.shape[0], self.rows
        # columns sorted by fault count so that groups are homogeneous
        cols = sorted(by_col, key=lambda j: (len(by_col[j]), j))
        mc = max(1, min(M, _BUDGET // (T * R)))  # rows of X per chunk
        groups: list[tuple[str, list[int]]] = []
        cur: list[int] = []
        cur_kind, cur_f = None, 0
        f_max = max(R, _BUDGET // (T * mc))
        d_max = max(1, _BUDGET // (T * mc * R))
        for j in cols:
            kind = "dense" if len(by_col[j]) > _DENSE_FAULTS_PER_COLUMN else "sparse"
            n = len(by_col[j])
            full = (kind != cur_kind) or (kind == "sparse" and cur_f + n > f_max) or (kind == "dense" and len(cur) >= d_max)
            if cur and full:
                groups.append((cur_kind, cur))
                cur, cur_f = [], 0
            cur_kind = kind
            cur.append(j)
            cur_f += n
        if cur:
            groups.append((cur_kind, cur))

        acc64 = acc.to(torch.float64) if acc.dtype == torch.float32 else acc
        out_cols, out_vals = [], []
        for kind, gcols in groups:
            # flat fault list of the group, ordered by (column, rank)
            rows_f, col_local, rank, amask, omask = [], [], [], [], []
            for li, j in enumerate(gcols):
                for k, (r, a, o) in enumerate(by_col[j]):
                    rows_f.append(r); col_local.append(li); rank.append(k); amask.append(a); omask.append(o)
            rows_t = torch.tensor(rows_f, dtype=torch.int64)
            col_t = torch.tensor(col_local, dtype=torch.int64)
            rank_np = np.asarray(rank)
            a_t = torch.tensor(amask, dtype=torch.int64)
            o_t = torch.tensor(omask, dtype=torch.int64)
            jg = torch.tensor(gcols, dtype=torch.int64)
            delta = torch.empty(M, len(gcols), dtype=torch.int64)
            if kind == "sparse":
                ar = torch.arange(R)
                Wsel = Wt[:, :, jg[col_t]] * (ar[:, None] <= rows_t[None, :]).to(Wt.dtype)  # (T, R, F)
            for m0 in range(0, M, mc):
                Xc = Xt[:, m0:m0 + mc]
                if kind == "sparse":
                    P = torch.bmm(Xc, Wsel)  # (T, mc, F) clean prefixes through each faulty row
                else:
                    prod = Xc.unsqueeze(-1) * Wt[:, None, :, jg]  # (T, mc, R, G)
                    cs = prod.cumsum_(2)
                    P = cs[:, :, rows_t, col_t]  # (T, mc, F)
                P = P.to(torch.int64)
                delta[m0:m0 + mc] = self._replay(P, col_t, rank_np, a_t, o_t, len(gcols))
            out_cols.append(jg)
            out_vals.append(delta)
        jcat = torch.cat(out_cols)
        dcat = torch.cat(out_vals, dim=1)
        acc64[:, jcat] = (acc64[:, jcat].to(torch.int64) + dcat).to(torch.int32).to(acc64.dtype)
        return acc64

    @staticmethod
    def _replay(P: torch.Tensor, col_t: torch.Tensor, rank: np.ndarray, a_t, o_t, G: int) -> torch.Tensor:
        """The forcing recursion over the faulty rows of each column; returns ``(mc, G)`` deltas."""
        T, mc, _ = P.shape
        s = torch.zeros(T, mc, G, dtype=torch.int64)
        prev = torch.zeros(T, mc, G, dtype=torch.int64)
        for k in range(int(rank.max()) + 1):
            idx = torch.from_numpy(np.nonzero(rank == k)[0])
            c = col_t[idx]
            Pk = P[:, :, idx]
            v = (s[:, :, c] + Pk - prev[:, :, c]).to(torch.int32).to(torch.int64)
            v = (v & a_t[idx]) | o_t[idx]
            s[:, :, c] = v
            prev[:, :, c] = Pk
        return (s - prev).sum(0)

    # ---- timing errors --------------------------------------------------------------------
    def _apply_timing(self, X, W, acc, ev: TimingEvents, mode: str, keep_bits: int, st: RunStats) -> torch.Tensor:
        n = len(ev)
        st.timing_events += n
        if n == 0:
            return acc
        M, K = X.shape
        N = W.shape[1]
        R, T = self.rows, self.n_tiles(K)
        if (ev.m.max() >= M or ev.t.max() >= T or ev.r.max() >= R or ev.j.max() >= N
                or min(ev.m.min(), ev.t.min(), ev.r.min(), ev.j.min()) < 0):
            raise ValueError("timing event outside the layer's (M, T, R, N) range")
        # sort by (m, t, j, r); groups are the (m, t, j) column passes
        order = np.lexsort((ev.r, ev.j, ev.t, ev.m))
        m, t, r, j = ev.m[order], ev.t[order], ev.r[order], ev.j[order]
        key = (m * T + t) * N + j
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = key[1:] != key[:-1]
        start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
        rank = np.arange(n) - start
        Xp = torch.nn.functional.pad(X.to(torch.float64), (0, T * R - K))
        Wp = torch.nn.functional.pad(W.to(torch.float64), (0, 0, 0, T * R - K))
        if mode == "te-drop":
            # the successor's product is dropped, unless this MAC's own product was dropped
            effective = np.ones(n, dtype=bool)
            adj = np.nonzero((~new_group[1:]) & (r[1:] == r[:-1] + 1))[0] + 1
            for i in adj:  # ascending: effective[i-1] is final
                effective[i] = not effective[i - 1]
            effective &= r < R - 1
            e = np.nonzero(effective)[0]
            kk = torch.from_numpy(t[e] * R + r[e] + 1)
            dprod = Xp[torch.from_numpy(m[e]), kk] * Wp[kk, torch.from_numpy(j[e])]
            delta = -dprod.to(torch.int64)
            st.timing_effective += int((dprod != 0).sum())
            mm, jj = m[e], j[e]
        else:
            low = (1 << keep_bits) - 1
            P = torch.empty(n, dtype=torch.int64)
            ar = torch.arange(R)
            chunk = max(1, _BUDGET // R)
            mt, tt, rt, jt = (torch.from_numpy(a) for a in (m, t, r, j))
            for a in range(0, n, chunk):
                sl = slice(a, a + chunk)
                kidx = tt[sl, None] * R + ar[None, :]  # (c, R)
                xs = Xp[mt[sl, None], kidx]
                ws = Wp[kidx, jt[sl, None]]
                P[sl] = ((xs * ws) * (ar[None, :] <= rt[sl, None])).sum(1).to(torch.int64)
            s = torch.zeros(n, dtype=torch.int64)   # corrupted partial sum after each event
            changed = torch.zeros(n, dtype=torch.bool)
            for k in range(int(rank.max()) + 1):
                idx = torch.from_numpy(np.nonzero(rank == k)[0])
                if k == 0:
                    v = P[idx]
                else:  # previous event of the same pass: its corrupted value plus the clean rows between
                    v = s[idx - 1] + P[idx] - P[idx - 1]
                v = v.to(torch.int32).to(torch.int64)
                e = v & low
                changed[idx] = e != v
                s[idx] = e
            st.timing_effective += int(changed.sum())
            last = np.ones(n, dtype=bool)
            last[:-1] = new_group[1:]
            li = torch.from_numpy(np.nonzero(last)[0])
            delta = s[li] - P[li]
            mm, jj = m[li.numpy()], j[li.numpy()]
        acc64 = acc.to(torch.int64)
        flat = acc64.view(-1)
        flat.index_add_(0, torch.from_numpy(mm * N + jj), delta)
        return acc64.to(torch.int32).to(torch.int64)

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
  The faulty tile output is ``s_n + (tile_sum - P_n)`` with ``s_i = force_i(s_{i-1} + P_i -
  P_{i-1})`` (``s_0 = P_0 = 0``), so the column's result is ``clean_total + sum_t (s_n -
  P_n)``: only the clean prefixes at the faulty rows are needed. They come from the same
  matrix multiply as the clean product, with one extra output column per fault (the column's
  weights masked to rows ``<= r_i`` of each tile), or, for columns with many faults, from a
  cumulative sum of the column's products. A run with ``F`` faulty PEs costs about
  ``1 + F/C`` clean runs plus a few element-wise passes over the faulty outputs.
- **FAP** (fault-aware pruning): the weights mapped to faulty PEs are zeroed and those PEs
  bypassed, so the result is exactly the clean product with those weights zeroed.
- **Timing errors** are sparse events (``m, t, r, j``), corrected one by one from clean
  prefixes gathered for just those events.

Internally everything runs transposed — ``Y^T (N, M) = W^T (N, K) @ X^T (K, M)`` — so that
an output column is a contiguous row (fast gathers and element-wise passes) and an im2col
block ``(K, L)`` is used as it comes, giving the convolution's ``(N, L)`` layout directly.
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
#: longest K whose float32 product is exact
_K_EXACT_F32 = min(1024, _F32_EXACT // MAX_PRODUCT)
#: elements per temporary tensor in the fault replay (float32: 64 MiB)
_BUDGET = 1 << 24
#: columns with more faulty rows than this use the cumulative-sum prefix method
_DENSE_FAULTS_PER_COLUMN = 12

MITIGATIONS = ("none", "fap")


def _int32_wraps() -> bool:
    """Whether torch's int32 add/sub/sum wrap modulo 2**32 here (vector and scalar paths)."""
    for n in (1, 3, 67, 4099):
        big = torch.full((n,), 2**31 - 1, dtype=torch.int32)
        low = torch.full((n,), -2**31, dtype=torch.int32)
        if not (torch.equal(big + 1, low) and torch.equal(low - 1, big)
                and torch.equal(torch.stack([big, big]).sum(0, dtype=torch.int32), torch.full((n,), -2, dtype=torch.int32))):
            return False
    return True


#: the replay runs in int32 (half the memory traffic) where that arithmetic wraps, else in int64
_REPLAY_DTYPE = torch.int32 if _int32_wraps() else torch.int64


def _as_float_tensor(a: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t


def _wrap32(v: torch.Tensor) -> torch.Tensor:
    return v.to(torch.int64).to(torch.int32).to(torch.int64)


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


@dataclass
class _Group:
    """Faulty output columns replayed together."""

    dense: bool
    jg: torch.Tensor        # (G,) output columns, by descending fault count
    rows: torch.Tensor      # (F,) faulty row of each fault (clamped into a single partial tile)
    col: torch.Tensor       # (F,) group-local column of each fault
    blocks: list            # (offset, count) of the faults of rank 0, 1, ...: columns 0..count-1
    a: torch.Tensor         # (F, 1) and-masks (replay dtype, sign-extended)
    o: torch.Tensor         # (F, 1) or-masks
    WT: torch.Tensor | None = None   # dense: (T, G, width) the columns' weights
    offset: int = 0         # sparse: first row of this group's prefixes in the extended product


@dataclass
class StuckAtPlan:
    """Replay plan of one weight matrix under one fault map (see :meth:`SystolicArray.plan_stuck_at`)."""

    K: int
    N: int
    T: int
    width: int
    groups: list = field(default_factory=list)
    columns: torch.Tensor | None = None
    #: T == 1: ``[W^T; prefix rows]`` ``(N + F_sparse, K)``; T > 1: per tile ``(k0, k1, (F_sparse, k1-k0))``
    ext: Any = None
    n_sparse: int = 0


class SystolicArray:
    """A weight-stationary ``rows x cols`` array; see the module docstring for the model."""

    def __init__(self, rows: int = 256, cols: int = 256):
        if rows <= 0 or cols <= 0:
            raise ValueError(f"array size must be positive, got {rows}x{cols}")
        self.rows, self.cols = int(rows), int(cols)
        # per-tile sums of up to R products must be exact in the replay dtype
        self._tile_dtype = torch.float32 if self.rows <= _K_EXACT_F32 else torch.float64

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

    # ---- public products ----------------------------------------------------------------
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

    def accumulate(self, X: torch.Tensor, W: torch.Tensor, **kw) -> torch.Tensor:
        """``X (M, K)``, ``W (K, N)`` float tensors of int8 values -> ``(M, N)`` accumulators.

        Same options as :meth:`accumulate_t` (a ``plan`` must come from :meth:`plan_stuck_at`).
        """
        return self.accumulate_t(X.t(), W.t(), **kw).t()

    def accumulate_t(self, XT: torch.Tensor, WT: torch.Tensor, *, faults: FaultMap | None = None,
                     mitigation: str = "none", timing: TimingErrors | None = None,
                     rng: np.random.Generator | None = None, events: TimingEvents | None = None,
                     stats: RunStats | None = None, plan: StuckAtPlan | None = None,
                     exact: bool = True) -> torch.Tensor:
        """The fast path, transposed: ``XT (K, M)``, ``WT (N, K)`` float tensors holding int8
        values -> ``(N, M)`` accumulators.

        The result holds the exact int32 accumulator values in a float32, float64 or int64
        tensor (whichever was cheapest to keep exact); ``.to(torch.int64)`` gives the integers.
        With ``exact=False`` it is float32 even where a corrupted accumulator needs more than 24
        bits (rounded as ``.to(torch.float32)`` would round it): what a caller that dequantises
        in float32 anyway wants. ``plan`` (from :meth:`plan_stuck_at_t` for this ``WT`` and
        ``faults``) may be passed precomputed when one layer runs many times.
        """
        if mitigation not in MITIGATIONS:
            raise ValueError(f"mitigation must be one of {MITIGATIONS}, got {mitigation!r}")
        K, M = XT.shape
        N, K2 = WT.shape
        if K != K2:
            raise ValueError(f"matmul shapes do not match: x {(M, K)}, w {(K2, N)}")
        st = RunStats(calls=1, macs=M * self.n_tiles(K) * self.rows * N)
        if faults is not None and len(faults) == 0:
            faults = None
        if faults is not None:
            self._check_map(faults)
        if (timing is not None or events is not None) and faults is not None:
            raise ValueError("timing errors together with a stuck-at fault map are not modelled")

        if faults is not None and mitigation == "fap":
            WT = WT.masked_fill(self.faulty_weight_mask(K, N, faults).t(), 0.0)
        if faults is not None and mitigation == "none":
            if plan is None:
                plan = self.plan_stuck_at_t(WT, faults)
            acc = self._stuck_at(XT, WT, plan, st, exact)
        else:
            acc = self._clean(XT, WT)
        if timing is not None or events is not None:
            if events is None:
                if rng is None:
                    rng = np.random.default_rng(timing.seed)
                events = sample_timing_events(M, self.n_tiles(K), self.rows, N, timing.rate, rng)
            mode = timing.mode if timing is not None else "propagate"
            keep_bits = timing.keep_bits if timing is not None else 16
            acc = self._apply_timing(XT, WT, acc, events, mode, keep_bits, st, exact)
        if stats is not None:
            stats.add(st)
        return acc

    # ---- clean product --------------------------------------------------------------------
    @staticmethod
    def _clean(XT: torch.Tensor, WT: torch.Tensor) -> torch.Tensor:
        K = XT.shape[0]
        Xf, Wf = XT.to(torch.float32), WT.to(torch.float32)
        if K <= _K_EXACT_F32:
            return Wf @ Xf
        acc = None
        for a in range(0, K, _K_EXACT_F32):
            part = (Wf[:, a:a + _K_EXACT_F32] @ Xf[a:a + _K_EXACT_F32]).to(torch.float64)
            acc = part if acc is None else acc.add_(part)
        if K * MAX_PRODUCT >= (1 << 31):  # can wrap: do it exactly
            acc = _wrap32(acc)
        return acc

    # ---- stuck-at replay ------------------------------------------------------------------
    def plan_stuck_at(self, W: torch.Tensor, faults: FaultMap) -> StuckAtPlan:
        """The replay plan for ``W (K, N)`` (for :meth:`accumulate`)."""
        return self.plan_stuck_at_t(W.t(), faults)

    def plan_stuck_at_t(self, WT: torch.Tensor, faults: FaultMap) -> StuckAtPlan:
        """Everything the stuck-at replay of ``WT (N, K)`` under ``faults`` needs but ``X``.

        Faulty columns are grouped (by fault count) into batches; in a group, columns are
        ordered by descending fault count and faults by (rank within column, column), so that
        the k-th faults of all columns having at least k+1 form one contiguous block over a
        prefix of the columns (no gathers in the replay).
        """
        self._check_map(faults)
        N, K = WT.shape
        T = self.n_tiles(K)
        width = self.rows if T > 1 else K  # a single partial tile needs no padding
        by_col: dict[int, list[tuple[int, int, int]]] = {}
        for (r, c), (a, o) in faults.pe_masks().items():
            if c >= N:
                continue  # this PE column holds no output column of the layer
            for j in range(c, N, self.cols):
                by_col.setdefault(j, []).append((r, a, o))
        plan = StuckAtPlan(K=K, N=N, T=T, width=width)
        if not by_col:
            return plan
        Wt = WT.to(self._tile_dtype)
        if T * width != K:
            Wt = torch.nn.functional.pad(Wt, (0, T * width - K))
        Wt = Wt.view(N, T, width).transpose(0, 1)  # (T, N, width)
        cols = sorted(by_col, key=lambda j: (len(by_col[j]), j))
        f_max = 1024
        d_max = max(1, _BUDGET // (T * 1024 * width))
        groups: list[list[int]] = []
        cur: list[int] = []
        cur_dense, cur_f = False, 0
        for j in cols:
            n = len(by_col[j])
            dense = n > _DENSE_FAULTS_PER_COLUMN
            full = dense != cur_dense or (not dense and cur_f + n > f_max) or (dense and len(cur) >= d_max)
            if cur and full:
                groups.append(cur)
                cur, cur_f = [], 0
            cur_dense = dense
            cur.append(j)
            cur_f += n
        if cur:
            groups.append(cur)
        ar = torch.arange(width)
        sparse_rows: list[torch.Tensor] = []  # (T, F_g, width) masked weight rows
        for gcols in groups:
            gcols = sorted(gcols, key=lambda j: (-len(by_col[j]), j))
            faults_of = [sorted(by_col[j]) for j in gcols]
            rows_f, col_f, a_f, o_f, blocks = [], [], [], [], []
            for k in range(len(faults_of[0])):
                n_k = sum(1 for fl in faults_of if len(fl) > k)
                blocks.append((len(rows_f), n_k))
                for li in range(n_k):
                    r, a, o = faults_of[li][k]
                    # rows past K in a single partial tile are clamped to K-1 (padding adds 0)
                    rows_f.append(min(r, width - 1)); col_f.append(li); a_f.append(a); o_f.append(o)
            jg = torch.tensor(gcols, dtype=torch.int64)
            rows_t = torch.tensor(rows_f, dtype=torch.int64)
            col_t = torch.tensor(col_f, dtype=torch.int64)
            dense = len(faults_of[0]) > _DENSE_FAULTS_PER_COLUMN
            g = _Group(dense=dense, jg=jg, rows=rows_t, col=col_t, blocks=blocks,
                       a=torch.tensor(a_f, dtype=_REPLAY_DTYPE)[:, None], o=torch.tensor(o_f, dtype=_REPLAY_DTYPE)[:, None])
            if dense:
                g.WT = Wt[:, jg].contiguous()  # (T, G, width)
            else:  # each fault's column, masked to the rows at and above the fault
                g.offset = sum(x.shape[1] for x in sparse_rows)
                sparse_rows.append(Wt[:, jg[col_t]] * (ar[None, :] <= rows_t[:, None]).to(Wt.dtype))
            plan.groups.append(g)
        plan.columns = torch.cat([g.jg for g in plan.groups])
        if sparse_rows:
            S = torch.cat(sparse_rows, dim=1)  # (T, F_sparse, width)
            plan.n_sparse = S.shape[1]
            if T == 1 and self._tile_dtype == torch.float32:
                plan.ext = torch.cat([WT.to(torch.float32), S[0].to(torch.float32)], dim=0).contiguous()
            else:
                plan.ext = [(t * width, min(K, (t + 1) * width), S[t, :, :min(K, (t + 1) * width) - t * width].contiguous())
                            for t in range(T)]
        return plan

    def _stuck_at(self, XT, WT, plan: StuckAtPlan, st: RunStats, exact: bool) -> torch.Tensor:
        K, M = XT.shape
        if (WT.shape[0], K) != (plan.N, plan.K):
            raise ValueError("stuck-at plan was made for another weight shape")
        if not plan.groups or M == 0:
            return self._clean(XT, WT)
        st.replayed_columns += len(plan.columns)
        T, width, N = plan.T, plan.width, plan.N
        P_sparse = None
        if isinstance(plan.ext, torch.Tensor):
            # one K tile: the clean product and every sparse prefix in one pass over X
            out = plan.ext @ XT.to(torch.float32)
            acc, P_sparse = out[:N], out[N:].unsqueeze(0)  # (1, F_sparse, M)
        else:
            acc = self._clean(XT, WT)
            if plan.ext is not None:
                Xs = XT.to(self._tile_dtype)
                P_sparse = torch.empty(T, plan.n_sparse, M, dtype=self._tile_dtype)
                for t, (k0, k1, S) in enumerate(plan.ext):
                    torch.mm(S, Xs[k0:k1], out=P_sparse[t])
        deltas = []
        for g in plan.groups:
            if not g.dense:
                P = P_sparse[:, g.offset:g.offset + len(g.rows)]
                deltas.append(self._replay(P.to(_REPLAY_DTYPE), g))
                continue
            Xt = XT.to(self._tile_dtype)
            if T * width != K:
                Xt = torch.nn.functional.pad(Xt, (0, 0, 0, T * width - K))
            Xt = Xt.reshape(T, width, M)
            G = len(g.jg)
            mc = max(1, min(M, _BUDGET // (T * width * G)))
            delta = torch.empty(G, M, dtype=_REPLAY_DTYPE)
            for m0 in range(0, M, mc):
                # (T, width, G, mc) products -> prefix sums down the rows of each tile
                cs = (Xt[:, :, None, m0:m0 + mc] * g.WT.transpose(1, 2)[:, :, :, None]).cumsum_(1)
                P = cs[:, g.rows, g.col]  # (T, F, mc)
                del cs
                delta[:, m0:m0 + mc] = self._replay(P.to(_REPLAY_DTYPE), g)
            deltas.append(delta)
        dcat = torch.cat(deltas, dim=0) if len(deltas) > 1 else deltas[0]
        jc = plan.columns
        fixed = dcat.add_(acc.index_select(0, jc).to(_REPLAY_DTYPE)).to(torch.int32)  # |acc| < 2**31
        if exact and acc.dtype == torch.float32:
            acc = acc.to(torch.float64)
        acc.index_copy_(0, jc, fixed.to(acc.dtype))
        return acc

    @staticmethod
    def _replay(P: torch.Tensor, g: _Group) -> torch.Tensor:
        """The forcing recursion over the faulty rows of each column; ``(G, mc)`` deltas.

        ``P (T, F, mc)``: clean prefixes through each fault's row, faults in the group's
        (rank, column) order. Per column: ``s_1 = force_1(P_1)``,
        ``s_i = force_i(s_{i-1} + P_i - P_{i-1})``, delta ``= s_n - P_n`` summed over tiles.
        """
        _, G = g.blocks[0]
        P0 = P[:, :G]
        s = P0 & g.a[:G]  # |P| < 2**24: no wrap needed
        s |= g.o[:G]
        if len(g.blocks) > 1:
            n1 = g.blocks[1][1]  # columns with two faults or more: a prefix of the group
            prev = P0[:, :n1].clone()
            for off, n in g.blocks[1:]:
                Pk = P[:, off:off + n]
                v = s[:, :n] + Pk - prev[:, :n]
                if v.dtype != torch.int32:
                    v = _wrap32(v)
                v &= g.a[off:off + n]
                v |= g.o[off:off + n]
                s[:, :n] = v
                prev[:, :n] = Pk
            s[:, :n1] -= prev
            s[:, n1:] -= P0[:, n1:]
        else:  # one fault per column
            s -= P0
        return s[0] if s.shape[0] == 1 else s.sum(0, dtype=s.dtype)

    # ---- timing errors --------------------------------------------------------------------
    def _apply_timing(self, XT, WT, acc, ev: TimingEvents, mode: str, keep_bits: int, st: RunStats,
                      exact: bool) -> torch.Tensor:
        n = len(ev)
        st.timing_events += n
        if n == 0:
            return acc
        K, M = XT.shape
        N = WT.shape[0]
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
        X64, W64 = XT.to(torch.float64), WT.to(torch.float64)

        def gather(kk: torch.Tensor, mm: torch.Tensor, jj: torch.Tensor) -> torch.Tensor:
            """X[m, k] * W[k, j], 0 past K (padding rows)."""
            inside = kk < K
            kc = kk.clamp(max=K - 1)
            return X64[kc, mm] * W64[jj, kc] * inside

        if mode == "te-drop":
            # the successor's product is dropped, unless this MAC's own product was dropped
            effective = np.ones(n, dtype=bool)
            adj = np.nonzero((~new_group[1:]) & (r[1:] == r[:-1] + 1))[0] + 1
            for i in adj:  # ascending: effective[i-1] is final
                effective[i] = not effective[i - 1]
            effective &= r < R - 1
            e = np.nonzero(effective)[0]
            dprod = gather(torch.from_numpy(t[e] * R + r[e] + 1), torch.from_numpy(m[e]), torch.from_numpy(j[e]))
            delta = -dprod.to(torch.int64)
            st.timing_effective += int((dprod != 0).sum())
            mm, jj = m[e], j[e]
        else:
            low = (1 << keep_bits) - 1
            P = torch.empty(n, dtype=torch.int64)
            ar = torch.arange(R)
            chunk = max(1, _BUDGET // (4 * R))
            mt, tt, rt, jt = (torch.from_numpy(a) for a in (m, t, r, j))
            for a in range(0, n, chunk):
                sl = slice(a, a + chunk)
                kidx = tt[sl, None] * R + ar[None, :]  # (c, R)
                prods = gather(kidx, mt[sl, None].expand_as(kidx), jt[sl, None].expand_as(kidx))
                P[sl] = (prods * (ar[None, :] <= rt[sl, None])).sum(1).to(torch.int64)
            s = torch.zeros(n, dtype=torch.int64)   # corrupted partial sum after each event
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
            st.timing_effective += int(changed.sum())
            last = np.ones(n, dtype=bool)
            last[:-1] = new_group[1:]
            li = np.nonzero(last)[0]
            delta = s[li] - P[li]
            mm, jj = m[li], j[li]
        # merge deltas per output, then fix only those outputs
        flat = torch.from_numpy(jj * M + mm)
        uniq, inv = torch.unique(flat, return_inverse=True)
        dsum = torch.zeros(len(uniq), dtype=torch.int64).index_add_(0, inv, delta)
        if exact and acc.dtype == torch.float32:
            acc = acc.to(torch.float64)
        elif not acc.is_contiguous():
            acc = acc.contiguous()
        av = acc.view(-1)
        av[uniq] = _wrap32(av[uniq].to(torch.int64) + dsum).to(acc.dtype)
        return acc

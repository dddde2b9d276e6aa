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

What goes wrong is asked of the fault models (:mod:`.fault_models`): a
:class:`~.fault_models.ColumnSegmentFault` says which PEs it touches and what a faulty PE
outputs (the array replays those column segments), a :class:`~.fault_models.MacEventFault`
which MACs fail in a call and how each failing pass changes (the array gathers the clean
products and prefixes of just those events), and any model may change the stationary weights
or the incoming activations. The operands follow the array's number format
(:mod:`.formats`, int8 by default). Activations wider than the format (requantisation
``"none"``: the seed's fixed-point carry) are multiplied exactly in float64 and the sums
wrapped to 32 bits.

Internally everything runs transposed — ``Y^T (N, M) = W^T (N, K) @ X^T (K, M)`` — so that
an output column is a contiguous row (fast gathers and element-wise passes) and an im2col
block ``(K, L)`` is used as it comes, giving the convolution's ``(N, L)`` layout directly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .fault_models import CallContext, ColumnSegmentFault, FaultModel, MacEventFault, StuckAt
from .faults import FaultMap, TimingErrors, TimingEvents
from .formats import INT8, NumberFormat
from .formats import number_format as number_format_of
from .mitigation import MITIGATIONS, fault_models

__all__ = ["EventPasses", "MITIGATIONS", "Prepared", "RunStats", "StuckAtPlan", "SystolicArray"]

#: exact-integer limit of float32 sums
_F32_EXACT = 1 << 24
#: longest K whose float32 product of int8 operands is exact
_K_EXACT_F32 = min(1024, _F32_EXACT // INT8.max_product)
#: exact-integer limit of float64 sums
_F64_EXACT = 1 << 53
#: elements per temporary tensor in the fault replay (float32: 64 MiB)
_BUDGET = 1 << 24
#: columns with more faulty rows than this use the cumulative-sum prefix method
_DENSE_FAULTS_PER_COLUMN = 12


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
    """Operand values as a float tensor that holds them exactly (float64 past 2**24)."""
    t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    if t.dtype not in (torch.float32, torch.float64):
        big = t.numel() and int(t.to(torch.int64).abs().max()) >= _F32_EXACT
        t = t.to(torch.float64 if big else torch.float32)
    return t


def _wrap32(v: torch.Tensor) -> torch.Tensor:
    """Integer values (int64, or a float holding exact integers) wrapped to signed 32 bits, as int64."""
    return v.to(torch.int64).to(torch.int32).to(torch.int64)


def _to_replay(P: torch.Tensor, wide: bool) -> torch.Tensor:
    """Clean prefixes to the replay dtype; wide operands' prefixes are first wrapped to 32 bits."""
    if wide:
        P = P.to(torch.int64).to(torch.int32)
    return P.to(_REPLAY_DTYPE)


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
    payload: tuple          # per payload field an (F, 1) tensor (replay dtype), e.g. and/or masks
    WT: torch.Tensor | None = None   # dense: (T, G, width) the columns' weights
    offset: int = 0         # sparse: first row of this group's prefixes in the extended product


@dataclass
class StuckAtPlan:
    """Replay plan of one weight matrix under one column-segment fault model (see
    :meth:`SystolicArray.plan_column_segments`)."""

    K: int
    N: int
    T: int
    width: int
    groups: list = field(default_factory=list)
    columns: torch.Tensor | None = None
    #: T == 1: ``[W^T; prefix rows]`` ``(N + F_sparse, K)``; T > 1: per tile ``(k0, k1, (F_sparse, k1-k0))``
    ext: Any = None
    n_sparse: int = 0
    model: ColumnSegmentFault | None = None


@dataclass
class Prepared:
    """A weight matrix as the array holds it under a set of fault models (:meth:`SystolicArray.prepare`)."""

    WT: torch.Tensor
    models: list
    plan: StuckAtPlan | None = None
    segment: ColumnSegmentFault | None = None
    events: MacEventFault | None = None


@dataclass
class EventPasses:
    """The failing MACs of one call, sorted by column pass ``(m, t, j)`` then PE row, and the clean
    products and prefixes a :class:`~.fault_models.MacEventFault` replays them from."""

    m: np.ndarray
    t: np.ndarray
    r: np.ndarray
    j: np.ndarray
    new_pass: np.ndarray    # bool: the first event of its pass
    rank: np.ndarray        # position of the event within its pass
    R: int
    K: int
    X64: torch.Tensor       # (K, M) float64
    W64: torch.Tensor       # (N, K) float64

    def products(self, kk: torch.Tensor, mm: torch.Tensor, jj: torch.Tensor) -> torch.Tensor:
        """``X[m, k] * W[k, j]`` (float64, exact), 0 past K (padding rows)."""
        inside = kk < self.K
        kc = kk.clamp(max=self.K - 1)
        return self.X64[kc, mm] * self.W64[jj, kc] * inside

    def successor_products(self, e: np.ndarray) -> torch.Tensor:
        """The products of the MACs one PE row below events ``e`` (float64)."""
        kk = torch.from_numpy(self.t[e] * self.R + self.r[e] + 1)
        return self.products(kk, torch.from_numpy(self.m[e]), torch.from_numpy(self.j[e]))

    def prefixes(self) -> torch.Tensor:
        """int64 ``(n,)``: the clean partial sum of each event's pass through the event's PE row
        (rows ``0..r`` of its tile; unwrapped, exact)."""
        n, R = len(self.m), self.R
        P = torch.empty(n, dtype=torch.int64)
        ar = torch.arange(R)
        chunk = max(1, _BUDGET // (4 * R))
        mt, tt, rt, jt = (torch.from_numpy(a) for a in (self.m, self.t, self.r, self.j))
        for a in range(0, n, chunk):
            sl = slice(a, a + chunk)
            kidx = tt[sl, None] * R + ar[None, :]  # (c, R)
            prods = self.products(kidx, mt[sl, None].expand_as(kidx), jt[sl, None].expand_as(kidx))
            P[sl] = (prods * (ar[None, :] <= rt[sl, None])).sum(1).to(torch.int64)
        return P

    def last_of_pass(self) -> np.ndarray:
        """Indices of the last event of each pass."""
        last = np.ones(len(self.m), dtype=bool)
        last[:-1] = self.new_pass[1:]
        return np.nonzero(last)[0]


class SystolicArray:
    """A weight-stationary ``rows x cols`` array; see the module docstring for the model.

    ``number_format``: the operands' format (:mod:`.formats`; default int8 with 32-bit
    accumulators), a :class:`~.formats.NumberFormat` or its name.
    """

    def __init__(self, rows: int = 256, cols: int = 256, number_format: NumberFormat | str | None = None):
        if rows <= 0 or cols <= 0:
            raise ValueError(f"array size must be positive, got {rows}x{cols}")
        self.rows, self.cols = int(rows), int(cols)
        self.format = number_format_of(number_format)
        if not self.format.integer_accumulator:
            raise ValueError(f"{self.format.name}: the array's replay needs an integer accumulator")
        #: longest K whose float32 product of in-range operands is exact
        self._k_exact = min(1024, _F32_EXACT // int(self.format.max_product))
        # per-tile sums of up to R products must be exact in the replay dtype
        self._tile_dtype = torch.float32 if self.rows <= self._k_exact else torch.float64

    @classmethod
    def parse(cls, text: str) -> "SystolicArray":
        """``"256x256"`` -> ``SystolicArray(256, 256)``."""
        try:
            r, c = (int(v) for v in str(text).lower().split("x"))
        except ValueError:
            raise ValueError(f"array size must look like 256x256, got {text!r}") from None
        return cls(r, c)

    def __repr__(self) -> str:
        fmt = "" if self.format is INT8 else f", {self.format.name!r}"
        return f"SystolicArray({self.rows}, {self.cols}{fmt})"

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
        StuckAt(faults).check(self)
        grid = torch.from_numpy(faults.pe_grid())
        rk = torch.arange(K) % self.rows
        cj = torch.arange(N) % self.cols
        return grid[rk][:, cj]

    # ---- public products ----------------------------------------------------------------
    def matmul(self, x, w, *, faults: FaultMap | None = None, mitigation: str = "none",
               timing: TimingErrors | None = None, rng: np.random.Generator | None = None,
               events: TimingEvents | None = None, stats: RunStats | None = None,
               models: Sequence[FaultModel] = ()):
        """int32 accumulators of ``x @ w`` on this array.

        ``x``: ``(M, K)`` operand values, ``w``: ``(K, N)`` (numpy or torch, integer or float
        dtype holding integers). Returns int32 ``(M, N)``, numpy if ``x`` was numpy.
        ``faults`` with ``mitigation="none"`` injects the stuck-at faults, with ``"fap"`` prunes
        and bypasses the faulty PEs. ``timing`` samples timing errors (from ``rng``, or
        ``default_rng(timing.seed)``); ``events`` gives them explicitly (mode from ``timing``,
        default ``"propagate"``). ``models``: further :class:`~.fault_models.FaultModel` s.
        """
        as_numpy = not isinstance(x, torch.Tensor)
        acc = self.accumulate(_as_float_tensor(x), _as_float_tensor(w), faults=faults, mitigation=mitigation,
                              timing=timing, rng=rng, events=events, stats=stats, models=models)
        out = acc.to(torch.int64).to(torch.int32)
        return out.numpy() if as_numpy else out

    def accumulate(self, X: torch.Tensor, W: torch.Tensor, **kw) -> torch.Tensor:
        """``X (M, K)``, ``W (K, N)`` float tensors of operand values -> ``(M, N)`` accumulators.

        Same options as :meth:`accumulate_t` (a ``plan`` must come from :meth:`plan_stuck_at`).
        """
        return self.accumulate_t(X.t(), W.t(), **kw).t()

    def accumulate_t(self, XT: torch.Tensor, WT: torch.Tensor, *, faults: FaultMap | None = None,
                     mitigation: str = "none", timing: TimingErrors | None = None,
                     rng: np.random.Generator | None = None, events: TimingEvents | None = None,
                     stats: RunStats | None = None, plan: StuckAtPlan | None = None,
                     exact: bool = True, models: Sequence[FaultModel] = ()) -> torch.Tensor:
        """The fast path, transposed: ``XT (K, M)``, ``WT (N, K)`` float tensors holding operand
        values -> ``(N, M)`` accumulators.

        The result holds the exact int32 accumulator values in a float32, float64 or int64
        tensor (whichever was cheapest to keep exact); ``.to(torch.int64)`` gives the integers.
        With ``exact=False`` it is float32 even where a corrupted accumulator needs more than 24
        bits (rounded as ``.to(torch.float32)`` would round it): what a caller that dequantises
        in float32 anyway wants. ``plan`` (from :meth:`plan_stuck_at_t` for this ``WT`` and
        ``faults``) may be passed precomputed when one layer runs many times. The classic
        settings become fault models (:func:`~.mitigation.fault_models`); ``models`` adds others.
        """
        ms = fault_models(faults, mitigation, timing, None, events) + list(models)
        prepared = self.prepare(WT, ms, plan=plan)
        return self.run(XT, prepared, rng=rng, stats=stats, exact=exact)

    def prepare(self, WT: torch.Tensor, models: Sequence[FaultModel], *, ctx: CallContext | None = None,
                plan: StuckAtPlan | None = None, apply_weights: bool = True) -> Prepared:
        """Ask the fault models about a weight matrix ``WT (N, K)`` once: each checks it fits the
        array, changes the weights (``apply_weights``), and the permanent one's column segments
        are planned. Raises ValueError for models that cannot run together."""
        models = list(models)
        for m in models:
            m.check(self)
        seg = [m for m in models if isinstance(m, ColumnSegmentFault)]
        ev = [m for m in models if isinstance(m, MacEventFault)]
        if seg and ev:
            raise ValueError("timing errors together with a stuck-at fault map are not modelled")
        if len(seg) > 1 or len(ev) > 1:
            raise ValueError("one permanent and one per-call fault model at most run on the array at once")
        if apply_weights:
            ctx = ctx or CallContext(format=self.format)
            for m in models:
                WT = m.weights(self, WT, ctx)
        if seg and plan is None:
            plan = self.plan_column_segments(WT, seg[0])
        return Prepared(WT, models, plan if seg else None, seg[0] if seg else None, ev[0] if ev else None)

    def run(self, XT: torch.Tensor, prepared: Prepared, *, rng: np.random.Generator | None = None,
            stats: RunStats | None = None, exact: bool = True, ctx: CallContext | None = None,
            apply_inputs: bool = True, wide: bool | None = None) -> torch.Tensor:
        """The accumulators ``(N, M)`` of ``XT (K, M)`` times a :meth:`prepare` d weight matrix
        (see :meth:`accumulate_t` for the result's dtype). ``wide``: whether some operand is
        outside the format's range (requantisation ``"none"``); None checks."""
        WT = prepared.WT
        K, M = XT.shape
        N, K2 = WT.shape
        if K != K2:
            raise ValueError(f"matmul shapes do not match: x {(M, K)}, w {(K2, N)}")
        st = RunStats(calls=1, macs=M * self.n_tiles(K) * self.rows * N)
        if apply_inputs:
            ctx = ctx or CallContext(format=self.format)
            for m in prepared.models:
                XT = m.inputs(XT, ctx)
        if wide is None:
            wide = bool(XT.numel()) and float(XT.abs().max()) > self.format.act_bound
        if prepared.plan is not None:
            acc = self._stuck_at(XT, WT, prepared.plan, st, exact, wide)
        else:
            acc = self._clean(XT, WT, wide)
        if prepared.events is not None:
            model = prepared.events
            ev = model.events(M, self.n_tiles(K), self.rows, N,
                              rng if rng is not None else np.random.default_rng(model.seed))
            acc = self._apply_events(XT, WT, acc, ev, model, st, exact)
        if stats is not None:
            stats.add(st)
        return acc

    # ---- clean product --------------------------------------------------------------------
    def _clean(self, XT: torch.Tensor, WT: torch.Tensor, wide: bool = False) -> torch.Tensor:
        K = XT.shape[0]
        if wide:
            return self._clean_wide(XT, WT)
        Xf, Wf = XT.to(torch.float32), WT.to(torch.float32)
        if K <= self._k_exact:
            return Wf @ Xf
        acc = None
        for a in range(0, K, self._k_exact):
            part = (Wf[:, a:a + self._k_exact] @ Xf[a:a + self._k_exact]).to(torch.float64)
            acc = part if acc is None else acc.add_(part)
        if K * self.format.max_product >= (1 << 31):  # can wrap: do it exactly
            acc = _wrap32(acc)
        return acc

    @staticmethod
    def _clean_wide(XT: torch.Tensor, WT: torch.Tensor) -> torch.Tensor:
        """Operands beyond the format (up to 32 bits): float64 products in K chunks whose sums stay
        below 2**53, each wrapped to 32 bits; int64 result."""
        X64, W64 = XT.to(torch.float64), WT.to(torch.float64)
        bound = max(1.0, float(X64.abs().max()) * max(1.0, float(W64.abs().max())))
        step = max(1, int(_F64_EXACT // bound))
        acc = None
        for a in range(0, XT.shape[0], step):
            part = _wrap32(W64[:, a:a + step] @ X64[a:a + step])
            acc = part if acc is None else _wrap32(acc + part)
        return acc if acc is not None else torch.zeros(WT.shape[0], XT.shape[1], dtype=torch.int64)

    # ---- column-segment replay (permanent faults) --------------------------------------------
    def plan_stuck_at(self, W: torch.Tensor, faults: FaultMap) -> StuckAtPlan:
        """The replay plan for ``W (K, N)`` (for :meth:`accumulate`)."""
        return self.plan_stuck_at_t(W.t(), faults)

    def plan_stuck_at_t(self, WT: torch.Tensor, faults: FaultMap) -> StuckAtPlan:
        """The replay plan of ``WT (N, K)`` under a stuck-at fault map."""
        model = StuckAt(faults)
        model.check(self)
        return self.plan_column_segments(WT, model)

    def plan_column_segments(self, WT: torch.Tensor, model: ColumnSegmentFault) -> StuckAtPlan:
        """Everything the replay of ``WT (N, K)`` under a permanent fault model needs but ``X``.

        Faulty columns are grouped (by fault count) into batches; in a group, columns are
        ordered by descending fault count and faults by (rank within column, column), so that
        the k-th faults of all columns having at least k+1 form one contiguous block over a
        prefix of the columns (no gathers in the replay).
        """
        N, K = WT.shape
        T = self.n_tiles(K)
        width = self.rows if T > 1 else K  # a single partial tile needs no padding
        by_col = self._faults_by_column(model, N)
        plan = StuckAtPlan(K=K, N=N, T=T, width=width, model=model)
        if not by_col:
            return plan
        Wt = WT.to(self._tile_dtype)
        if T * width != K:
            Wt = torch.nn.functional.pad(Wt, (0, T * width - K))
        Wt = Wt.view(N, T, width).transpose(0, 1)  # (T, N, width)
        sparse_rows: list[torch.Tensor] = []  # (T, F_g, width) masked weight rows
        for gcols in self._group_columns(by_col, T, width):
            g = self._make_group(gcols, by_col, width)
            if g.dense:
                g.WT = Wt[:, g.jg].contiguous()  # (T, G, width)
            else:  # each fault's column, masked to the rows at and above the fault
                g.offset = sum(x.shape[1] for x in sparse_rows)
                ar = torch.arange(width)
                sparse_rows.append(Wt[:, g.jg[g.col]] * (ar[None, :] <= g.rows[:, None]).to(Wt.dtype))
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

    def _faults_by_column(self, model: ColumnSegmentFault, N: int) -> dict[int, list[tuple[int, tuple]]]:
        """``{output column j: [(faulty row, payload), ...]}``: the PEs the model says it touches,
        repeated over every output column mapped to their PE column."""
        by_col: dict[int, list[tuple[int, tuple]]] = {}
        for (r, c), payload in model.pe_payloads().items():
            if c >= N:
                continue  # this PE column holds no output column of the layer
            for j in range(c, N, self.cols):
                by_col.setdefault(j, []).append((r, tuple(payload)))
        return by_col

    @staticmethod
    def _group_columns(by_col: dict, T: int, width: int) -> list[list[int]]:
        """Batches of faulty columns, sparse (few faults each, at most 1024 faults per batch)
        apart from dense ones (bounded by the replay's memory budget)."""
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
        return groups

    @staticmethod
    def _make_group(gcols: list[int], by_col: dict, width: int) -> _Group:
        gcols = sorted(gcols, key=lambda j: (-len(by_col[j]), j))
        faults_of = [sorted(by_col[j], key=lambda e: e[0]) for j in gcols]
        rows_f, col_f, pay_f, blocks = [], [], [], []
        for k in range(len(faults_of[0])):
            n_k = sum(1 for fl in faults_of if len(fl) > k)
            blocks.append((len(rows_f), n_k))
            for li in range(n_k):
                r, payload = faults_of[li][k]
                # rows past K in a single partial tile are clamped to K-1 (padding adds 0)
                rows_f.append(min(r, width - 1))
                col_f.append(li)
                pay_f.append(payload)
        payload = tuple(torch.tensor([p[i] for p in pay_f], dtype=_REPLAY_DTYPE)[:, None]
                        for i in range(len(pay_f[0])))
        return _Group(dense=len(faults_of[0]) > _DENSE_FAULTS_PER_COLUMN, jg=torch.tensor(gcols, dtype=torch.int64),
                      rows=torch.tensor(rows_f, dtype=torch.int64), col=torch.tensor(col_f, dtype=torch.int64),
                      blocks=blocks, payload=payload)

    def _sparse_prefixes(self, XT: torch.Tensor, WT: torch.Tensor, plan: StuckAtPlan,
                         wide: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The clean product and the clean prefixes ``(T, F_sparse, M)`` of the sparse groups."""
        T, N, M = plan.T, plan.N, XT.shape[1]
        if isinstance(plan.ext, torch.Tensor):
            # one K tile: the clean product and every sparse prefix in one pass over X
            if wide:
                out = plan.ext.to(torch.float64) @ XT.to(torch.float64)
                return _wrap32(out[:N]), out[N:].unsqueeze(0)
            out = plan.ext @ XT.to(torch.float32)
            return out[:N], out[N:].unsqueeze(0)  # (1, F_sparse, M)
        acc = self._clean(XT, WT, wide)
        if plan.ext is None:
            return acc, None
        dt = torch.float64 if wide else self._tile_dtype
        Xs = XT.to(dt)
        P_sparse = torch.empty(T, plan.n_sparse, M, dtype=dt)
        for t, (k0, k1, S) in enumerate(plan.ext):
            torch.mm(S.to(dt), Xs[k0:k1], out=P_sparse[t])
        return acc, P_sparse

    def _dense_deltas(self, XT: torch.Tensor, g: _Group, plan: StuckAtPlan, model: ColumnSegmentFault,
                      wide: bool) -> torch.Tensor:
        """Deltas ``(G, M)`` of a dense group: prefixes by a cumulative sum of the columns' products."""
        K, M = XT.shape
        T, width = plan.T, plan.width
        dt = torch.float64 if wide else self._tile_dtype
        Xt = XT.to(dt)
        if T * width != K:
            Xt = torch.nn.functional.pad(Xt, (0, 0, 0, T * width - K))
        Xt = Xt.reshape(T, width, M)
        G = len(g.jg)
        Wg = g.WT.to(dt).transpose(1, 2)
        mc = max(1, min(M, _BUDGET // (T * width * G)))
        delta = torch.empty(G, M, dtype=_REPLAY_DTYPE)
        for m0 in range(0, M, mc):
            # (T, width, G, mc) products -> prefix sums down the rows of each tile
            cs = (Xt[:, :, None, m0:m0 + mc] * Wg[:, :, :, None]).cumsum_(1)
            P = cs[:, g.rows, g.col]  # (T, F, mc)
            del cs
            delta[:, m0:m0 + mc] = self._replay(_to_replay(P, wide), g, model)
        return delta

    def _stuck_at(self, XT, WT, plan: StuckAtPlan, st: RunStats, exact: bool, wide: bool = False) -> torch.Tensor:
        K, M = XT.shape
        if (WT.shape[0], K) != (plan.N, plan.K):
            raise ValueError("stuck-at plan was made for another weight shape")
        if not plan.groups or M == 0:
            return self._clean(XT, WT, wide)
        st.replayed_columns += len(plan.columns)
        acc, P_sparse = self._sparse_prefixes(XT, WT, plan, wide)
        deltas = []
        for g in plan.groups:
            if g.dense:
                deltas.append(self._dense_deltas(XT, g, plan, plan.model, wide))
            else:
                P = P_sparse[:, g.offset:g.offset + len(g.rows)]
                deltas.append(self._replay(_to_replay(P, wide), g, plan.model))
        dcat = torch.cat(deltas, dim=0) if len(deltas) > 1 else deltas[0]
        jc = plan.columns
        fixed = dcat.add_(acc.index_select(0, jc).to(dcat.dtype)).to(torch.int32)  # wraps to 32 bits
        if exact and acc.dtype == torch.float32:
            acc = acc.to(torch.float64)
        acc.index_copy_(0, jc, fixed.to(acc.dtype))
        return acc

    @staticmethod
    def _replay(P: torch.Tensor, g: _Group, model: ColumnSegmentFault) -> torch.Tensor:
        """The corruption recursion over the faulty rows of each column; ``(G, mc)`` deltas.

        ``P (T, F, mc)``: clean prefixes through each fault's row (32-bit values), faults in the
        group's (rank, column) order. Per column: ``s_1 = corrupt_1(P_1)``,
        ``s_i = corrupt_i(s_{i-1} + P_i - P_{i-1})``, delta ``= s_n - P_n`` summed over tiles.
        """
        _, G = g.blocks[0]
        P0 = P[:, :G]
        s = model.corrupt(P0.clone(), tuple(p[:G] for p in g.payload))
        if len(g.blocks) > 1:
            n1 = g.blocks[1][1]  # columns with two faults or more: a prefix of the group
            prev = P0[:, :n1].clone()
            for off, n in g.blocks[1:]:
                Pk = P[:, off:off + n]
                v = s[:, :n] + Pk - prev[:, :n]
                if v.dtype != torch.int32:
                    v = _wrap32(v)
                s[:, :n] = model.corrupt(v, tuple(p[off:off + n] for p in g.payload))
                prev[:, :n] = Pk
            s[:, :n1] -= prev
            s[:, n1:] -= P0[:, n1:]
        else:  # one fault per column
            s -= P0
        return s[0] if s.shape[0] == 1 else s.sum(0, dtype=s.dtype)

    # ---- per-call MAC events (timing errors) ----------------------------------------------
    def _event_passes(self, XT, WT, ev: TimingEvents) -> EventPasses:
        """Events checked against the layer's ``(M, T, R, N)`` and sorted by pass ``(m, t, j)``, row."""
        K, M = XT.shape
        N = WT.shape[0]
        R, T = self.rows, self.n_tiles(K)
        if (ev.m.max() >= M or ev.t.max() >= T or ev.r.max() >= R or ev.j.max() >= N
                or min(ev.m.min(), ev.t.min(), ev.r.min(), ev.j.min()) < 0):
            raise ValueError("timing event outside the layer's (M, T, R, N) range")
        order = np.lexsort((ev.r, ev.j, ev.t, ev.m))
        m, t, r, j = ev.m[order], ev.t[order], ev.r[order], ev.j[order]
        key = (m * T + t) * N + j
        new_pass = np.ones(len(m), dtype=bool)
        new_pass[1:] = key[1:] != key[:-1]
        start = np.maximum.accumulate(np.where(new_pass, np.arange(len(m)), 0))
        return EventPasses(m, t, r, j, new_pass, np.arange(len(m)) - start, R, K,
                           XT.to(torch.float64), WT.to(torch.float64))

    def _apply_events(self, XT, WT, acc, ev: TimingEvents, model: MacEventFault, st: RunStats,
                      exact: bool) -> torch.Tensor:
        n = len(ev)
        st.timing_events += n
        if n == 0:
            return acc
        M = XT.shape[1]
        passes = self._event_passes(XT, WT, ev)
        idx, delta, effective = model.replay(passes)
        st.timing_effective += int(effective)
        mm, jj = passes.m[idx], passes.j[idx]
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

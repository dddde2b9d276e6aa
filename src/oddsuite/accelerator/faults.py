"""Fault models of the simulated systolic array, with seeded, replayable fault maps.

Three kinds (seed ``002``, section 2; spec ``accelerator.md``):

- **Permanent stuck-at** (:class:`Fault`, :class:`FaultMap`): PE ``(row, col)`` forces bit
  ``bit`` (0 = LSB, 31 = sign) of the 32-bit two's-complement partial sum it outputs to 0
  (``"stuck-at-0"``) or 1 (``"stuck-at-1"``). Several faults on one PE combine (in list order,
  a later fault on the same bit wins). Every later PE of the column adds onto the corrupted
  value; the fault acts on every tile and every input row that passes through the PE, and on
  padding rows too (a partial K tile still flows through all ``R`` PE rows).
- **Timing errors** (:class:`TimingErrors`, :class:`TimingEvents`): every MAC operation —
  one PE, one input row, one K tile, one output column — fails independently with
  probability ``rate``. Two behaviours:

  * ``"propagate"`` (timing error propagation, TEP): the failing MAC latches its result with
    the top bits lost — only the low ``keep_bits`` bits of the correct 32-bit sum arrive
    (the slow carry chain into the high bits misses the clock edge; those bits read 0). The
    erroneous value flows on down the column. A negative partial sum turns into a large
    positive one (``2**keep_bits - |v|``); a non-negative sum below ``2**keep_bits`` passes
    unharmed, so not every failing MAC corrupts the output (the count of those that did is
    reported as ``effective``).
  * ``"te-drop"`` (TE-Drop): the failing MAC's own contribution is added correctly by
    stealing the next cycle from its successor in the column, whose product is dropped (the
    successor forwards the partial sum unchanged). A failure of a MAC whose product is
    already being dropped has no effect; a failure in the bottom PE row drops nothing (its
    successor is the accumulator, which has slack).
- **Transient bit flips** (:func:`flip_bits_int8`): each bit of an int8 weight or activation
  flips with a given probability, as PyTorchFI does.

Fault maps are drawn from ``numpy.random.default_rng(seed)``. For one seed the maps of
increasing size are *nested* (the 16-PE map contains the 4-PE map), so accuracy against
fault count is not blurred by drawing unrelated maps per point. Maps round-trip through JSON::

    {"format": "oddsuite.faultmap/1", "rows": 256, "cols": 256, "seed": 3,
     "faults": [{"row": 17, "col": 200, "bit": 27, "kind": "stuck-at-1"}, ...]}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from oddsuite.errors import OddsuiteError

FORMAT = "oddsuite.faultmap/1"
KINDS = ("stuck-at-0", "stuck-at-1")
TIMING_MODES = ("propagate", "te-drop")


class FaultMapError(OddsuiteError):
    """A fault map file is malformed; the message names the file and the field."""


def _int32(v: int) -> int:
    """Python int to the signed 32-bit value with the same bit pattern."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


@dataclass(frozen=True, order=True)
class Fault:
    """A permanent stuck-at fault on bit ``bit`` of the partial sum PE ``(row, col)`` outputs."""

    row: int
    col: int
    bit: int
    kind: str = "stuck-at-1"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, got {self.kind!r}")
        if not 0 <= int(self.bit) <= 31:
            raise ValueError(f"fault bit must be in 0..31, got {self.bit}")
        if int(self.row) < 0 or int(self.col) < 0:
            raise ValueError(f"fault PE must be non-negative, got ({self.row}, {self.col})")

    def to_dict(self) -> dict:
        return {"row": int(self.row), "col": int(self.col), "bit": int(self.bit), "kind": self.kind}


@dataclass(frozen=True)
class FaultMap:
    """The stuck-at faults of one array (one "chip"): which PEs, which bit, which kind."""

    rows: int
    cols: int
    faults: tuple[Fault, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(self.faults))
        for f in self.faults:
            if f.row >= self.rows or f.col >= self.cols:
                raise ValueError(f"fault at PE ({f.row}, {f.col}) is outside the {self.rows}x{self.cols} array")

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def random(cls, rows: int, cols: int, n_faulty: int, seed: int,
               bits: Sequence[int] | None = None, kinds: Sequence[str] = KINDS) -> "FaultMap":
        """``n_faulty`` distinct faulty PEs, each with one stuck-at fault.

        The PE order, bit (uniform over ``bits``, default all 32) and kind (uniform over
        ``kinds``) come from ``default_rng(seed)``; maps for one seed are nested in ``n_faulty``.
        """
        n_pe = rows * cols
        if not 0 <= n_faulty <= n_pe:
            raise ValueError(f"n_faulty must be in 0..{n_pe}, got {n_faulty}")
        bits = np.arange(32) if bits is None else np.asarray(list(bits), dtype=np.int64)
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"fault kind must be one of {KINDS}, got {k!r}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(n_pe)
        bit_all = rng.choice(bits, size=n_pe)
        kind_all = rng.integers(0, len(kinds), size=n_pe)
        faults = tuple(
            Fault(int(p // cols), int(p % cols), int(b), kinds[int(k)])
            for p, b, k in zip(order[:n_faulty], bit_all[:n_faulty], kind_all[:n_faulty])
        )
        return cls(rows, cols, faults, seed=seed)

    # ---- views ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.faults)

    @property
    def faulty_pes(self) -> list[tuple[int, int]]:
        """Distinct faulty PEs, sorted."""
        return sorted({(f.row, f.col) for f in self.faults})

    def pe_masks(self) -> dict[tuple[int, int], tuple[int, int]]:
        """Per faulty PE ``(and_mask, or_mask)`` (signed 32-bit ints): ``out = (v & and) | or``."""
        return dict(self._pe_masks)

    @cached_property
    def _pe_masks(self) -> dict[tuple[int, int], tuple[int, int]]:
        out: dict[tuple[int, int], tuple[int, int]] = {}
        for f in self.faults:
            a, o = out.get((f.row, f.col), (-1, 0))
            bit = 1 << f.bit
            if f.kind == "stuck-at-0":
                a, o = a & ~bit, o & ~bit
            else:
                a, o = a | bit, o | bit
            out[(f.row, f.col)] = (_int32(a), _int32(o))
        return out

    def pe_grid(self) -> np.ndarray:
        """Boolean ``(rows, cols)`` grid, True at faulty PEs."""
        g = np.zeros((self.rows, self.cols), dtype=bool)
        for r, c in self.faulty_pes:
            g[r, c] = True
        return g

    # ---- JSON ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "rows": int(self.rows), "cols": int(self.cols),
                "seed": None if self.seed is None else int(self.seed),
                "faults": [f.to_dict() for f in self.faults]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict, source: str = "<fault map>") -> "FaultMap":
        def need(obj, key, typ, where):
            if not isinstance(obj, dict) or key not in obj:
                raise FaultMapError(f"{source}: {where}: missing field {key!r}")
            v = obj[key]
            if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
                raise FaultMapError(f"{source}: {where}.{key}: expected an integer, got {v!r}")
            if typ is str and not isinstance(v, str):
                raise FaultMapError(f"{source}: {where}.{key}: expected a string, got {v!r}")
            return v

        if not isinstance(d, dict):
            raise FaultMapError(f"{source}: expected a JSON object")
        if d.get("format", FORMAT) != FORMAT:
            raise FaultMapError(f"{source}: format: expected {FORMAT!r}, got {d.get('format')!r}")
        rows, cols = need(d, "rows", int, "map"), need(d, "cols", int, "map")
        if rows <= 0 or cols <= 0:
            raise FaultMapError(f"{source}: rows/cols must be positive, got {rows}x{cols}")
        seed = d.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultMapError(f"{source}: seed: expected an integer or null, got {seed!r}")
        raw = d.get("faults", [])
        if not isinstance(raw, list):
            raise FaultMapError(f"{source}: faults: expected a list")
        faults = []
        for i, fd in enumerate(raw):
            where = f"faults[{i}]"
            r, c = need(fd, "row", int, where), need(fd, "col", int, where)
            b, k = need(fd, "bit", int, where), need(fd, "kind", str, where)
            if not (0 <= r < rows and 0 <= c < cols):
                raise FaultMapError(f"{source}: {where}: PE ({r}, {c}) outside the {rows}x{cols} array")
            if not 0 <= b <= 31:
                raise FaultMapError(f"{source}: {where}.bit: expected 0..31, got {b}")
            if k not in KINDS:
                raise FaultMapError(f"{source}: {where}.kind: expected one of {KINDS}, got {k!r}")
            faults.append(Fault(r, c, b, k))
        return cls(rows, cols, tuple(faults), seed=seed)

    @classmethod
    def from_json(cls, text: str, source: str = "<fault map>") -> "FaultMap":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FaultMapError(f"{source}: not valid JSON: {e}") from e
        return cls.from_dict(d, source)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary file in the same folder, then rename)."""
        from oddsuite.fileio import write_json

        path = Path(path)
        write_json(path, self.to_dict(), sort_keys=False)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FaultMap":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise FaultMapError(f"{path}: cannot read fault map: {e}") from e
        return cls.from_json(text, str(path))


@dataclass(frozen=True)
class TimingErrors:
    """Timing errors from voltage underscaling: every MAC fails with probability ``rate``."""

    rate: float
    mode: str = "propagate"
    keep_bits: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"timing error rate must be in [0, 1], got {self.rate}")
        if self.mode not in TIMING_MODES:
            raise ValueError(f"timing mode must be one of {TIMING_MODES}, got {self.mode!r}")
        if not 1 <= int(self.keep_bits) <= 31:
            raise ValueError(f"keep_bits must be in 1..31, got {self.keep_bits}")

    def to_dict(self) -> dict:
        return {"rate": float(self.rate), "mode": self.mode, "keep_bits": int(self.keep_bits), "seed": int(self.seed)}


@dataclass(frozen=True)
class TimingEvents:
    """Failing MAC operations of one layer call: input row ``m``, K tile ``t``, PE row ``r``,
    output column ``j`` (the PE is ``(r, j mod C)``). Arrays of equal length, int64."""

    m: np.ndarray
    t: np.ndarray
    r: np.ndarray
    j: np.ndarray

    def __post_init__(self) -> None:
        arrs = [np.asarray(a, dtype=np.int64).reshape(-1) for a in (self.m, self.t, self.r, self.j)]
        if len({len(a) for a in arrs}) != 1:
            raise ValueError("TimingEvents: m, t, r, j differ in length")
        for name, a in zip("mtrj", arrs):
            object.__setattr__(self, name, a)

    def __len__(self) -> int:
        return len(self.m)

    @staticmethod
    def of(events: Iterable[tuple[int, int, int, int]]) -> "TimingEvents":
        ev = np.asarray(list(events), dtype=np.int64).reshape(-1, 4)
        return TimingEvents(ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3])


def sample_timing_events(M: int, T: int, R: int, N: int, rate: float, rng: np.random.Generator) -> TimingEvents:
    """Draw the failing MACs among ``M*T*R*N`` operations, each failing with probability ``rate``.

    The count is Binomial(ops, rate); positions are uniform (drawn with replacement, duplicates
    merged — a negligible correction at the rates that matter).
    """
    n_ops = int(M) * int(T) * int(R) * int(N)
    if rate <= 0 or n_ops == 0:
        z = np.zeros(0, np.int64)
        return TimingEvents(z, z, z, z)
    n = int(rng.binomial(n_ops, min(float(rate), 1.0)))
    idx = np.unique(rng.integers(0, n_ops, size=n, dtype=np.int64))
    m, t, r, j = np.unravel_index(idx, (M, T, R, N))
    return TimingEvents(m, t, r, j)


def flip_bits_int8(q: torch.Tensor, rate: float, rng: np.random.Generator) -> torch.Tensor:
    """Transient faults: flip each bit of an int8-valued tensor with probability ``rate``.

    Accepts int8 or a float tensor holding int8 values; returns the same dtype (a copy).
    """
    if rate <= 0 or q.numel() == 0:
        return q.clone()
    n_bits = q.numel() * 8
    n = int(rng.binomial(n_bits, min(float(rate), 1.0)))
    flat = q.detach().reshape(-1).to(torch.int64).numpy().astype(np.int8).view(np.uint8).copy()
    if n:
        pos = np.unique(rng.integers(0, n_bits, size=n, dtype=np.int64))
        np.bitwise_xor.at(flat, pos // 8, (1 << (pos % 8)).astype(np.uint8))
    out = torch.from_numpy(flat.view(np.int8).astype(np.int64)).reshape(q.shape)
    return out.to(q.dtype)

"""Atomic writes, the one JSON writer and file hashing, shared by every stage.

May import nothing of oddsuite but ``errors``: it sits below every package.

A write goes to a temporary file in the target's folder (``.NAME.<random>.tmp``, created
with mode 0666 so the user's umask applies: 0644 under umask 022), is flushed and fsynced,
then renamed over the target: a reader (or a resumed run) sees the old file or the new
one, never half of one. A writer killed mid-way leaves only a ``.NAME.*.tmp`` file, which
nothing lists (:func:`is_temp_name`) and a resumed suite sweeps away.

JSON: :func:`json_bytes` / :func:`write_json` are the only JSON encoders for files.
UTF-8, ``indent`` 1 and a trailing newline by default. ``sort_keys=True`` (the default)
gives the canonical form every hashed or signed file uses (a suite's manifest and
annotations); documents meant to be read top-down (metrics.json, run.json) keep their
insertion order with ``sort_keys=False``. Non-finite floats: ``nan="error"`` (the default)
raises ``ValueError`` on NaN or ±inf, so a hashed file never holds a value strict JSON
readers refuse; ``nan="null"`` first turns NaN/±inf into ``null`` and numpy scalars and
arrays into plain Python values (:func:`plain_json`), for results where "no value" is a
legitimate outcome (an AP with no ground truth).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import IO, Any, Callable, Iterator

#: errno values that mean "the disk (or the file-size limit) is full"
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_temp_name(name: str) -> bool:
    """True for the name of an atomic writer's temporary file (``.NAME.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` is an OSError for a full disk (ENOSPC), quota (EDQUOT) or file-size limit (EFBIG)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def _create_temp(path: Path) -> tuple[int, Path]:
    """Open a new temporary file next to ``path``; mode 0666 less the umask (unlike mkstemp's 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` for writers that need a file name (``onnx.save``,
    ``safetensors.save_file``, ``torch.onnx.export``): on a clean exit the file is fsynced
    and renamed over ``path``; on an exception it is removed and the target is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, write: Callable[[IO[Any]], Any], binary: bool = True) -> None:
    """Call ``write(f)`` on a temporary file, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data), binary=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), binary=False)


def plain_json(obj: Any) -> Any:
    """Recursively turn NaN/±inf into None and numpy scalars and arrays into Python values
    (dict keys become strings): what strict JSON can hold."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain_json(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def json_bytes(obj: Any, *, sort_keys: bool = True, indent: int | None = 1, nan: str = "error") -> bytes:
    """``obj`` as UTF-8 JSON with a trailing newline (see the module doc for the options).

    Raises ValueError for NaN/±inf with ``nan="error"``, TypeError for values JSON cannot hold."""
    if nan not in ("error", "null"):
        raise ValueError(f"nan must be 'error' or 'null', got {nan!r}")
    if nan == "null":
        obj = plain_json(obj)
    text = json.dumps(obj, sort_keys=sort_keys, indent=indent, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = True, indent: int | None = 1,
               nan: str = "error") -> None:
    """Write :func:`json_bytes` of ``obj`` atomically to ``path``."""
    atomic_write_bytes(path, json_bytes(obj, sort_keys=sort_keys, indent=indent, nan=nan))


def write_parquet(path: str | Path, table: Any) -> None:
    """Write a pandas DataFrame atomically as parquet, without its index."""
    atomic_write(path, lambda f: table.to_parquet(f, index=False), binary=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()

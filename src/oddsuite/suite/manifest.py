"""Manifests: what a folder of evidence holds, file by file, and its identity.

A manifest (``manifest.json``) maps every file of a suite, results folder or model folder
(paths relative to the folder, ``/``-separated) to its SHA-256. Its *canonical form* is
the manifest as :func:`oddsuite.fileio.json_bytes` writes it (UTF-8, keys sorted, indent
1, trailing newline), and the folder's *identity* is the SHA-256 of that form: the one
value that names exactly this suite (or results, or model) in run.json, metrics.json, the
report and a signature. ``generate`` writes manifests in canonical form, so a suite's
identity is also the SHA-256 of its manifest.json bytes.

Reading is strict: the JSON must be an object without duplicate keys or non-finite
numbers, and every listed path must be a plain relative path inside the folder (no
absolute paths, no ``..``, no backslashes, nothing under ``.state/``). Every problem is a
``SuiteError`` naming the file and the entry. Imports ``fileio``, ``errors`` and
``suite.layout`` only.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from oddsuite.errors import SuiteError
from oddsuite.fileio import json_bytes, sha256_file
from oddsuite.suite.layout import FOLDER_FORMAT, FORMAT, MANIFEST, UNHASHED_DIRS, UNHASHED_FILES

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: the kinds of folder a manifest may describe
KINDS = ("suite", "results", "model")


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The canonical form of a manifest (the bytes its identity hashes and a signature signs)."""
    return json_bytes(manifest)


def identity_of(manifest: dict[str, Any]) -> str:
    """Hex SHA-256 of the manifest's canonical form."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def check_relative_path(rel: Any, where: str) -> str:
    """``rel`` when it names a file inside the folder; else a SuiteError saying why."""
    if not isinstance(rel, str) or not rel:
        raise SuiteError(f"{where}: expected a non-empty relative path, got {rel!r}")
    shown = rel if len(rel) <= 120 else rel[:117] + "..."
    if "\x00" in rel or "\\" in rel:
        raise SuiteError(f"{where}: {shown!r}: a path may not hold NUL or backslash characters")
    if rel.startswith("/") or re.match(r"[A-Za-z]:", rel):
        raise SuiteError(f"{where}: {shown!r}: absolute paths are refused (paths are relative to the folder)")
    try:
        encoded = rel.encode("utf-8")
    except UnicodeEncodeError:
        raise SuiteError(f"{where}: {shown!r}: not a UTF-8 file name") from None
    parts = rel.split("/")
    if len(encoded) > 4096 or any(len(p.encode("utf-8")) > 255 for p in parts):
        raise SuiteError(f"{where}: {shown!r}: a name too long for a file system")
    if any(p in ("", ".", "..") for p in parts):
        raise SuiteError(f"{where}: {shown!r}: a path may not hold '..', '.' or empty parts (it must stay "
                         f"inside the folder)")
    if rel in UNHASHED_FILES or any(p in UNHASHED_DIRS for p in parts[:-1]):  # resume state, at any depth
        raise SuiteError(f"{where}: {shown!r}: this file is never part of a manifest")
    return rel


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text} is out of range")
    return v


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_int(man: dict[str, Any], key: str, where: str) -> None:
    v = man.get(key)
    if key in man and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
        raise SuiteError(f"{where}: field {key!r}: expected a non-negative integer, got {v!r}")


def parse_manifest(data: bytes, where: str | Path) -> dict[str, Any]:
    """Parse and check manifest bytes (see the module doc); ``where`` names the file in errors."""
    try:
        man = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_float=_finite,
                         parse_constant=_constant)
    except UnicodeDecodeError as e:
        raise SuiteError(f"{where}: not UTF-8 text ({e})") from None
    except RecursionError:
        raise SuiteError(f"{where}: not a manifest (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, duplicate keys, non-finite numbers
        raise SuiteError(f"{where}: not valid manifest JSON: {e}") from None
    if not isinstance(man, dict):
        raise SuiteError(f"{where}: expected a JSON object, got {type(man).__name__}")
    fmt = man.get("format")
    if fmt not in (FORMAT, FOLDER_FORMAT):
        raise SuiteError(f"{where}: field 'format': expected {FORMAT!r} or {FOLDER_FORMAT!r}, got {fmt!r}")
    files = man.get("files")
    if not isinstance(files, dict):
        raise SuiteError(f"{where}: field 'files': expected a mapping of path -> SHA-256")
    for rel, digest in files.items():
        check_relative_path(rel, f"{where}: files")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise SuiteError(f"{where}: files[{rel!r}]: expected 64 lowercase hex digits (SHA-256), got {digest!r}")
    if fmt == FORMAT:
        for key in ("seed", "scenes", "images"):
            _check_int(man, key, where)
        for key in ("spec", "plan"):
            if key in man and not isinstance(man[key], dict):
                raise SuiteError(f"{where}: field {key!r}: expected an object, got {man[key]!r}")
    elif man.get("kind") not in ("results", "model"):
        raise SuiteError(f"{where}: field 'kind': expected 'results' or 'model', got {man.get('kind')!r}")
    return man


def manifest_kind(man: dict[str, Any]) -> str:
    """``suite``, ``results`` or ``model``."""
    return "suite" if man.get("format") == FORMAT else str(man["kind"])


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The checked manifest of ``folder``; SuiteError when it has none or it is malformed."""
    p = Path(folder) / MANIFEST
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise SuiteError(f"{folder}: no {MANIFEST}: not a finished oddsuite suite (run `oddsuite generate` to "
                         f"finish it) and not a signed results or model folder (run `oddsuite sign`)") from None
    if not stat.S_ISREG(st.st_mode):
        raise SuiteError(f"{p}: not a regular file")
    return parse_manifest(p.read_bytes(), p)


def folder_files(folder: str | Path) -> dict[str, str]:
    """Every regular file under ``folder`` that a manifest lists (relative path -> SHA-256),
    sorted. Symbolic links and other non-regular files are refused: a manifest names bytes."""
    root = Path(folder)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames if d not in UNHASHED_DIRS)  # resume state, at any depth
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel in UNHASHED_FILES:
                continue
            if not stat.S_ISREG(os.lstat(base / name).st_mode):
                raise SuiteError(f"{root / rel}: not a regular file (symbolic link, device or other); a manifest "
                                 f"lists regular files only: copy the file in or remove it")
            out[rel] = sha256_file(base / name)
    return dict(sorted(out.items()))

"""Verify a folder against its manifest: every listed file present, a regular file, and
unaltered; nothing unlisted; and, given a public key, the manifest signed by it.

Works on the three kinds of folder a manifest describes: a suite, a results folder and a
model folder. A malformed manifest (paths outside the folder, absolute paths, bad
hashes, not JSON) is a SuiteError before any file is read. A listed path that is a
symbolic link (or passes through one), a device, a FIFO or a folder is reported as not
regular and never opened. Imports ``fileio``, ``errors`` and the ``suite`` modules
``layout``, ``manifest`` and ``sign``.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from oddsuite.suite.layout import UNHASHED_DIRS, UNHASHED_FILES
from oddsuite.suite.manifest import identity_of, manifest_kind, read_manifest


@dataclass
class VerifyReport:
    """``identity``: SHA-256 of the canonical manifest; ``signature``: None when no public
    key was given, "valid", or why it failed."""

    kind: str = "suite"
    identity: str = ""
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)
    signature: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.unexpected or self.not_regular) \
            and self.signature in (None, "valid")

    def summary(self) -> str:
        """One line: what is off (file counts, signature), or "ok"."""
        parts = [f"{len(getattr(self, k))} {k.replace('_', ' ')}" for k in ("missing", "altered", "unexpected",
                                                                          "not_regular") if getattr(self, k)]
        files = f"{', '.join(parts)} of {self.checked} files" if parts else ""
        sig = "signature not valid" if self.signature not in (None, "valid") else ""
        return "; ".join(p for p in (files, sig) if p) or "ok"


def load_manifest(suite: str | Path) -> dict:
    """The checked manifest of a folder (SuiteError when missing or malformed)."""
    return read_manifest(suite)


def _hash_regular(root: Path, rel: str, dirs_ok: dict[str, bool]) -> Optional[str]:
    """SHA-256 of ``root/rel`` when every part of the path is a real folder and the file a
    regular file; None when it is not (the caller reports it). FileNotFoundError when absent."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if d not in dirs_ok:
            st = os.lstat(root / d)
            dirs_ok[d] = stat.S_ISDIR(st.st_mode)
        if not dirs_ok[d]:
            return None
    if not stat.S_ISREG(os.lstat(root / rel).st_mode):  # never open a device, FIFO or link
        return None
    fd = os.open(root / rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    finally:
        os.close(fd)


def verify_folder(folder: str | Path, public_key: str | Path | None = None) -> VerifyReport:
    """Check ``folder`` against its manifest (and its signature against ``public_key``)."""
    root = Path(folder)
    man = read_manifest(root)
    rep = VerifyReport(kind=manifest_kind(man), identity=identity_of(man))
    dirs_ok: dict[str, bool] = {}
    for rel, want in sorted(man["files"].items()):
        rep.checked += 1
        try:
            got = _hash_regular(root, rel, dirs_ok)
        except FileNotFoundError:
            rep.missing.append(rel)
            continue
        except OSError:  # ELOOP: the last part is a symbolic link (O_NOFOLLOW); ENOTDIR: a part is a file
            rep.not_regular.append(rel)
            continue
        if got is None:
            rep.not_regular.append(rel)
        elif got != want:
            rep.altered.append(rel)
    listed = set(man["files"])
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if d not in UNHASHED_DIRS]  # resume state, at any depth
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel in UNHASHED_FILES or rel in listed:
                continue
            rep.unexpected.append(rel)
    rep.unexpected.sort()
    if public_key is not None:
        from oddsuite.suite.sign import check_signature

        rep.signature = check_signature(root, man, public_key) or "valid"
    return rep


def verify_suite(suite: str | Path, public_key: str | Path | None = None) -> VerifyReport:
    """:func:`verify_folder` (kept under the name the suite API has always had)."""
    return verify_folder(suite, public_key)

"""Verify a suite against its manifest: every file present, unaltered, nothing unexpected."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oddsuite.fileio import sha256_file
from oddsuite.suite.layout import UNHASHED_DIRS, UNHASHED_FILES
from oddsuite.suite.manifest import read_manifest


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.unexpected)


def load_manifest(suite: str | Path) -> dict:
    """The checked manifest of a suite folder (SuiteError when missing or malformed)."""
    return read_manifest(suite)


def verify_suite(suite: str | Path) -> VerifyReport:
    root = Path(suite)
    man = load_manifest(root)
    rep = VerifyReport()
    for rel, want in sorted(man["files"].items()):
        p = root / rel
        rep.checked += 1
        if not p.is_file():
            rep.missing.append(rel)
        elif sha256_file(p) != want:
            rep.altered.append(rel)
    listed = set(man["files"])
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if rel in UNHASHED_FILES or rel.split("/")[0] in UNHASHED_DIRS:
            continue
        if rel not in listed:
            rep.unexpected.append(rel)
    return rep

"""Verify a suite against its manifest: every file present, unaltered, nothing unexpected."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from oddsuite.errors import SuiteError
from oddsuite.suite.io import sha256_file

#: not part of the hashed suite
UNHASHED = {"manifest.json"}
UNHASHED_DIRS = {".state"}


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.unexpected)


def load_manifest(suite: Path) -> dict:
    p = Path(suite) / "manifest.json"
    if not p.is_file():
        raise SuiteError(f"{suite}: no manifest.json: not a finished oddsuite suite (run `oddsuite generate` to finish it)")
    try:
        man = json.loads(p.read_text())
    except ValueError as e:
        raise SuiteError(f"{p}: not valid JSON: {e}") from None
    if not isinstance(man.get("files"), dict):
        raise SuiteError(f"{p}: field 'files' is missing or not a mapping of path -> sha256")
    return man


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
        if rel in UNHASHED or rel.split("/")[0] in UNHASHED_DIRS:
            continue
        if rel not in listed:
            rep.unexpected.append(rel)
    return rep

"""What an output folder holds, and what a ``generate`` run may do with it.

A folder is *new* (absent, or empty), *unfinished* (``.state/job.json`` without a
manifest: a run was interrupted) or *finished* (a suite manifest). A run names its key
(spec SHA-256, seed, plan) and a scene count; :func:`decide` says:

- ``new``: render everything;
- ``resume``: the same key, unfinished, the same or a larger scene count: render only the
  scenes without a record;
- ``extend``: the same key, finished, a larger scene count: the manifest (and its
  signature) are withdrawn first, so an interrupted extension is an unfinished suite,
  never an old manifest over new files; then the new scenes are rendered and the suite is
  assembled again;
- ``unchanged``: the same key and count as a finished suite: nothing to do.

Everything else is refused with a SuiteError saying why: a folder that is not a suite,
a finished or unfinished suite of another spec, seed or plan, or fewer scenes than the
folder holds (a suite is never shrunk). Imports ``fileio``, ``errors`` and the ``suite``
modules ``layout`` and ``manifest``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from oddsuite.errors import SuiteError
from oddsuite.fileio import is_temp_name
from oddsuite.suite.layout import JOB, MANIFEST, SIGNATURE, STATE
from oddsuite.suite.manifest import manifest_kind, read_manifest


@dataclass(frozen=True)
class FolderState:
    """``kind``: new, unfinished or finished; ``key``: what its scenes belong to (spec_sha256,
    seed, plan); ``scenes``: its scene count (unfinished: the count of the run that began it,
    None when unknown); ``images``: a finished suite's image count."""

    kind: str
    key: Optional[dict[str, Any]] = None
    scenes: Optional[int] = None
    images: Optional[int] = None


def job_key(spec_sha256: str, seed: int, plan: dict[str, Any]) -> dict[str, Any]:
    return {"spec_sha256": spec_sha256, "seed": int(seed), "plan": plan}


def inspect_folder(out: Path) -> FolderState:
    """The state of ``out`` (SuiteError for a folder that is no suite, or a malformed one)."""
    if not out.exists():
        return FolderState("new")
    if not out.is_dir():
        raise SuiteError(f"{out}: exists and is not a folder; use another --out")
    if (out / MANIFEST).exists() or (out / MANIFEST).is_symlink():
        man = read_manifest(out)
        if manifest_kind(man) != "suite":
            raise SuiteError(f"{out}: holds a signed {manifest_kind(man)} folder, not a suite; use another --out")
        key = job_key(str((man.get("spec") or {}).get("sha256")), man.get("seed", -1), man.get("plan") or {})
        return FolderState("finished", key, man.get("scenes"), man.get("images"))
    job = out / JOB
    if job.is_file():
        try:
            d = json.loads(job.read_text(encoding="utf-8"))
            key = job_key(d["spec_sha256"], d["seed"], d["plan"])
            scenes = d.get("scenes")
        except (ValueError, KeyError, TypeError) as e:
            raise SuiteError(f"{job}: not a job record ({e}); delete {out / STATE} to start over") from None
        return FolderState("unfinished", key, scenes if isinstance(scenes, int) else None)
    if any(p.name != STATE for p in out.iterdir()):
        raise SuiteError(f"{out}: exists and is not an oddsuite suite; use an empty or new folder")
    return FolderState("new")


def _differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    return ", ".join(k for k in ("spec_sha256", "seed", "plan") if old.get(k) != new.get(k)) or "nothing"


def decide(out: Path, state: FolderState, key: dict[str, Any], scenes: int) -> str:
    """new, resume, extend or unchanged (see the module doc); SuiteError when refused."""
    if state.kind == "new":
        return "new"
    if state.key != key:
        raise SuiteError(f"{out}: holds {'a finished' if state.kind == 'finished' else 'an unfinished'} suite of "
                         f"another spec, seed or plan (differs in: {_differs(state.key or {}, key)}); use another "
                         f"--out" + ("" if state.kind == "finished" else " or delete the folder"))
    have = state.scenes
    if state.kind == "finished":
        if have is None or scenes < have:
            raise SuiteError(f"{out}: holds a finished suite of {have} scenes; --scenes {scenes} would shrink it, "
                             f"and a suite is never shrunk: use another --out (or --scenes {have} to leave it as "
                             f"it is, or more to extend it)")
        return "unchanged" if scenes == have else "extend"
    if have is not None and scenes < have:
        raise SuiteError(f"{out}: holds an unfinished suite of {have} scenes; --scenes {scenes} is fewer: run with "
                         f"--scenes {have} (or more) to finish it, or use another --out")
    return "resume"


def withdraw_manifest(out: Path) -> None:
    """Remove the signature, then the manifest: the folder is unfinished from here on."""
    for name in (SIGNATURE, MANIFEST):
        (out / name).unlink(missing_ok=True)


def sweep_temporaries(folder: Path, recursive: bool = False) -> int:
    """Remove temporary files left by writers that were killed (``.NAME.*.tmp``); returns how many."""
    if not folder.is_dir():
        return 0
    n = 0
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for dirpath, _, names in walker:
        for name in names:
            p = Path(dirpath) / name
            if is_temp_name(name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
    return n

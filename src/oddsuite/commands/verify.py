"""oddsuite verify SUITE"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check every file of a suite against its manifest's SHA-256",
                       description="Recompute the SHA-256 of every file and report missing, altered and unexpected "
                                   "files. Exit code 1 when anything is off.")
    p.add_argument("suite", help="suite folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.suite import verify_suite

    rep = verify_suite(args.suite)
    for kind in ("missing", "altered", "unexpected"):
        for f in getattr(rep, kind):
            print(f"{kind}: {f}")
    if rep.ok:
        print(f"ok: {rep.checked} files match the manifest")
        return 0
    print(f"FAILED: {len(rep.missing)} missing, {len(rep.altered)} altered, {len(rep.unexpected)} unexpected "
          f"of {rep.checked} files")
    return 1

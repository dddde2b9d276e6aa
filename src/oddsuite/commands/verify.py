"""oddsuite verify DIR [--pubkey PUB]"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a suite, results or model folder against its manifest (and signature)",
                       description="Recompute the SHA-256 of every file of a suite, results folder or model folder "
                                   "and report missing, altered, unexpected and non-regular files; print the "
                                   "folder's identity (the SHA-256 of its canonical manifest). With --pubkey, also "
                                   "check that the manifest carries a valid signature by that key. Exit code 1 "
                                   "when anything is off, 2 when the manifest itself is malformed.")
    p.add_argument("suite", metavar="DIR", help="suite, results or model folder")
    p.add_argument("--pubkey", metavar="PUB", default=None,
                   help="Ed25519 public key (PEM, e.g. KEY.pub from oddsuite keygen) the manifest must be signed by")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.suite import verify_folder

    rep = verify_folder(args.suite, args.pubkey)
    for kind in ("missing", "altered", "unexpected", "not_regular"):
        for f in getattr(rep, kind):
            print(f"{kind.replace('_', ' ')}: {f}")
    print(f"identity: {rep.identity} ({rep.kind})")
    if rep.signature is not None:
        print(f"signature: {rep.signature}" + (f" ({args.pubkey})" if rep.signature == "valid" else ""))
    if rep.ok:
        print(f"ok: {rep.checked} files match the manifest")
        return 0
    print(f"FAILED: {rep.summary()}")
    return 1

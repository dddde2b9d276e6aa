"""oddsuite sign DIR --key KEY [--kind results|model] [--rehash]"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign", help="sign the manifest of a suite, results or model folder (Ed25519)",
                       description="Write DIR/manifest.sig: a detached Ed25519 signature over the folder's canonical "
                                   "manifest. A results or model folder without a manifest gets one first (every "
                                   "file with its SHA-256). A folder that no longer matches its manifest is refused. "
                                   "Check it with: oddsuite verify DIR --pubkey KEY.pub")
    p.add_argument("folder", metavar="DIR", help="suite, results or model folder")
    p.add_argument("--key", required=True, metavar="KEY", help="Ed25519 private key (PEM; see oddsuite keygen)")
    p.add_argument("--kind", choices=["results", "model"], default=None,
                   help="what a folder without a manifest is (default: guessed from its files)")
    p.add_argument("--rehash", action="store_true",
                   help="results or model folder: list the files as they are now in a new manifest, then sign it")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.suite import sign_folder

    res = sign_folder(args.folder, args.key, kind=args.kind, rehash=args.rehash)
    if res.wrote_manifest:
        print(f"wrote {res.folder}/manifest.json ({res.kind} folder)")
    print(f"signed {res.folder} ({res.kind}): identity {res.identity}")
    print(f"key fingerprint {res.fingerprint}; check with: oddsuite verify {res.folder} --pubkey PUBLIC_KEY")
    return 0

"""oddsuite keygen --out KEY"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for oddsuite sign",
                       description="Write a new Ed25519 private key to KEY (PEM, PKCS#8, mode 0600) and its public "
                                   "key to KEY.pub. Keep KEY private; give KEY.pub to whoever verifies.")
    p.add_argument("--out", required=True, metavar="KEY", help="private key file to create (never overwritten)")
    p.set_defaults(func=run)


def run(args) -> int:
    from oddsuite.suite import generate_key

    key, pub, fp = generate_key(args.out)
    print(f"private key: {key} (keep it secret)")
    print(f"public key:  {pub}")
    print(f"fingerprint: {fp}")
    return 0

"""Detached Ed25519 signatures over a folder's manifest (``manifest.sig``), with
``cryptography`` (no crypto of our own).

The signed message is the manifest's canonical form (``suite.manifest.canonical_bytes``),
so a signature covers every file the manifest hashes: editing a file breaks its hash,
and editing the manifest (even with every hash recomputed) breaks the signature. Keys
are PEM files: the private key unencrypted PKCS#8 (``oddsuite keygen`` writes it with
mode 0600, or ``openssl genpkey -algorithm ed25519 -out KEY``), the public key
SubjectPublicKeyInfo (``KEY.pub``; ``openssl pkey -in KEY -pubout -out KEY.pub``). A key
is named by its fingerprint: the SHA-256 of its 32 raw public bytes.

``sign_folder`` writes a manifest first for a results or model folder that has none
(every regular file with its SHA-256, ``.state/`` left out); a suite's manifest is
``generate``'s and is signed as it is. Imports ``fileio``, ``errors`` and the ``suite``
modules ``layout`` and ``manifest``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from oddsuite.errors import SuiteError
from oddsuite.fileio import atomic_write_bytes, json_bytes, write_json
from oddsuite.suite.layout import (ANNOTATIONS, FOLDER_FORMAT, JOB, MANIFEST, SIGNATURE, SIGNATURE_FORMAT)
from oddsuite.suite.manifest import canonical_bytes, folder_files, identity_of, manifest_kind, read_manifest

ALGORITHM = "Ed25519"
#: files that make a folder a results folder or a model folder (``sign`` without ``--kind``)
RESULTS_MARKERS = ("run.json", "metrics.json", "results.json", "consistency.json")
MODEL_SUFFIXES = (".onnx", ".safetensors", ".pt", ".pth", ".torchscript")


def fingerprint(public_key: Any) -> str:
    """Hex SHA-256 of an Ed25519 public key's 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_key(path: str | Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key to ``path`` (mode 0600, refused when it exists) and
    its public key to ``path.pub``; returns both paths and the key's fingerprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path = Path(path)
    pub_path = key_path.with_name(key_path.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists():
            raise SuiteError(f"{p}: exists; a key is never overwritten (choose another --out)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key()
    atomic_write_bytes(pub_path, pub.public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path, fingerprint(pub)


def _read_pem(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as e:
        raise SuiteError(f"{p}: cannot read the {what}: {e.strerror or e}") from None


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key from a PEM file (SuiteError when it is not one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_pem(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SuiteError(f"{path}: the private key is encrypted; oddsuite reads unencrypted PKCS#8 PEM keys "
                         f"(keep the file readable by you only)") from None
    except (ValueError, binascii.Error) as e:
        raise SuiteError(f"{path}: not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SuiteError(f"{path}: a {type(key).__name__}, expected an Ed25519 private key "
                         f"(oddsuite keygen, or openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(path: str | Path) -> Any:
    """An Ed25519 public key from a PEM file (SuiteError when it is not one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_pem(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, binascii.Error) as e:
        raise SuiteError(f"{path}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SuiteError(f"{path}: a {type(key).__name__}, expected an Ed25519 public key")
    return key


def folder_kind(folder: Path) -> str:
    """suite, results or model, from what the folder holds (SuiteError when none fits)."""
    if (folder / ANNOTATIONS).is_file() or (folder / JOB).is_file():
        return "suite"
    if any((folder / m).is_file() for m in RESULTS_MARKERS):
        return "results"
    if (folder / "model.json").is_file() or any(p.suffix in MODEL_SUFFIXES for p in folder.iterdir() if p.is_file()):
        return "model"
    raise SuiteError(f"{folder}: neither a suite, a results folder ({', '.join(RESULTS_MARKERS)}) nor a model folder "
                     f"(model.json or a {'/'.join(MODEL_SUFFIXES)} file); give --kind results or --kind model")


def write_folder_manifest(folder: str | Path, kind: str) -> dict[str, Any]:
    """Write (or rewrite) the manifest of a results or model folder: every regular file but
    ``.state/``, the manifest and its signature, with its SHA-256."""
    if kind not in ("results", "model"):
        raise SuiteError(f"--kind: expected results or model, got {kind!r} (a suite's manifest is written by "
                         f"oddsuite generate)")
    root = Path(folder)
    files = folder_files(root)
    if not files:
        raise SuiteError(f"{root}: holds no files to list")
    man = {"format": FOLDER_FORMAT, "kind": kind, "files": files}
    (root / SIGNATURE).unlink(missing_ok=True)
    write_json(root / MANIFEST, man)
    return man


@dataclass(frozen=True)
class SignResult:
    folder: Path
    kind: str
    identity: str
    fingerprint: str
    wrote_manifest: bool


def sign_folder(folder: str | Path, key_path: str | Path, *, kind: Optional[str] = None,
                rehash: bool = False) -> SignResult:
    """Sign the manifest of ``folder`` with the private key at ``key_path`` (see the module
    doc). A folder that no longer matches its manifest is refused (``verify`` says what
    changed); ``rehash`` rewrites a results or model folder's manifest from its files first."""
    from oddsuite.suite.verify import verify_folder

    root = Path(folder)
    if not root.is_dir():
        raise SuiteError(f"{root}: not a folder")
    key = load_private_key(key_path)
    wrote = False
    if not (root / MANIFEST).exists() or rehash:
        k = kind or folder_kind(root)
        if k == "suite":
            raise SuiteError(f"{root}: an unfinished suite (no {MANIFEST}); finish it with oddsuite generate, then "
                             f"sign it" if not (root / MANIFEST).exists() else
                             f"{root}: a suite's manifest is written by oddsuite generate, never rehashed")
        write_folder_manifest(root, k)
        wrote = True
    rep = verify_folder(root)
    if not rep.ok:
        raise SuiteError(f"{root}: does not match its manifest ({rep.summary()}); run oddsuite verify {root} to see "
                         f"what changed" + ("" if rep.kind == "suite" else ", or sign with --rehash to list the "
                                            "folder as it is now"))
    man = read_manifest(root)
    sig = key.sign(canonical_bytes(man))
    fp = fingerprint(key.public_key())
    record = {"format": SIGNATURE_FORMAT, "algorithm": ALGORITHM, "kind": manifest_kind(man),
              "identity": identity_of(man), "public_key_sha256": fp,
              "signature": base64.b64encode(sig).decode("ascii")}
    atomic_write_bytes(root / SIGNATURE, json_bytes(record))
    return SignResult(root, manifest_kind(man), record["identity"], fp, wrote)


def check_signature(folder: str | Path, manifest: dict[str, Any], public_key_path: str | Path) -> Optional[str]:
    """None when ``folder``'s signature is by the given public key over ``manifest``;
    otherwise why not (unsigned, another key, the manifest changed since it was signed)."""
    from cryptography.exceptions import InvalidSignature

    pub = load_public_key(public_key_path)
    path = Path(folder) / SIGNATURE
    if not path.is_file():
        return f"not signed (no {SIGNATURE})"
    try:
        rec = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(rec, dict) or rec.get("format") != SIGNATURE_FORMAT or rec.get("algorithm") != ALGORITHM:
            raise ValueError(f"expected format {SIGNATURE_FORMAT} with algorithm {ALGORITHM}")
        sig = base64.b64decode(str(rec["signature"]), validate=True)
        signer = str(rec["public_key_sha256"])
    except (ValueError, KeyError, UnicodeDecodeError, RecursionError, binascii.Error) as e:
        raise SuiteError(f"{path}: not an oddsuite signature ({e})") from None
    fp = fingerprint(pub)
    if signer != fp:
        return f"signed by another key (fingerprint {signer[:16]}…), not {public_key_path} ({fp[:16]}…)"
    try:
        pub.verify(sig, canonical_bytes(manifest))
    except InvalidSignature:
        return (f"the signature does not match {MANIFEST}: the manifest was changed after it was signed "
                f"(signed identity {str(rec.get('identity'))[:16]}…, now {identity_of(manifest)[:16]}…)")
    return None

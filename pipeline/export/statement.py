"""The bundle's signed statement and its file list: what makes every file of a bundle, metadata included, signed.

`custody-files.txt` lists `<sha256>  <path>` for every file of the bag except itself, the statement and
the two BagIt manifests (which only repeat hashes of the listed files), sorted by path. The statement
`custody-statement.json` pins that list by its SHA-256, and says what the bundle holds: the case; each
exhibit with its chain length and head; the case log's length and head; the signed tree head every one of
those heads is proven to be in; its time-stamp; recipient, reason, who built it and when. It is signed in
the same envelope style as events: {"statement", "statement_sha256", "signature"}. So truncating a chain,
editing bundle.json or the BagIt files, or adding and removing files, all break one signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.custody.events import canonical
from pipeline.custody.keys import SignerBackend
from pipeline.custody.signing import verify_signature
from pipeline.export.format import FILE_LIST, MANIFEST, STATEMENT, TAGMANIFEST

SCHEMA = "custody.bundle-statement/1"
UNLISTED = (FILE_LIST, STATEMENT, MANIFEST, TAGMANIFEST)


class StatementError(ValueError):
    """The statement is malformed, altered or not signed by the key it names."""


def file_list(hashes: Mapping[str, str]) -> bytes:
    """The file list from {path: sha256}: every file but the unlisted four, sorted, sha256sum format."""
    return "".join(f"{h}  {p}\n" for p, h in sorted(hashes.items()) if p not in UNLISTED).encode()


def parse_file_list(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            digest, path = line.split("  ", 1)
            out[path] = digest
    return out


def sign_statement(doc: dict[str, Any], signer: SignerBackend) -> dict[str, Any]:
    data = canonical(doc)
    return {"statement": doc, "statement_sha256": hashlib.sha256(data).hexdigest(),
            "signature": {"alg": "ed25519", "key_id": signer.key_id, "value": signer.sign(data)}}


def check_statement(envelope: Any) -> tuple[dict[str, Any], str, str]:
    """(statement, signer key id, signature) after checking form and hash; the signature is checked by the caller,
    who decides which keys to trust."""
    if not isinstance(envelope, dict) or set(envelope) != {"statement", "statement_sha256", "signature"}:
        raise StatementError("must have exactly statement, statement_sha256 and signature")
    doc = envelope["statement"]
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise StatementError(f"schema is not {SCHEMA}")
    if hashlib.sha256(canonical(doc)).hexdigest() != envelope["statement_sha256"]:
        raise StatementError("statement_sha256 does not match the statement (altered)")
    sig = envelope["signature"]
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519" or not isinstance(sig.get("key_id"), str):
        raise StatementError("signature must be {\"alg\": \"ed25519\", \"key_id\", \"value\"}")
    return doc, sig["key_id"], str(sig.get("value", ""))


def signature_ok(doc: dict[str, Any], value: str, public: Ed25519PublicKey) -> bool:
    return verify_signature(public, canonical(doc), value)

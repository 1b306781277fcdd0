"""Which keys sign, and which keys a verifier trusts: signer backends, the trust set, key rotation records.

A signer is anything with `key_id`, `public` and `sign(bytes) -> base64`: the file key (`Signer`), an
external program (`CommandSigner`, e.g. a PKCS#11 tool driving an HSM), or any object an operator plugs in.

Trust never comes from the store: a verifier trusts its own key, the PEM files it was given
(`$CUSTODY_HOME/keys/trusted/*.pem`, `CUSTODY_TRUSTED_KEYS`, `--trusted-key`) and key ids confirmed out of
band (`--key-id`). A key rotation is a `custody.keychange/1` record signed by both the old and the new key;
a new key becomes trusted only through a record whose old key is already trusted, and events the old key
signs after the change are reported.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.custody.events import canonical, utcnow
from pipeline.custody.signing import Signer, key_id, load_public_pem, public_pem, verify_signature
from pipeline.errors import InfrastructureError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KEYCHANGE_SCHEMA = "custody.keychange/1"


@runtime_checkable
class SignerBackend(Protocol):
    """What signs custody records. Implement these three for an HSM (PKCS#11: an EdDSA key on the token,
    `sign` = C_Sign with CKM_EDDSA, `public` = the token's public key object)."""

    @property
    def key_id(self) -> str: ...

    @property
    def public(self) -> Ed25519PublicKey: ...

    def sign(self, data: bytes) -> str: ...


class CommandSigner:
    """Signs by running an external program: the bytes go to its stdin, a raw 64-byte Ed25519 signature (or its
    base64) comes back on stdout. `argv` is a fixed list from the settings (never a shell string), so any
    PKCS#11 or cloud-KMS tool that signs stdin can hold the key. Every signature is checked before use."""

    def __init__(self, argv: Sequence[str], public_key: Path, timeout: float = 30.0) -> None:
        if not argv:
            raise UsageError("signer_command is empty")
        self.argv = [str(a) for a in argv]
        self._public = load_public_pem(Path(public_key).read_bytes())
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"CommandSigner({self.argv[0]}, key_id={self.key_id[:16]}…)"

    @property
    def public(self) -> Ed25519PublicKey:
        return self._public

    @property
    def key_id(self) -> str:
        return key_id(self._public)

    def sign(self, data: bytes) -> str:
        try:
            proc = subprocess.run(self.argv, input=data, capture_output=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InfrastructureError(f"external signer {self.argv[0]} failed to run: {exc}") from None
        if proc.returncode != 0:
            raise InfrastructureError(f"external signer {self.argv[0]} exited {proc.returncode}: "
                                      f"{proc.stderr.decode(errors='replace')[:200]}")
        out = proc.stdout.strip() if len(proc.stdout) != 64 else proc.stdout
        raw = out if len(out) == 64 else base64.b64decode(out, validate=True)
        sig = base64.b64encode(raw).decode()
        if not verify_signature(self._public, data, sig):
            raise InfrastructureError(f"external signer {self.argv[0]} returned a signature that does not verify "
                                      f"with its public key {self.key_id}: wrong key or wrong mechanism")
        return sig


def load_signer(settings: Any) -> SignerBackend:
    """The signer the settings name: an external command when `signer_command` is set, else the file key."""
    if settings.signer_command:
        if not settings.signer_public_key:
            raise UsageError("signer_command needs signer_public_key (the PEM of the key it signs with)")
        return CommandSigner(settings.signer_command, settings.signer_public_key)
    return Signer.load_or_create(settings.signing_key_path)


class DeferredSigner:
    """The settings' signer, loaded when first used: a command that only reads never opens the key (nor
    imports `cryptography`'s key loading). Errors in the key settings surface at the first signature."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._real: SignerBackend | None = None
        self._lock = threading.Lock()

    def _signer(self) -> SignerBackend:
        if self._real is None:
            with self._lock:  # threads signing at once must load (or create) one key, once
                if self._real is None:
                    self._real = load_signer(self._settings)
        return self._real

    def __repr__(self) -> str:
        return f"DeferredSigner({self._real!r})"

    @property
    def key_id(self) -> str:
        return self._signer().key_id

    @property
    def public(self) -> Ed25519PublicKey:
        return self._signer().public

    def sign(self, data: bytes) -> str:
        return self._signer().sign(data)


# ---- the trust set ---------------------------------------------------------------
@dataclass
class Trust:
    """Trusted public keys by id, why each is trusted, and when a rotated key was retired."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)  # key id -> time of the key change that retired it

    def add(self, public: Ed25519PublicKey, why: str) -> str:
        kid = key_id(public)
        if kid not in self.keys:
            self.keys[kid] = public
            self.why[kid] = why
        return kid

    def add_pem_files(self, paths: Iterable[Path], why: str = "trusted key file") -> None:
        for p in paths:
            try:
                self.add(load_public_pem(Path(p).read_bytes()), f"{why} {p}")
            except (OSError, ValueError) as exc:
                raise UsageError(f"trusted key {p} is not an Ed25519 public key PEM: {exc}") from None

    def add_confirmed_ids(self, candidates: dict[str, Ed25519PublicKey], ids: Iterable[str]) -> list[str]:
        """Trust keys found in a package only when their id was confirmed out of band; returns ids not found."""
        missing = []
        for kid in ids:
            kid = kid.strip().lower()
            if kid in candidates and key_id(candidates[kid]) == kid:
                self.add(candidates[kid], "key id confirmed with --key-id")
            else:
                missing.append(kid)
        return missing

    def apply_changes(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Follow key-change records between trusted keys and their successors (or predecessors: both keys sign
        a record, so trusting either is trusting its holder's word about the other); returns problems found."""
        problems: list[str] = []
        pending: list[tuple[dict[str, Any], Ed25519PublicKey, Ed25519PublicKey]] = []
        for rec in records:
            try:
                doc, old, new = check_keychange(rec)
                pending.append((doc, old, new))
            except ValueError as exc:
                problems.append(str(exc))
        progress = True
        while pending and progress:
            progress = False
            for item in list(pending):
                doc, old, new = item
                if doc["old_key_id"] in self.keys or doc["new_key_id"] in self.keys:
                    if doc["old_key_id"] not in self.keys:
                        self.add(old, f"predecessor of {doc['new_key_id'][:16]}… (key change at {doc['time']})")
                    else:
                        self.add(new, f"successor of {doc['old_key_id'][:16]}… (key change at {doc['time']})")
                    when = self.retired.get(doc["old_key_id"])
                    if when is None or doc["time"] < when:
                        self.retired[doc["old_key_id"]] = doc["time"]
                    pending.remove(item)
                    progress = True
        return problems


def load_trust(settings: Any, own: SignerBackend | None, extra: Iterable[Path] = ()) -> Trust:
    """Own key + `CUSTODY_TRUSTED_KEYS` + `$CUSTODY_HOME/keys/trusted/*.pem` + `extra`; never keys from the store."""
    t = Trust()
    if own is not None:
        t.add(own.public, "this home's signing key")
    retired = Path(settings.keys_dir) / "retired"
    if retired.is_dir():  # keys this home signed with before a rotation
        for p in sorted(retired.glob("*.pem")):
            t.add(Signer.load_or_create(p).public, "this home's retired signing key")
    t.add_pem_files(settings.trusted_keys, "CUSTODY_TRUSTED_KEYS")
    tdir = settings.keys_dir / "trusted"
    if tdir.is_dir():
        t.add_pem_files(sorted(tdir.glob("*.pem")), "trusted folder")
    t.add_pem_files(extra, "--trusted-key")
    return t


# ---- key rotation ----------------------------------------------------------------
def keychange(old: SignerBackend, new: SignerBackend, reason: str, actor: str) -> dict[str, Any]:
    """A key-change record, signed by the old key (it vouches for the new one) and by the new key (it exists)."""
    doc = {"schema": KEYCHANGE_SCHEMA, "old_key_id": old.key_id, "new_key_id": new.key_id,
           "old_public_key": public_pem(old.public).decode(), "new_public_key": public_pem(new.public).decode(),
           "time": utcnow(), "reason": reason, "actor": actor}
    data = canonical(doc)
    return {"keychange": doc, "keychange_sha256": hashlib.sha256(data).hexdigest(),
            "signatures": [{"alg": "ed25519", "key_id": s.key_id, "value": s.sign(data)} for s in (old, new)]}


def keychange_key(rec: dict[str, Any]) -> str:
    doc = rec["keychange"]
    return f"keys/changes/{doc['old_key_id']}.{doc['new_key_id']}.json"


def check_keychange(rec: Any) -> tuple[dict[str, Any], Ed25519PublicKey, Ed25519PublicKey]:
    """(record, old key, new key) after checking form, hash and both signatures; ValueError naming what is wrong."""
    try:
        doc = rec["keychange"]
        if doc["schema"] != KEYCHANGE_SCHEMA:
            raise ValueError(f"schema {doc['schema']!r}")
        data = canonical(doc)
        old = load_public_pem(doc["old_public_key"].encode())
        new = load_public_pem(doc["new_public_key"].encode())
        sigs = {s["key_id"]: s for s in rec["signatures"]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable key-change record ({exc})") from None
    what = f"key change {str(doc.get('old_key_id'))[:16]}… -> {str(doc.get('new_key_id'))[:16]}…"
    if hashlib.sha256(data).hexdigest() != rec.get("keychange_sha256"):
        raise ValueError(f"{what}: keychange_sha256 does not match its content (altered)")
    for role, pub in (("old", old), ("new", new)):
        kid = doc[f"{role}_key_id"]
        if key_id(pub) != kid:
            raise ValueError(f"{what}: {role}_public_key does not have id {role}_key_id")
        if not verify_signature(pub, data, str(sigs.get(kid, {}).get("value", ""))):
            raise ValueError(f"{what}: not signed by the {role} key")
    return doc, old, new


def rotate_file_key(settings: Any, reason: str, actor: str) -> tuple[dict[str, Any], Signer, Signer]:
    """Replace the home's file key: a new key, a key-change record signed by both, the old key kept as retired.

    Returns (record, old, new); the caller publishes the record where verifiers look (the store, bundles).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pipeline.secrets import write_private

    if settings.signer_command:
        raise UsageError("the signing key is held by an external signer: rotate it there, then record the change "
                         "with both keys")
    path = Path(settings.signing_key_path)
    old = Signer.load_or_create(path)
    new = Signer(Ed25519PrivateKey.generate())
    rec = keychange(old, new, reason, actor)
    retired = path.parent / "retired" / f"{old.key_id}.pem"
    write_private(retired, path.read_bytes())
    pem = new._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    write_private(path, pem)
    path.with_suffix(".pub").write_bytes(public_pem(new.public))
    local = path.parent / "changes" / f"{old.key_id}.{new.key_id}.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    import json

    local.write_text(json.dumps(rec, sort_keys=True, indent=1))
    return rec, old, new


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.custody.keys sign --key KEY.pem`: sign stdin, raw signature on stdout.

    The reference external signer: `CommandSigner` speaks exactly this, so an HSM tool that signs stdin can
    replace it (e.g. `pkcs11-tool --sign --mechanism EDDSA --id ...`)."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m pipeline.custody.keys")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sign = sub.add_parser("sign", help="sign stdin with an Ed25519 private key file")
    sign.add_argument("--key", required=True, type=Path)
    args = ap.parse_args(argv)
    signer = Signer.load_or_create(args.key) if args.key.exists() else None
    if signer is None:
        print(f"no key file {args.key}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(base64.b64decode(signer.sign(sys.stdin.buffer.read())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Signed tree heads: the log's public commitment to its size and root at a moment; pure, no I/O.

Stored document, in the same envelope style as custody events:

    {"treehead": {...}, "treehead_sha256": "<hex>",
     "signature": {"alg": "ed25519", "key_id": "<hex>", "value": "<base64>"}}

`treehead` fields: `schema` "custody.treehead/1"; `log_id` (which log); `size` (number of leaves); `root`
(hex MTH of those leaves); `time` (UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ, when the log signed it); `prev`
({"size", "root"} of the head this one follows, or null for the first). `treehead_sha256` is the SHA-256 of
the canonical form of `treehead` (pipeline.custody.events.canonical: keys sorted, no whitespace, UTF-8), and the
signature is Ed25519 over the same bytes by the key whose id is the SHA-256 of its raw public key.

A newer head is accepted after an older one only if the log id is the same, the size did not shrink, the time
did not go back, and a consistency proof shows the old tree is a prefix of the new one: so a log that hides,
rewrites or rolls back a leaf it once committed to is caught by anyone holding an older head.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.custody.events import canonical, iso
from pipeline.custody.merkle import verify_consistency
from pipeline.custody.signing import Signer, key_id, verify_signature
from pipeline.errors import IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SCHEMA = "custody.treehead/1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_FIELDS = {"schema", "log_id", "size", "root", "time", "prev"}


class TreeHeadError(IntegrityError):
    """A tree head is malformed, altered, or not signed by a trusted key."""


class InconsistentTreeHeads(TreeHeadError):
    """Two tree heads of one log cannot both be true: the log forked, shrank, rewrote a leaf or went back in time."""


@dataclass(frozen=True)
class TreeHead:
    log_id: str
    size: int
    root: str
    time: str
    prev: tuple[int, str] | None = None

    def document(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "log_id": self.log_id, "size": self.size, "root": self.root, "time": self.time,
                "prev": None if self.prev is None else {"size": self.prev[0], "root": self.prev[1]}}

    def signed_bytes(self) -> bytes:
        return canonical(self.document())

    @property
    def sha256(self) -> bytes:
        """The digest a TSA time-stamps for this head (`treehead_sha256` as bytes)."""
        return hashlib.sha256(self.signed_bytes()).digest()

    @property
    def root_bytes(self) -> bytes:
        return bytes.fromhex(self.root)

    @property
    def when(self) -> datetime:
        return datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    @classmethod
    def from_document(cls, doc: Any) -> TreeHead:
        """Parse and validate strictly: unknown or missing fields are an error, not ignored."""
        if not isinstance(doc, dict) or set(doc) != _FIELDS:
            got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise TreeHeadError(f"tree head must have exactly the fields {sorted(_FIELDS)}, got {got}")
        if doc["schema"] != SCHEMA:
            raise TreeHeadError(f"tree head schema is {doc['schema']!r}, expected {SCHEMA!r}")
        prev = doc["prev"]
        if prev is not None:
            if not isinstance(prev, dict) or set(prev) != {"size", "root"}:
                raise TreeHeadError("tree head prev must be null or {\"size\", \"root\"}")
            prev = (_size(prev["size"], "prev.size"), _root(prev["root"], "prev.root"))
        head = cls(_log_id(doc["log_id"]), _size(doc["size"], "size"), _root(doc["root"], "root"),
                   _time(doc["time"]), prev)
        if prev is not None and prev[0] > head.size:
            raise TreeHeadError(f"tree head of size {head.size} claims to follow a larger one ({prev[0]})")
        return head


def _log_id(v: Any) -> str:
    if not isinstance(v, str) or not v or len(v) > 200:
        raise TreeHeadError("tree head log_id must be a non-empty string of at most 200 characters")
    return v


def _size(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise TreeHeadError(f"tree head {what} must be a non-negative integer, got {v!r}")
    return v


def _root(v: Any, what: str) -> str:
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise TreeHeadError(f"tree head {what} must be 64 lowercase hex digits")
    return v


def _time(v: Any) -> str:
    if not isinstance(v, str) or not _TIME.fullmatch(v):
        raise TreeHeadError(f"tree head time must be UTC YYYY-MM-DDTHH:MM:SS.ffffffZ, got {v!r}")
    try:
        datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError as exc:
        raise TreeHeadError(f"tree head time {v!r} is not a real date: {exc}") from exc
    return v


def build(log_id: str, size: int, root: bytes, *, time: datetime | None = None,
          prev: TreeHead | None = None) -> TreeHead:
    """A new head; `time` defaults to now. Validated like a parsed one, so nothing unparseable is ever signed."""
    when = iso(time if time is not None else datetime.now(UTC))
    doc = {"schema": SCHEMA, "log_id": log_id, "size": size, "root": bytes(root).hex(), "time": when,
           "prev": None if prev is None else {"size": prev.size, "root": prev.root}}
    return TreeHead.from_document(doc)


def sign(head: TreeHead, signer: Signer) -> dict[str, Any]:
    """The stored envelope of a head."""
    data = head.signed_bytes()
    return {"treehead": head.document(), "treehead_sha256": hashlib.sha256(data).hexdigest(),
            "signature": {"alg": "ed25519", "key_id": signer.key_id, "value": signer.sign(data)}}


def verify(envelope: Any, trusted: Mapping[str, Ed25519PublicKey]) -> TreeHead:
    """Check an envelope's form, hash and signature against trusted keys (key id → public key)."""
    if not isinstance(envelope, dict) or set(envelope) != {"treehead", "treehead_sha256", "signature"}:
        raise TreeHeadError("tree head envelope must have exactly treehead, treehead_sha256 and signature")
    head = TreeHead.from_document(envelope["treehead"])
    data = head.signed_bytes()
    if envelope["treehead_sha256"] != hashlib.sha256(data).hexdigest():
        raise TreeHeadError(f"tree head of {head.log_id} size {head.size}: treehead_sha256 does not match "
                            "its content (altered?)")
    sig = envelope["signature"]
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519" or not isinstance(sig.get("value"), str):
        raise TreeHeadError("tree head signature must be {\"alg\": \"ed25519\", \"key_id\", \"value\"}")
    kid = sig.get("key_id")
    public = trusted.get(kid) if isinstance(kid, str) else None
    if public is None:
        raise TreeHeadError(f"tree head of {head.log_id} size {head.size} is signed by key {kid}, which is not "
                            "trusted; add its public key to the trusted keys only after confirming its id "
                            "with the log's operator")
    if key_id(public) != kid:
        raise TreeHeadError(f"trusted key listed under id {kid} has a different id ({key_id(public)})")
    if not verify_signature(public, data, sig["value"]):
        raise TreeHeadError(f"tree head of {head.log_id} size {head.size}: bad signature for key {kid}")
    return head


def check_consistent(old: TreeHead, new: TreeHead, proof: Sequence[bytes]) -> None:
    """Raise InconsistentTreeHeads unless `new` extends `old` (same log, no shrink, no time travel, proof)."""
    what = f"tree heads of {new.log_id}: size {old.size} at {old.time} then size {new.size} at {new.time}"
    if old.log_id != new.log_id:
        raise InconsistentTreeHeads(f"tree heads belong to different logs ({old.log_id!r}, {new.log_id!r})")
    if new.size < old.size:
        raise InconsistentTreeHeads(f"{what}: the log shrank (rolled back or truncated)")
    if new.time < old.time:  # fixed-width UTC strings sort as times
        raise InconsistentTreeHeads(f"{what}: time went backwards")
    if new.prev is not None and new.prev[0] == old.size and new.prev[1] != old.root:
        raise InconsistentTreeHeads(f"{what}: the newer head names a different root for size {old.size}")
    if not verify_consistency(old.size, new.size, old.root_bytes, new.root_bytes, proof):
        if old.size == new.size:
            raise InconsistentTreeHeads(f"{what}: two different roots for one size (the log forked)")
        raise InconsistentTreeHeads(f"{what}: the consistency proof fails, so the older tree is not a prefix of "
                                    "the newer one (a committed leaf was changed or removed)")

"""Checking a custody chain: pure logic shared by online and offline verify.

Input is what was found in storage (per event slot: its bytes and how many
versions exist); output is a list of findings, each naming the event and
what is wrong, so an examiner can point at the exact object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.custody.events import GENESIS, canonical, event_hash
from pipeline.custody.signing import verify_signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass
class Pre:
    """What a reader thread already worked out from a slot's bytes (parsing, hashing, the signature check)."""

    env: dict[str, Any]
    actual: str  # SHA-256 of the canonical event
    verified_with: Ed25519PublicKey | None = None  # the key the signature was checked against, and the result
    sig_ok: bool = False


@dataclass
class Slot:
    """One event object as found in storage."""

    name: str  # where it was found (key or path), for messages
    seq_from_name: int
    data: bytes | None
    versions: int = 1
    deleted: bool = False
    pre: Pre | None = None


def precheck(data: bytes | None, trusted: dict[str, Ed25519PublicKey] | None) -> Pre | None:
    """Parse, hash and (with `trusted`) signature-check one document; None if unreadable (check_chain says why).

    Run by the threads that fetch a chain, so a 10,000-event chain is checked while it is still arriving."""
    try:
        env = json.loads(data or b"")
        ev, sig = env["event"], env["signature"]
        body = canonical(ev)
        pre = Pre(env, hashlib.sha256(body).hexdigest())
        pub = (trusted or {}).get(sig.get("key_id"))
        if pub is not None:
            pre.verified_with = pub
            pre.sig_ok = sig.get("alg") == "ed25519" and verify_signature(pub, body, sig.get("value", ""))
        return pre
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class Finding:
    subject: str
    problem: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}"


@dataclass
class ChainReport:
    events: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    head_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        return not self.findings


def seq_from_name(name: str) -> int | None:
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    return int(stem) if stem.isdigit() else None


def check_chain(slots: list[Slot], trusted: dict[str, Ed25519PublicKey], exhibit_id: str | None = None,
                expected_min_len: int = 0) -> ChainReport:
    """Verify order, links, hashes and signatures of one exhibit's events."""
    rep = ChainReport()
    slots = sorted(slots, key=lambda s: s.seq_from_name)
    prev = GENESIS
    expected = 0
    for slot in slots:
        subj = f"event {slot.seq_from_name} ({slot.name})"
        while expected < slot.seq_from_name:
            rep.findings.append(Finding(f"event {expected}", "missing: the chain has a hole here (deleted?)"))
            expected += 1
        expected = slot.seq_from_name + 1
        if slot.deleted:
            rep.findings.append(Finding(subj, "deleted: a delete marker hides this event"))
        if slot.versions > 1:
            rep.findings.append(Finding(subj, f"overwritten: {slot.versions} versions exist, events are write-once"))
        if slot.data is None:
            prev = None  # type: ignore[assignment]
            continue
        try:
            env = slot.pre.env if slot.pre else json.loads(slot.data)
            ev = env["event"]
            stored_hash = env["event_sha256"]
            sig = env["signature"]
        except (ValueError, KeyError, TypeError) as exc:
            rep.findings.append(Finding(subj, f"unreadable event document ({exc})"))
            prev = None  # type: ignore[assignment]
            continue
        actual = slot.pre.actual if slot.pre else event_hash(ev)
        if actual != stored_hash:
            rep.findings.append(Finding(subj, f"content altered: hash {actual} != recorded {stored_hash}"))
        if ev.get("seq") != slot.seq_from_name:
            rep.findings.append(Finding(subj, f"out of place: stored as {slot.seq_from_name} but says seq "
                                              f"{ev.get('seq')} (events moved or swapped)"))
        if exhibit_id and (ev.get("exhibit") or {}).get("id") != exhibit_id:
            rep.findings.append(Finding(subj, "belongs to another exhibit"))
        if prev is not None and ev.get("prev_hash") != prev:
            rep.findings.append(Finding(subj, f"broken link: prev_hash {ev.get('prev_hash')} != hash of previous "
                                              f"event {prev}"))
        kid = sig.get("key_id")
        pub = trusted.get(kid)
        if pub is None:
            rep.findings.append(Finding(subj, f"signed by untrusted key {kid}"))
        elif not (slot.pre.sig_ok if slot.pre and slot.pre.verified_with is pub else
                  sig.get("alg") == "ed25519" and verify_signature(pub, canonical(ev), sig.get("value", ""))):
            rep.findings.append(Finding(subj, f"bad signature: does not verify with key {kid}"))
        rep.events.append(ev)
        prev = actual
    if expected < expected_min_len:
        rep.findings.append(Finding(f"event {expected}", f"missing: {expected_min_len - expected} event(s) at the end "
                                                         "of the chain were seen before and are gone"))
    rep.head_hash = prev or ""
    return rep

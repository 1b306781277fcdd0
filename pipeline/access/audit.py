"""Access audit trail: who asked for what, when, and whether they got it — signed and chained.

Separate from the custody chain because most accesses touch no exhibit (a refused token, a case
listing) and a refusal must be recorded even when the caller could not name a real exhibit.

Many API hosts (and many threads in each) append at once, so every writer (one per thread of an
`AuditTrail`) keeps its own hash chain per UTC day and never contends with another, on the server
or in the process: an entry is one write-once object

    audit/<YYYY-MM-DD>/<HHMMSSffffff>-<writer>-<seq, 8 digits>-<request id>.json

created with If-None-Match under the bucket's Object Lock, holding the entry signed the way custody
events are (`custody.events.envelope`: canonical JSON, SHA-256, Ed25519) with `seq` and `prev_hash`
linking it to the writer's previous entry of that day. The name sorts by time (newest first for
`read`), carries the request id (one lookup per request) and the chain position. Deleting an entry
is refused by the lock, but a delete marker can *hide* one from a plain listing, and an insider
with the S3 keys can add a version: `verify` reads every version and reports hidden, overwritten,
edited, unsigned and missing entries, and `read` shows hidden entries flagged instead of losing them.
Each day's chain starts at seq 0; its first entry names the writer's previous day (length and head).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.access.redact import redact_value
from pipeline.custody.chain import Finding, Slot, check_chain
from pipeline.custody.events import GENESIS, canonical, envelope, event_hash, normalise
from pipeline.custody.signing import Signer
from pipeline.errors import UsageError
from pipeline.storage.store import EvidenceStore

PREFIX = "audit/"
SCHEMA = "custody.audit/2"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME = re.compile(r"(?P<time>\d{12})-(?P<writer>[0-9a-f]{16})-(?P<seq>\d{8})-(?P<rid>[0-9a-f]{32})\.json")
_RESERVED = ("schema", "time", "writer", "seq", "prev_hash", "continues")


@dataclass
class _Head:
    day: str = ""
    seq: int = -1
    prev: str = GENESIS
    previous_day: dict[str, Any] | None = None


@dataclass
class DayReport:
    """What `verify` found for one day: each writer's chain length and every finding."""

    day: str
    entries: int = 0
    writers: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, "ok": self.ok, "entries": self.entries, "writers": self.writers,
                "findings": [str(f) for f in self.findings]}


def _parse(key: str) -> re.Match[str] | None:
    return _NAME.fullmatch(key.rsplit("/", 1)[-1])


class AuditTrail:
    """Append (one signed chain per writer and day) and read access-audit entries."""

    def __init__(self, store: EvidenceStore, signer: Signer | None = None) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self._signer = signer
        self._local = threading.local()  # one writer (chain) per thread: no lock, no contention

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = Signer.load_or_create(self.store.settings.signing_key_path)
        return self._signer

    # ---- writing ---------------------------------------------------------
    def write(self, entry: dict[str, Any]) -> str:
        """Store one entry; returns its key. Raises if the store refuses (callers deny access then).

        Credentials are masked (`redact.redact_value`) before anything is signed or stored.
        """
        clean = normalise(redact_value(entry))
        rid = str(clean.get("request_id") or "")
        rid = rid if re.fullmatch(r"[0-9a-f]{32}", rid) else uuid.uuid4().hex
        clean["request_id"] = rid
        loc = self._local
        if not hasattr(loc, "writer"):
            loc.writer, loc.head = uuid.uuid4().hex[:16], _Head()
        # each thread appends to its own chain, so its appends are ordered without any lock
        writer = loc.writer
        now = datetime.now(UTC)
        day = f"{now:%Y-%m-%d}"
        head = loc.head
        if head.day != day:
            prior = {"day": head.day, "length": head.seq + 1, "head": head.prev} if head.day else None
            head = _Head(day, -1, GENESIS, prior)
        seq = head.seq + 1
        doc = {**{k: v for k, v in clean.items() if k not in _RESERVED}, "schema": SCHEMA,
               "time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "seq": seq, "prev_hash": head.prev,
               "writer": {"id": writer, "host": socket.gethostname()}}
        if seq == 0 and head.previous_day:
            doc["continues"] = head.previous_day
        body = json.dumps(envelope(doc, self.signer.sign(canonical(doc)), self.signer.key_id),
                          sort_keys=True, ensure_ascii=False).encode()
        key = f"{PREFIX}{day}/{now:%H%M%S%f}-{writer}-{seq:08d}-{rid}.json"
        try:
            self.store.put_bytes(self.bucket, key, body, if_absent=True, lock=True)
        except BaseException:
            # it may or may not have landed: continue in a fresh chain, so no sequence number is ever used twice
            loc.writer, loc.head = uuid.uuid4().hex[:16], _Head()
            raise
        loc.head = _Head(day, seq, event_hash(doc), head.previous_day)
        return key

    def alert(self, kind: str, **facts: Any) -> None:
        """An alert (e.g. a tampered administration record) goes into the trail as its own entry."""
        self.write({"event": "alert", "alert": kind, "outcome": "alert", **facts})

    # ---- reading ---------------------------------------------------------
    def _day_slots(self, day: str) -> list[tuple[str, Slot]]:
        """(key, slot) for every entry of the day ever written, hidden ones included."""
        prefix = f"{PREFIX}{day}/"
        by_key: dict[str, list[Any]] = {}
        for key, v in self.store.list_all_versions(self.bucket, prefix):  # before the plain listing (records.py)
            by_key.setdefault(key, []).append(v)
        current = set(self.store.list_keys(self.bucket, prefix))
        for key in current - set(by_key):  # a server whose version listing lags: still read it
            by_key[key] = []
        out = []
        for key, versions in sorted(by_key.items()):
            m = _parse(key)
            live = [v for v in versions if not v.is_delete_marker]
            deleted = key not in current
            if not deleted:
                data = self.store.try_get_bytes(self.bucket, key)
            elif live:
                oldest = min(live, key=lambda v: (v.last_modified is None, v.last_modified))
                data = self.store.try_get_bytes(self.bucket, key, oldest.version_id)
            else:
                data = None
            out.append((key, Slot(key, int(m["seq"]) if m else -1, data, versions=max(len(live), 1),
                                  deleted=deleted)))
        return out

    def read(self, day: str | None = None, limit: int = 100, user: str | None = None,
             outcome: str | None = None, request_id: str | None = None) -> list[dict[str, Any]]:
        """Newest entries of one UTC day (default today), optionally filtered.

        An entry hidden by a delete marker is still returned, with `hidden` saying so.
        """
        day = day or datetime.now(UTC).strftime("%Y-%m-%d")
        if not _DAY.fullmatch(day):
            raise UsageError("day must be YYYY-MM-DD")
        prefix = f"{PREFIX}{day}/"
        keys = {key for key, v in self.store.list_all_versions(self.bucket, prefix) if not v.is_delete_marker}
        current = set(self.store.list_keys(self.bucket, prefix))  # after the versions (see records.py)
        keys |= current
        ordered = sorted(keys, reverse=True)
        if request_id:  # the request id is in the key: no need to open every entry
            ordered = [k for k in ordered if k.endswith(f"-{request_id}.json")]
        out: list[dict[str, Any]] = []
        for key in ordered:
            hidden = key not in current
            data = self.store.try_get_bytes(self.bucket, key, None if not hidden else self._oldest(key))
            if not data:
                continue
            raw = json.loads(data)
            doc = raw.get("event", raw) if isinstance(raw, dict) else {}
            if hidden:
                doc = {**doc, "hidden": "a delete marker hides this entry from plain listings (run "
                                       "`custody audit verify`)"}
            if user and doc.get("user") != user:
                continue
            if outcome and doc.get("outcome") != outcome:
                continue
            out.append(doc)
            if len(out) >= limit:
                break
        return out

    def _oldest(self, key: str) -> str | None:
        live = [v for v in self.store.versions(self.bucket, key) if not v.is_delete_marker]
        if not live:
            return None
        return min(live, key=lambda v: (v.last_modified is None, v.last_modified)).version_id

    def days(self) -> list[str]:
        """Every UTC day that has entries (from the key names)."""
        return sorted({k[len(PREFIX):len(PREFIX) + 10] for k, _v in self.store.list_all_versions(self.bucket, PREFIX)
                       if _DAY.fullmatch(k[len(PREFIX):len(PREFIX) + 10])})

    # ---- verification ------------------------------------------------------
    def verify_day(self, day: str, trusted: dict[str, Any]) -> DayReport:
        """Check every writer's chain of one day: order, links, hashes, signatures, hidden or extra versions."""
        if not _DAY.fullmatch(day):
            raise UsageError("day must be YYYY-MM-DD")
        rep = DayReport(day)
        chains: dict[str, list[Slot]] = {}
        for key, slot in self._day_slots(day):
            m = _parse(key)
            if m is None:
                rep.findings.append(Finding(key, "not an audit entry name (unsigned legacy entry or planted object)"))
                continue
            chains.setdefault(m["writer"], []).append(slot)
        for writer, slots in sorted(chains.items()):
            chain = check_chain(slots, trusted)
            for ev in chain.events:
                if (ev.get("writer") or {}).get("id") != writer or ev.get("schema") != SCHEMA:
                    chain.findings.append(Finding(f"entry {ev.get('seq')}", "names another writer or schema"))
            rep.writers[writer] = len(slots)
            rep.entries += len(slots)
            rep.findings.extend(Finding(f"writer {writer} {f.subject}", f.problem) for f in chain.findings)
        return rep

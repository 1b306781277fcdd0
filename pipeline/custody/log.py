"""Append-only, hash-chained, signed custody log per exhibit, stored in S3.

Each event is its own write-once object `exhibits/<id>/events/<seq>.json`,
created with `If-None-Match: *`: of two appenders racing for the same
sequence number the server lets exactly one win, the other reads the winner
and tries the next number. The chain therefore can't fork or lose an event.
The head is cached (chainstore), so appending never lists the chain, and
every new head is queued for the store-wide transparency log (tlog).
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import __version__
from pipeline.custody.actor import Actor
from pipeline.custody.chain import ChainReport, Slot, check_chain
from pipeline.custody.chainstore import ChainStore, Witness, doc_key
from pipeline.custody.doccache import DocCache
from pipeline.custody.events import build_event
from pipeline.custody.keys import SignerBackend, Trust, load_trust
from pipeline.custody.signing import public_pem
from pipeline.custody.tlog import TransparencyLog
from pipeline.errors import ChainConflict
from pipeline.settings import Settings
from pipeline.storage import EvidenceStore
from pipeline.storage.client import SDK_VERSION

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger(__name__)


def events_prefix(exhibit_id: str) -> str:
    return f"exhibits/{exhibit_id}/events/"


def event_key(exhibit_id: str, seq: int) -> str:
    return doc_key(events_prefix(exhibit_id), seq)


def base_tools() -> dict[str, str]:
    return {"custody": __version__, "python": platform.python_version(), "minio-sdk": SDK_VERSION}


class CustodyLog:
    """Reads and appends custody events for exhibits; every append is queued for the transparency log."""

    def __init__(self, store: EvidenceStore, signer: SignerBackend, settings: Settings) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        self.bucket = store.buckets["custody"]
        self._published: set[tuple[str, str]] = set()
        self.chains = ChainStore(store, Witness(settings.home / "witness"), DocCache(settings.home / "cache" / "docs"))
        self.tlog = TransparencyLog(store, signer, settings, self.trusted_keys)
        self._trust: Trust | None = None

    # ---- keys ----------------------------------------------------------
    def trust(self) -> Trust:
        """Our own key, keys the operator listed as trusted, and their successors by signed key change;
        never a key merely found in the store."""
        if self._trust is None:
            t = load_trust(self.settings, self.signer)
            t.apply_changes(self.key_changes())
            self._trust = t
        return self._trust

    def trusted_keys(self, refresh: bool = False) -> dict[str, Ed25519PublicKey]:
        """`refresh`: re-read the trusted folder and key changes (a long-running process meets a new host's key)."""
        if refresh:
            self._trust = None
        return dict(self.trust().keys)

    def key_changes(self) -> list[dict[str, Any]]:
        out = []
        for key in self.store.list_keys(self.bucket, "keys/changes/"):
            data = self.store.try_get_bytes(self.bucket, key)
            try:
                out.append(json.loads(data or b""))
            except ValueError:
                continue
        return out

    def _publish_key(self, exhibit_id: str) -> None:
        """Publish our public key beside the exhibit's log (once)."""
        kid = self.signer.key_id
        if (exhibit_id, kid) in self._published:
            return
        for key in (f"keys/{kid}.pem", f"exhibits/{exhibit_id}/keys/{kid}.pem"):
            try:
                self.store.put_bytes(self.bucket, key, public_pem(self.signer.public),
                                     content_type="application/x-pem-file", if_absent=True, lock=True)
            except ChainConflict:
                pass
        self._published.add((exhibit_id, kid))

    # ---- reading -------------------------------------------------------
    def slots(self, exhibit_id: str, trusted: dict[str, Ed25519PublicKey] | None = None, *,
              cached: bool = False) -> list[Slot]:
        """Every event object with its version history, for verification (pre-checked against `trusted`)."""
        return self.chains.slots(events_prefix(exhibit_id), trusted, cached=cached)

    def read(self, exhibit_id: str, *, cached: bool = True) -> ChainReport:
        """The exhibit's chain, checked; events are usable only if report.ok.

        The check before a command works on an exhibit takes unchanged documents from the home's copies
        (doccache: the listed ETag must be the copy's MD5); `custody verify` and bundles read every byte."""
        witnessed = self.witnessed_length(exhibit_id)
        trusted = self.trusted_keys()
        return check_chain(self.slots(exhibit_id, trusted, cached=cached), trusted, exhibit_id, witnessed)

    def events(self, exhibit_id: str) -> list[dict[str, Any]]:
        return [d["event"] for d in self.chains.documents(events_prefix(exhibit_id))]

    def witnessed_length(self, exhibit_id: str) -> int:
        """How long this home last saw the chain (a local check; the transparency log is the shared one)."""
        w = self.chains.witness.get(exhibit_id)
        return w.length if w else 0

    # ---- appending -----------------------------------------------------
    def append(self, case: dict[str, str], exhibit: dict[str, str], *, actor: Actor, action: str,
               objects: list[dict[str, Any]] | None = None, tools: dict[str, str] | None = None,
               parameters: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
               max_attempts: int = 200) -> dict[str, Any]:
        """Sign and store the next event; retries on a lost race, never forks; queues the head for the log."""
        exhibit_id = exhibit["id"]
        self._publish_key(exhibit_id)
        all_tools = {**base_tools(), **(tools or {})}

        def build(seq: int, prev: str, when: str) -> dict[str, Any]:
            return build_event(case=case, exhibit=exhibit, seq=seq, prev_hash=prev, actor=actor.as_dict(),
                               action=action, objects=objects or [], tools=all_tools, parameters=parameters or {},
                               details=details, time=when)

        prefix = events_prefix(exhibit_id)
        ev, _head = self.chains.append(exhibit_id, prefix, build, self.signer, max_attempts=max_attempts)
        self.tlog.submit(prefix, ev["seq"])
        return ev


def tool_versions_cli() -> dict[str, str]:
    return {**base_tools(), "argv0": Path(sys.argv[0]).name}

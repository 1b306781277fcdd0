"""Append-only, hash-chained, signed custody log per exhibit, stored in S3.

Each event is its own write-once object `exhibits/<id>/events/<seq>.json`,
created with `If-None-Match: *`: of two appenders racing for the same
sequence number the server lets exactly one win, the other re-reads the head
and tries the next number. The chain therefore can't fork or lose an event.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline import __version__
from pipeline.custody.actor import Actor
from pipeline.custody.chain import ChainReport, Slot, check_chain, seq_from_name
from pipeline.custody.events import GENESIS, build_event, canonical, envelope, event_hash
from pipeline.custody.signing import Signer, load_public_pem, public_pem
from pipeline.errors import ChainConflict, CustodyError
from pipeline.settings import Settings
from pipeline.storage import EvidenceStore
from pipeline.storage.client import SDK_VERSION

log = logging.getLogger(__name__)


def events_prefix(exhibit_id: str) -> str:
    return f"exhibits/{exhibit_id}/events/"


def event_key(exhibit_id: str, seq: int) -> str:
    return f"{events_prefix(exhibit_id)}{seq:08d}.json"


def base_tools() -> dict[str, str]:
    return {"custody": __version__, "python": platform.python_version(), "minio-sdk": SDK_VERSION}


class CustodyLog:
    """Reads and appends custody events for exhibits."""

    def __init__(self, store: EvidenceStore, signer: Signer, settings: Settings) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        self.bucket = store.buckets["custody"]
        self._published: set[tuple[str, str]] = set()

    # ---- keys ----------------------------------------------------------
    def trusted_keys(self) -> dict[str, Ed25519PublicKey]:
        """Our own key plus keys the operator listed as trusted; never keys found in the store."""
        keys = {self.signer.key_id: self.signer.public}
        paths = list(self.settings.trusted_keys)
        tdir = self.settings.keys_dir / "trusted"
        if tdir.is_dir():
            paths += sorted(tdir.glob("*.pem"))
        for p in paths:
            pub = load_public_pem(Path(p).read_bytes())
            from pipeline.custody.signing import key_id

            keys[key_id(pub)] = pub
        return keys

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
    def slots(self, exhibit_id: str) -> list[Slot]:
        """Every event object with its version history, for verification.

        Deletion is judged from the plain listing, not from `is_latest`, which
        some servers report on more than one version.
        """
        prefix = events_prefix(exhibit_id)
        current = set(self.store.list_keys(self.bucket, prefix))
        by_key: dict[str, list[Any]] = {}
        for key, v in self.store.list_all_versions(self.bucket, prefix):
            by_key.setdefault(key, []).append(v)
        slots = []
        for key, versions in sorted(by_key.items()):
            seq = seq_from_name(key)
            if seq is None:
                slots.append(Slot(key, -1, b"{}", 1))
                continue
            live = [v for v in versions if not v.is_delete_marker]
            deleted = key not in current
            if not deleted:
                data = self.store.try_get_bytes(self.bucket, key)
            elif live:  # judge what the delete marker hides
                oldest = min(live, key=lambda v: (v.last_modified is None, v.last_modified))
                data = self.store.try_get_bytes(self.bucket, key, oldest.version_id)
            else:
                data = None
            slots.append(Slot(key, seq, data, versions=len(live), deleted=deleted))
        return slots

    def read(self, exhibit_id: str) -> ChainReport:
        """The exhibit's chain, checked; events are usable only if report.ok."""
        witnessed = self.witnessed_length(exhibit_id)
        return check_chain(self.slots(exhibit_id), self.trusted_keys(), exhibit_id, witnessed)

    def events(self, exhibit_id: str) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.store.list_keys(self.bucket, events_prefix(exhibit_id))):
            data = self.store.try_get_bytes(self.bucket, key)
            if data:
                out.append(json.loads(data)["event"])
        return out

    def _head(self, exhibit_id: str) -> tuple[int, str]:
        keys = sorted(self.store.list_keys(self.bucket, events_prefix(exhibit_id)))
        if not keys:
            return -1, GENESIS
        last = keys[-1]
        seq = seq_from_name(last)
        data = self.store.get_bytes(self.bucket, last)
        return (seq if seq is not None else -1), json.loads(data)["event_sha256"]

    # ---- witness: detects a truncated tail, which a chain alone cannot --
    def _witness_path(self, exhibit_id: str) -> Path:
        return self.settings.home / "witness" / f"{exhibit_id}.json"

    def witnessed_length(self, exhibit_id: str) -> int:
        p = self._witness_path(exhibit_id)
        try:
            return int(json.loads(p.read_text())["length"])
        except (OSError, ValueError, KeyError):
            return 0

    def _witness_put(self, exhibit_id: str, length: int, head: str) -> None:
        p = self._witness_path(exhibit_id)
        p.parent.mkdir(parents=True, exist_ok=True)
        if length <= self.witnessed_length(exhibit_id):
            return
        tmp = p.with_suffix(f".{time.time_ns()}.tmp")
        tmp.write_text(json.dumps({"length": length, "head": head}))
        tmp.replace(p)

    # ---- appending -----------------------------------------------------
    def append(self, case: dict[str, str], exhibit: dict[str, str], *, actor: Actor, action: str,
               objects: list[dict[str, Any]] | None = None, tools: dict[str, str] | None = None,
               parameters: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
               max_attempts: int = 200) -> dict[str, Any]:
        """Sign and store the next event; retries on a lost race, never forks."""
        exhibit_id = exhibit["id"]
        self._publish_key(exhibit_id)
        seq, prev = self._head(exhibit_id)
        all_tools = {**base_tools(), **(tools or {})}
        for _attempt in range(max_attempts):
            ev = build_event(case=case, exhibit=exhibit, seq=seq + 1, prev_hash=prev, actor=actor.as_dict(),
                             action=action, objects=objects or [], tools=all_tools, parameters=parameters or {},
                             details=details)
            doc = envelope(ev, self.signer.sign(canonical(ev)), self.signer.key_id)
            body = json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1).encode()
            try:
                self.store.put_bytes(self.bucket, event_key(exhibit_id, seq + 1), body, if_absent=True, lock=True)
            except ChainConflict:
                # someone else took seq+1: move our head forward to theirs and try again
                data = self.store.try_get_bytes(self.bucket, event_key(exhibit_id, seq + 1))
                if data is None:
                    time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not crypto
                    seq, prev = self._head(exhibit_id)
                else:
                    seq, prev = seq + 1, json.loads(data)["event_sha256"]
                continue
            self._witness_put(exhibit_id, seq + 2, event_hash(ev))
            return ev
        raise CustodyError(f"could not append to the custody log of exhibit {exhibit_id} after "
                           f"{max_attempts} attempts (heavy contention?)")


def tool_versions_cli() -> dict[str, str]:
    return {**base_tools(), "argv0": Path(sys.argv[0]).name}

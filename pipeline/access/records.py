"""Signed, hash-chained record chains in S3 for administration: the custody machinery, reused.

A chain is the objects `<prefix><seq, 8 digits>.json`, each the envelope custody events use
(`custody.events.envelope`: canonical JSON, its SHA-256, an Ed25519 signature), linked by
`prev_hash` and checked by `custody.chain.check_chain` against trusted keys only. Appends are
conditional writes (If-None-Match: of two racing admins exactly one gets a sequence number, the
other moves on), so a chain cannot fork.

Loading is checked every time: two listings (current keys and every version) fingerprint the chain,
so an added version, a delete marker or a new record is seen on the next load; unchanged chains are
served from memory, so checking costs two LIST requests, not a GET per record.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.custody.chain import ChainReport, Finding, Slot, check_chain, seq_from_name
from pipeline.custody.events import GENESIS, canonical, envelope, normalise, utcnow
from pipeline.custody.signing import Signer, key_id, load_public_pem
from pipeline.errors import ChainConflict, CustodyError
from pipeline.settings import Settings
from pipeline.storage.store import EvidenceStore


def trusted_keys(settings: Settings, signer: Signer) -> dict[str, Ed25519PublicKey]:
    """Our own key plus keys the operator listed as trusted, never a key merely found in the store (as custody)."""
    keys = {signer.key_id: signer.public}
    paths = [Path(p) for p in settings.trusted_keys]
    tdir = settings.keys_dir / "trusted"
    if tdir.is_dir():
        paths += sorted(tdir.glob("*.pem"))
    for p in paths:
        pub = load_public_pem(p.read_bytes())
        keys[key_id(pub)] = pub
    return keys


@dataclass
class Loaded:
    """A chain as found and checked."""

    fingerprint: tuple[Any, ...]
    report: ChainReport

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.report.events


class RecordChains:
    """Load (checked, cached by fingerprint) and append signed record chains in one bucket."""

    def __init__(self, store: EvidenceStore, signer: Signer, trusted: Callable[[], dict[str, Ed25519PublicKey]],
                 schema: str) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self.signer = signer
        self.trusted = trusted
        self.schema = schema
        self._cache: dict[str, Loaded] = {}
        self._lock = threading.Lock()

    def _fingerprint(self, prefix: str) -> tuple[tuple[Any, ...], set[str], dict[str, list[Any]]]:
        # versions first, then the plain listing: a record written between the two is then merely "not yet
        # in the version list" (read normally), never mistaken for one hidden by a delete marker
        by_key: dict[str, list[Any]] = {}
        for key, v in self.store.list_all_versions(self.bucket, prefix):
            by_key.setdefault(key, []).append(v)
        current = set(self.store.list_keys(self.bucket, prefix))
        for key in current - set(by_key):
            by_key[key] = []
        fp = tuple(sorted((k, k in current, tuple(sorted(str(v.version_id) for v in vs)))
                          for k, vs in by_key.items()))
        return fp, current, by_key

    def load(self, prefix: str) -> Loaded:
        """The chain under `prefix`, verified (from memory when nothing changed since the last check)."""
        fp, current, by_key = self._fingerprint(prefix)
        with self._lock:
            cached = self._cache.get(prefix)
        if cached and cached.fingerprint == fp:
            return cached
        slots = []
        for key, versions in sorted(by_key.items()):
            seq = seq_from_name(key)
            live = [v for v in versions if not v.is_delete_marker]
            deleted = key not in current
            if not deleted:
                data = self.store.try_get_bytes(self.bucket, key)
            elif live:  # judge what the delete marker hides
                oldest = min(live, key=lambda v: (v.last_modified is None, v.last_modified))
                data = self.store.try_get_bytes(self.bucket, key, oldest.version_id)
            else:
                data = None
            slots.append(Slot(key, seq if seq is not None else -1, data, versions=max(len(live), 1),
                              deleted=deleted))
        rep = check_chain(slots, self.trusted())
        for ev in rep.events:
            if ev.get("schema") != self.schema:
                rep.findings.append(Finding(f"record {ev.get('seq')}", f"schema is not {self.schema}"))
        loaded = Loaded(fp, rep)
        with self._lock:
            self._cache[prefix] = loaded
        return loaded

    def append(self, prefix: str, body: dict[str, Any], *, actor: dict[str, str], action: str,
               require_new: bool = False, max_attempts: int = 50) -> dict[str, Any]:
        """Sign and store the next record; `require_new` makes it the chain's first (ChainConflict otherwise)."""
        for _attempt in range(max_attempts):
            loaded = self.load(prefix)
            if loaded.records and require_new:
                raise ChainConflict(f"{prefix} already holds records")
            if not loaded.ok:
                raise CustodyError(f"refusing to append to {prefix}: its records do not verify ("
                                   + "; ".join(str(f) for f in loaded.report.findings[:3]) + ")")
            seq = len(loaded.records)
            prev = loaded.report.head_hash if seq else GENESIS
            rec = normalise({"schema": self.schema, "seq": seq, "time": utcnow(), "actor": actor, "action": action,
                             **body, "host": {"name": socket.gethostname()}, "prev_hash": prev})
            doc = envelope(rec, self.signer.sign(canonical(rec)), self.signer.key_id)
            data = json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1).encode()
            try:
                self.store.put_bytes(self.bucket, f"{prefix}{seq:08d}.json", data, if_absent=True, lock=True)
            except ChainConflict:
                if require_new:
                    raise
                continue  # another admin took this number: reload and go after theirs
            with self._lock:
                self._cache.pop(prefix, None)
            return rec
        raise CustodyError(f"could not append to {prefix} after {max_attempts} attempts (heavy contention?)")


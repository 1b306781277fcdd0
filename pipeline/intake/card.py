"""What an exhibit already took from its card, so a rerun recognises it instead of recording it twice.

`custody upload card/` is rerun after an interruption, or by someone unsure it finished. Each file
already stored from that card (same exhibit, same path on the card, same bytes) is then reported as
`already_stored` and nothing is recorded again; before, every file became a second
`duplicate_linked` event. Links and refused items already recorded are not recorded again either.

The record of what was taken is a set of write-once manifests `exhibits/<id>/card-items/<run>-<n>.json`
in the custody bucket, written every FLUSH_EVERY items and at the end of a run (also when it fails),
after the custody events they summarise: like the duplicate index, a cache whose truth is the chain.
A run killed outright loses at most the last FLUSH_EVERY entries, which the next run stores (or
links) again.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from pipeline.errors import ChainConflict
from pipeline.storage import EvidenceStore

FLUSH_EVERY = 100
SCHEMA = "custody.card-items/1"


class CardItems:
    """The card items an exhibit holds (loaded once per run) and the ones this run adds."""

    def __init__(self, store: EvidenceStore, exhibit_id: str) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self.prefix = f"exhibits/{exhibit_id}/card-items/"
        self.exhibit_id = exhibit_id
        self.run = uuid.uuid4().hex
        self._n = 0
        self._lock = threading.RLock()  # a card's small files are stored from several threads
        self._pending: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}  # (path) -> latest entry stored from that path
        self._by_path_sha: set[tuple[str, str]] = set()
        self._others: set[tuple[str, str, str]] = set()
        for key in self.store.list_keys(self.bucket, self.prefix):
            data = self.store.try_get_bytes(self.bucket, key)
            try:
                doc = json.loads(data or b"{}")
                entries = doc["items"] if doc.get("exhibit_id") == exhibit_id else []
            except (ValueError, KeyError, TypeError):
                continue
            for e in entries:
                self._learn(e)

    def _learn(self, e: dict[str, Any]) -> None:
        if e.get("sha256"):
            self.files[e["path"]] = e
            self._by_path_sha.add((e["path"], e["sha256"]))
        else:
            self._others.add((e.get("path", ""), e.get("status", ""), e.get("target") or ""))

    def maybe_known(self, path: str, size: int) -> bool:
        """Could this file have been stored from this path before (worth hashing to find out)?"""
        e = self.files.get(path)
        return e is not None and int(e.get("size", -1)) == size

    def stored(self, path: str, sha256: str) -> dict[str, Any] | None:
        """The entry when exactly these bytes were stored from this path before."""
        if (path, sha256) not in self._by_path_sha:
            return None
        e = self.files.get(path)
        return e if e and e.get("sha256") == sha256 else {"path": path, "sha256": sha256}

    def recorded(self, item: dict[str, str]) -> bool:
        return (item.get("path", ""), item.get("status", ""), item.get("target") or "") in self._others

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._learn(entry)
            self._pending.append(entry)
            if len(self._pending) >= FLUSH_EVERY:
                self.flush()

    def flush(self) -> None:
        """Write what this run added since the last flush (one small write-once object)."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        doc = {"schema": SCHEMA, "exhibit_id": self.exhibit_id, "run": self.run, "items": self._pending}
        key = f"{self.prefix}{self.run}-{self._n:06d}.json"
        try:
            self.store.put_bytes(self.bucket, key, json.dumps(doc, ensure_ascii=False).encode(), if_absent=True,
                                 lock=True)
        except ChainConflict:
            pass
        self._n += 1
        self._pending = []

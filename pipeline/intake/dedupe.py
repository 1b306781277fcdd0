"""The duplicate index: identical bytes are recognised by SHA-256 and linked, not stored twice.

`index/sha256/<hex>.json` in the custody bucket names the first stored object
with those bytes (write-once, If-None-Match: the first copy wins any race).
It is a cache: the custody events that recorded each original are the truth.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import ChainConflict
from pipeline.storage import EvidenceStore, StoredObject


class HashIndex:
    """`index/sha256/<hex>.json` → the first stored object with those bytes (write-once)."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]

    @staticmethod
    def key(sha256: str) -> str:
        return f"index/sha256/{sha256.lower()}.json"

    def lookup(self, sha256: str) -> dict[str, Any] | None:
        data = self.store.try_get_bytes(self.bucket, self.key(sha256))
        return json.loads(data) if data else None

    def claim(self, obj: StoredObject, case: Case, exhibit: Exhibit) -> dict[str, Any] | None:
        """Register obj as the first copy; return the existing entry when another copy won."""
        doc = {**obj.ref(), "case_id": case.id, "exhibit_id": exhibit.id,
               "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            self.store.put_bytes(self.bucket, self.key(obj.sha256), json.dumps(doc).encode(), if_absent=True,
                                 lock=True)
        except ChainConflict:
            return self.lookup(obj.sha256)
        return None

"""The duplicate index, per case: identical bytes *within a case* are linked, not stored twice.

`index/sha256/<hex>/<case-id>.json` in the custody bucket names the first stored object with those
bytes in that case (write-once, If-None-Match: the first copy wins any race). It is a cache: the
custody events that recorded each original are the truth.

Why per case: a case must learn nothing of another. A shared index answered "case A already holds
these bytes" to anyone uploading into case B, returned A's ids, keys and ingest time, and wrote them
into B's chain. Now an upload into case B behaves exactly as if the bytes were new there, and bytes
held by two cases are stored once per case, so each case's objects, retention, legal holds and
bundles stand on their own. Matches across cases are found only by `matches`, which the supervisory
search (API and CLI) wraps in an audit entry.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import ChainConflict, UsageError
from pipeline.storage import EvidenceStore, StoredObject

_SHA = re.compile(r"[0-9a-f]{64}")


def _sha(value: str) -> str:
    v = value.lower()
    if not _SHA.fullmatch(v):
        raise UsageError("a SHA-256 is 64 hex digits")
    return v


class HashIndex:
    """`index/sha256/<hex>/<case-id>.json` → the first object with those bytes in that case (write-once)."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]

    @staticmethod
    def key(sha256: str, case_id: str) -> str:
        return f"index/sha256/{_sha(sha256)}/{case_id}.json"

    def lookup(self, sha256: str, case_id: str) -> dict[str, Any] | None:
        """The case's own earlier copy of these bytes, if any; other cases' copies are never consulted."""
        data = self.store.try_get_bytes(self.bucket, self.key(sha256, case_id))
        if not data:
            return None
        doc = json.loads(data)
        return doc if doc.get("case_id") == case_id else None

    def claim(self, obj: StoredObject, case: Case, exhibit: Exhibit) -> dict[str, Any] | None:
        """Register obj as the case's first copy; return the case's existing entry when another copy won."""
        doc = {**obj.ref(), "case_id": case.id, "exhibit_id": exhibit.id,
               "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            self.store.put_bytes(self.bucket, self.key(obj.sha256, case.id), json.dumps(doc).encode(),
                                 if_absent=True, lock=True)
        except ChainConflict:
            return self.lookup(obj.sha256, case.id)
        return None

    def matches(self, sha256: str) -> list[dict[str, Any]]:
        """Every case holding these bytes (one entry per case). Only for the audited supervisory search."""
        prefix = f"index/sha256/{_sha(sha256)}/"
        out = []
        for key in self.store.list_keys(self.bucket, prefix):
            data = self.store.try_get_bytes(self.bucket, key)
            if not data:
                continue
            doc = json.loads(data)
            out.append({k: doc.get(k) for k in ("case_id", "exhibit_id", "bucket", "key", "version_id", "sha256",
                                                "size", "time")})
        return sorted(out, key=lambda d: str(d.get("time")))

"""Access audit trail: who asked for what, when, and whether they got it.

Separate from the custody chain because most accesses touch no exhibit (a
refused token, a case listing) and a refusal must be recorded even when the
caller could not name a real exhibit. Each entry is its own write-once object
`audit/<YYYY-MM-DD>/<time>-<uuid>.json` in the custody bucket (created with
If-None-Match under the bucket's Object Lock), so entries can't be rewritten
or removed, and concurrent API hosts never contend for a key.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import UsageError
from pipeline.storage.store import EvidenceStore

PREFIX = "audit/"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class AuditTrail:
    """Append and read access-audit entries."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]

    def write(self, entry: dict[str, Any]) -> str:
        """Store one entry; returns its key. Raises if the store refuses (callers deny access then)."""
        now = datetime.now(UTC)
        doc = {"schema": "custody.audit/1", "time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **entry}
        rid = str(entry.get("request_id") or "")
        rid = rid if re.fullmatch(r"[0-9a-f]{32}", rid) else uuid.uuid4().hex
        key = f"{PREFIX}{now:%Y-%m-%d}/{now:%H%M%S%f}-{rid}.json"
        self.store.put_bytes(self.bucket, key, json.dumps(doc, sort_keys=True, ensure_ascii=False,
                                                          default=str).encode(), if_absent=True, lock=True)
        return key

    def read(self, day: str | None = None, limit: int = 100, user: str | None = None,
             outcome: str | None = None, request_id: str | None = None) -> list[dict[str, Any]]:
        """Newest entries of one UTC day (default today), optionally filtered."""
        day = day or datetime.now(UTC).strftime("%Y-%m-%d")
        if not _DAY.fullmatch(day):
            raise UsageError("day must be YYYY-MM-DD")
        keys = sorted(self.store.list_keys(self.bucket, f"{PREFIX}{day}/"), reverse=True)
        if request_id:  # the request id is in the key: no need to open every entry
            keys = [k for k in keys if k.endswith(f"-{request_id}.json")]
        out: list[dict[str, Any]] = []
        for key in keys:
            data = self.store.try_get_bytes(self.bucket, key)
            if not data:
                continue
            doc = json.loads(data)
            if user and doc.get("user") != user:
                continue
            if outcome and doc.get("outcome") != outcome:
                continue
            out.append(doc)
            if len(out) >= limit:
                break
        return out

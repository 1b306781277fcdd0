"""Download links for a stored bundle: short-lived, and each one a custody event."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.events import iso
from pipeline.errors import UsageError
from pipeline.evidence import Evidence


def presign_bundle_download(evidence: Evidence, case: Case | str, bundle_obj: dict[str, Any] | Any, actor: Actor,
                            expires: timedelta | int) -> str:
    """A short-lived download link; issuing it is a custody event on each exhibit the bundle holds.

    The URL is a bearer credential, so the log keeps its SHA-256 and expiry, never the URL.
    """
    if isinstance(case, str):
        case = evidence.catalog.get_case(case)
    ref = bundle_obj if isinstance(bundle_obj, dict) else (
        bundle_obj.object_ref() if hasattr(bundle_obj, "object_ref") else bundle_obj.ref())
    if isinstance(expires, int):
        expires = timedelta(seconds=expires)
    if not timedelta(seconds=1) <= expires <= timedelta(days=7):
        raise UsageError("a download link must expire within 1 s .. 7 days")
    holders: list[Exhibit] = []
    for ex in evidence.catalog.list_exhibits(case):
        for e in evidence.log.events(ex.id):
            if e["action"] == "exported" and any(
                    o.get("role") == "bundle" and o.get("key") == ref["key"] and o.get("version_id") ==
                    ref.get("version_id") for o in e.get("objects", [])):
                holders.append(ex)
                break
    if not holders:
        raise UsageError(f"{ref['bucket']}/{ref['key']} is not a recorded bundle of case {case.ref}")
    url = evidence.store.presigned_get(ref["bucket"], ref["key"], ref.get("version_id"), expires)
    until = iso(datetime.now(UTC) + expires)
    obj = {k: ref.get(k) for k in ("bucket", "key", "version_id", "sha256", "size")}
    for ex in holders:
        evidence.record(case, ex, "bundle_download_link_issued", actor=actor, objects=[{**obj, "role": "reference"}],
                        parameters={"expires_seconds": int(expires.total_seconds()), "expires_at": until},
                        details={"url_sha256": hashlib.sha256(url.encode()).hexdigest()})
    return url

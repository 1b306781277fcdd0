"""The one way an original enters the store: ingest, field upload, API/portal upload and camera segments.

`store_original` owns everything that must be the same whichever door the
bytes came through: the generated object key, the object metadata, the
content type decided from the bytes (never the name), the probe and EXIF
classification, the duplicate index and the custody events (`ingested` or the
caller's action, then `metadata_extracted`). Callers only say where the bytes
are and why they are here.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.events import normalise
from pipeline.evidence import Evidence, safe_display_name
from pipeline.intake.dedupe import HashIndex
from pipeline.intake.mediainfo import MediaReport, content_type_for, content_type_of, metadata_document
from pipeline.storage import StoredObject

Progress = Callable[[int], None]


@dataclass
class UploadResult:
    """What one offered original became; printed by `custody upload --json` and returned by the API."""

    original_name: str
    status: str
    message: str
    sha256: str
    size: int
    bucket: str
    key: str
    version_id: str | None
    event_seq: int
    duplicate_of: dict[str, Any] | None = None
    linked: bool = False
    resumed_parts: int = 0
    metadata: dict[str, Any] | None = None
    content_type: str = "application/octet-stream"
    digests: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # committed, but something local failed afterwards

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Offer:
    """Why and how an original is offered: the parts of the record the caller decides."""

    name: str  # the name it had on the card / in the request (kept as metadata only)
    parameters: dict[str, Any] = field(default_factory=dict)
    action: str = "ingested"
    details: dict[str, Any] | None = None
    tools: dict[str, str] | None = None
    key: str | None = None  # a deterministic key (camera segments); default: a generated one
    metadata: dict[str, str] = field(default_factory=dict)  # extra object metadata (e.g. camera id)
    index: bool = True  # enter the duplicate index (and learn of an earlier copy)

    @property
    def display_name(self) -> str:
        return safe_display_name(self.name)


def new_key(exhibit: Exhibit) -> str:
    """Object keys are generated IDs; the original name is never part of a key."""
    return f"{exhibit.case_id}/{exhibit.id}/{uuid.uuid4().hex}"


def object_metadata(exhibit: Exhibit, offer: Offer) -> dict[str, str]:
    return {"exhibit-id": exhibit.id, "case-id": exhibit.case_id, "original-name": offer.display_name,
            **offer.metadata}


def object_ref(obj: StoredObject | dict[str, Any], offer: Offer, media: MediaReport,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object as the custody event records it."""
    if isinstance(obj, StoredObject):
        base, digests, ctype = obj.ref(), obj.digests, obj.content_type
    else:
        base = {k: obj[k] for k in ("bucket", "key", "version_id", "sha256", "size")}
        digests, ctype = {"sha256": obj["sha256"]}, obj.get("content_type") or content_type_for(media.container)
    return {**base, "role": "original", "status": media.status, "original_name": offer.display_name,
            "digests": digests, "content_type": ctype,
            "info": {"message": media.message, "kind": media.kind, **(extra or {})}}


def put_original(ev: Evidence, exhibit: Exhibit, source: Path | BinaryIO, offer: Offer, *,
                 expected_sha256: str | None = None, algorithms: tuple[str, ...] = ("sha256",),
                 progress: Progress | None = None) -> StoredObject:
    """Store the bytes under Object Lock in one hashed pass (no event: `record_original` follows)."""
    kwargs: dict[str, Any] = dict(content_type=content_type_of, metadata=object_metadata(exhibit, offer), lock=True,
                                  expected_sha256=expected_sha256, algorithms=algorithms, progress=progress)
    bucket = ev.store.buckets["originals"]
    key = offer.key or new_key(exhibit)
    if isinstance(source, Path):
        return ev.store.put_file(bucket, key, source, **kwargs)
    return ev.store.put_stream(bucket, key, source, **kwargs)


def record_original(ev: Evidence, case: Case, exhibit: Exhibit, obj: StoredObject | dict[str, Any], offer: Offer,
                    media: MediaReport, actor: Actor, resumed_parts: int = 0) -> UploadResult:
    """Index, record the original's event and its metadata: the second half of every intake."""
    dup = None
    if offer.index and isinstance(obj, StoredObject):
        dup = HashIndex(ev.store).claim(obj, case, exhibit)
    details = {**(offer.details or {}), **({"duplicate_of": dup} if dup else {})}
    ref = object_ref(obj, offer, media)
    tools = {**media.tools, **(offer.tools or {})}
    params = {**offer.parameters, **({"resumed_parts": resumed_parts} if resumed_parts else {})}
    warnings: list[str] = []
    event = record_committed(ev, case, exhibit, offer.action, warnings, actor=actor, objects=[ref],
                             parameters=params, details=details or None, tools=tools)
    record_metadata(ev, case, exhibit, ref, media, actor, warnings)
    return UploadResult(offer.display_name, media.status, media.message, ref["sha256"], int(ref["size"]),
                        ref["bucket"], ref["key"], ref.get("version_id"), event["seq"], duplicate_of=dup,
                        resumed_parts=resumed_parts, metadata=media.metadata or None, content_type=ref["content_type"],
                        digests=ref["digests"], warnings=warnings)


def record_committed(ev: Evidence, case: Case, exhibit: Exhibit, action: str, warnings: list[str],
                     **kw: Any) -> dict[str, Any]:
    """`ev.record`, honest about a local failure after the event is committed in S3.

    S3 failures leave the storage seam as StorageError; an OSError escaping here is local (the log's
    witness file, a full disk). If the event did land, the work is done: return it and add a warning
    (the witness catches up at the exhibit's next event) instead of reporting a failed intake.
    """
    try:
        return ev.record(case, exhibit, action, **kw)
    except OSError as exc:
        found = _find_recorded(ev, exhibit, action, kw)
        if found is None:
            raise
        warnings.append(f"stored and recorded (event {found['seq']}), but a local write failed afterwards "
                        f"({exc.strerror or type(exc).__name__}{f': {exc.filename}' if exc.filename else ''}); "
                        "nothing is lost: the local witness of this exhibit catches up at its next event")
        return found


def _find_recorded(ev: Evidence, exhibit: Exhibit, action: str, kw: dict[str, Any]) -> dict[str, Any] | None:
    """The exhibit's newest event with exactly this action, actor, objects and parameters, if it was stored."""
    want = normalise({"actor": kw["actor"].as_dict(), "objects": kw.get("objects") or [],
                      "parameters": kw.get("parameters") or {}})
    for e in reversed(ev.log.events(exhibit.id)[-20:]):
        if e.get("action") == action and all(e.get(k) == v for k, v in want.items()):
            return e
    return None


def link_duplicate(ev: Evidence, case: Case, exhibit: Exhibit, existing: dict[str, Any], offer: Offer,
                   media: MediaReport, actor: Actor) -> UploadResult:
    """Identical bytes are already held in this case: record a `duplicate_linked` event instead of a second copy.

    Never across cases: linking to another case's object would tell this case that the other exists.
    """
    if existing.get("case_id") != case.id:
        raise ValueError("a duplicate is only ever linked within its own case")
    ref = object_ref(existing, offer, media, {"linked": True})
    warnings: list[str] = []
    event = record_committed(ev, case, exhibit, "duplicate_linked", warnings, actor=actor, objects=[ref],
                             parameters=offer.parameters,
                             details={"duplicate_of": {k: existing.get(k) for k in
                                                       ("bucket", "key", "version_id", "case_id", "exhibit_id")},
                                      "reason": "identical SHA-256 already held in this case; not stored again"})
    return UploadResult(offer.display_name, media.status, media.message, existing["sha256"], int(existing["size"]),
                        existing["bucket"], existing["key"], existing.get("version_id"), event["seq"],
                        duplicate_of=existing, linked=True, metadata=media.metadata or None,
                        content_type=ref["content_type"], digests=ref["digests"], warnings=warnings)


def record_metadata(ev: Evidence, case: Case, exhibit: Exhibit, source: dict[str, Any], media: MediaReport,
                    actor: Actor, warnings: list[str] | None = None) -> dict[str, Any] | None:
    """Store the metadata JSON as a derived object and record `metadata_extracted` with tool versions.

    Sent from memory (a few KB), so a full local disk cannot stop it after the original is committed.
    """
    if media.kind not in ("video", "image") or not media.tools:
        return None
    src = {k: source.get(k) for k in ("bucket", "key", "version_id", "sha256")}
    # the same object and reference `Evidence.add_derived` makes, without a temporary file
    meta = {"exhibit-id": exhibit.id, "source-key": src["key"], "source-version": src.get("version_id") or "",
            "source-sha256": src["sha256"], "kind": "metadata"}
    doc = metadata_document(media, src)
    obj = ev.store.put_stream(ev.store.buckets["derived"], f"{new_key(exhibit)}/metadata", io.BytesIO(doc),
                              content_type="application/json", metadata=meta, lock=True, size_hint=len(doc))
    ref = {**obj.ref(), "role": "derived", "kind": "metadata", "status": "ok", "original_name": "metadata.json",
           "source": src}
    record_committed(ev, case, exhibit, "metadata_extracted", warnings if warnings is not None else [], actor=actor,
                     objects=[ref], tools=media.tools,
                     parameters={"extractor": "pipeline.intake.mediainfo", "source_sha256": source["sha256"]},
                     details={"status": media.status, "message": media.message, "metadata": media.metadata})
    return ref

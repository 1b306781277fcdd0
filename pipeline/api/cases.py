"""Cases, exhibits, uploads, custody timeline, metadata, clock offsets, downloads and work requests.

Reads of evidence (exhibit contents, metadata) and downloads also become
custody events on the exhibit (`accessed` / `downloaded`), because who looked
at evidence is part of its custody; listings and timelines are audited only.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import anyio
from anyio import from_thread
from fastapi import APIRouter, Body, Header, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field

from pipeline.access.auth import ALL_CASES, AccessDenied
from pipeline.api.deps import (
    CASE_ID,
    EXHIBIT_ID,
    OBJECT_ID,
    REQUEST_ID,
    Services,
    SvcDep,
    UserDep,
    actor,
    authorize,
    case_for,
    exhibit_for,
    note,
)
from pipeline.api.downloads import presigned_download, safe_content_type
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import NotFoundError, UsageError
from pipeline.evidence import object_id  # noqa: F401 - re-exported
from pipeline.frames.models import Selection
from pipeline.intake.clock import CLOCK_ACTION, clock_parameters
from pipeline.intake.dedupe import HashIndex
from pipeline.intake.seizure import seizure_parameters
from pipeline.intake.upload import offer, store_stream
from pipeline.review.views import exhibit_metadata, exhibit_view
from pipeline.text import strip_invisible

router = APIRouter(prefix="/api")

CaseId = Annotated[str, Path(pattern=CASE_ID, description="Generated case ID (case-<32 hex>)")]
ExhibitId = Annotated[str, Path(pattern=EXHIBIT_ID, description="Generated exhibit ID (exh-<32 hex>)")]
ObjectId = Annotated[str, Path(pattern=OBJECT_ID, description="object_id from the exhibit's object list")]
DOWNLOAD_TTL = timedelta(minutes=5)


#: human-entered text: invisible format and control characters (bidi overrides, zero-width...) stripped
HumanText = Annotated[str, AfterValidator(strip_invisible)]


class CaseIn(BaseModel):
    ref: str = Field(min_length=1, max_length=64, description="Case reference, e.g. OP-NIGHTJAR/26")
    title: HumanText = Field(default="", max_length=200)


class ExhibitIn(BaseModel):
    ref: str = Field(min_length=1, max_length=32, description="Exhibit reference, e.g. JB/1")
    officer: HumanText = Field(min_length=1, max_length=100)
    description: HumanText = Field(default="", max_length=500)


class ClockIn(BaseModel):
    camera_time: str = Field(max_length=40, description="What the camera's clock showed (ISO 8601)")
    reference_time: str = Field(max_length=40, description="The reference clock at the same instant (ISO 8601)")
    note: HumanText = Field(default="", max_length=500)


class FramesIn(Selection):
    """A frame request speaks the extractor's own vocabulary (the mode registry's fields); none chosen: 1 per s."""

    object_id: str | None = Field(default=None, pattern=OBJECT_ID)
    note: HumanText = Field(default="", max_length=500)


class BundleIn(BaseModel):
    exhibit_ids: list[Annotated[str, Field(pattern=EXHIBIT_ID)]] | None = Field(default=None, max_length=500)
    note: HumanText = Field(default="", max_length=500)
    derived: Literal["review", "none", "all"] = Field(
        default="review", description="derived material besides the originals, as `custody bundle --derived`: "
        "review (clips, clock-time contact sheets, stills taken at a chosen instant, metadata), none, or all")


class Accepted(BaseModel):
    id: str
    kind: str
    status: str




def _case_dict(c: Case) -> dict[str, Any]:
    return {"case_id": c.id, "case": c.ref, "title": c.title, "created": c.created}


def _exhibit_dict(e: Exhibit) -> dict[str, Any]:
    return {"exhibit_id": e.id, "exhibit": e.ref, "officer": e.officer, "description": e.description,
            "created": e.created}


def _record(svc: Services, c: Case, e: Exhibit, action: str, user: Any, request: Request,
            objects: list[dict[str, Any]] | None = None, **params: Any) -> dict[str, Any]:
    rid = getattr(request.state, "request_id", None)
    return svc.ev.record(c, e, action, actor=actor(user), objects=objects,
                         parameters={"via": "api", "request_id": rid, **params})


# ---- cases -------------------------------------------------------------------
@router.get("/cases", summary="Cases visible to the caller")
def list_cases(request: Request, svc: SvcDep, user: UserDep) -> list[dict[str, Any]]:
    note(request, permission="case.read")
    ok, reason = svc.auth.allowed(user, "case.read")
    if not ok:
        raise AccessDenied(reason)
    cases = svc.ev.catalog.list_cases()
    if user.role not in ALL_CASES:
        mine = svc.auth.assigned_case_ids(user.name)
        cases = [c for c in cases if c.id in mine]
    return [_case_dict(c) for c in cases]


@router.post("/cases", status_code=201, summary="Open a case (admin)")
def create_case(request: Request, svc: SvcDep, user: UserDep, body: CaseIn) -> dict[str, Any]:
    authorize(request, svc, user, "case.create")
    case, created = svc.ev.create_case(body.ref, actor(user), body.title)
    note(request, case_id=case.id)
    return {**_case_dict(case), "created_now": created}


@router.get("/cases/{case_id}", summary="One case and its exhibits")
def get_case(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId) -> dict[str, Any]:
    c = case_for(request, svc, user, case_id, "case.read")
    return {**_case_dict(c), "exhibits": [_exhibit_dict(e) for e in svc.ev.catalog.list_exhibits(c)]}


@router.post("/cases/{case_id}/exhibits", status_code=201, summary="Register an exhibit (officer, admin)")
def create_exhibit(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId, body: ExhibitIn) -> dict[str, Any]:
    c = case_for(request, svc, user, case_id, "exhibit.create")
    _c, e = svc.ev.ensure_exhibit(c.ref, body.ref, body.officer, actor(user), body.description, create_case=False)
    note(request, exhibit_id=e.id)
    return _exhibit_dict(e)


def _view(svc: Services, c: Case, e: Exhibit) -> dict[str, Any]:
    view = exhibit_view(svc.ev, c.ref, e.ref)
    for o in view["objects"]:
        o["object_id"] = object_id(o["bucket"], o["key"])
    return view


@router.get("/cases/{case_id}/exhibits/{exhibit_id}", summary="An exhibit's objects (recorded as `accessed`)")
def get_exhibit(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId,
                exhibit_id: ExhibitId) -> dict[str, Any]:
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.read")
    view = _view(svc, c, e)
    _record(svc, c, e, "accessed", user, request, what="exhibit objects")
    return {k: v for k, v in view.items() if k != "events"}


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/custody", summary="Custody timeline with chain check")
def get_custody(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId,
                exhibit_id: ExhibitId) -> dict[str, Any]:
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "custody.read")
    chain = svc.ev.log.read(e.id)
    return {"case_id": c.id, "exhibit_id": e.id, "events": chain.events,
            "chain": {"ok": chain.ok, "length": len(chain.events), "head": chain.head_hash,
                      "findings": [str(f) for f in chain.findings]}}


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/metadata",
            summary="Extracted metadata, with camera times corrected by the recorded clock offset")
def get_metadata(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId,
                 exhibit_id: ExhibitId) -> dict[str, Any]:
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.read")
    md = exhibit_metadata(svc.ev, e)
    for item in md["items"]:
        src = item["source"] or {}
        item["object_id"] = object_id(src.get("bucket", ""), src.get("key", ""))
        mo = item.pop("metadata_object")
        item["metadata_object_id"] = object_id(mo["bucket"], mo["key"])
    _record(svc, c, e, "accessed", user, request, what="metadata")
    return {"case_id": c.id, **md}


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/clock", status_code=201,
             summary="Record the camera clock against a reference clock (custody event)")
def record_clock(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId, exhibit_id: ExhibitId,
                 body: ClockIn) -> dict[str, Any]:
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "clock.record")
    params = clock_parameters(body.camera_time, body.reference_time, body.note)
    ev = svc.ev.record(c, e, CLOCK_ACTION, actor=actor(user), parameters={**params, "via": "api"})
    return {"event_seq": ev["seq"], **params}


# ---- uploads -----------------------------------------------------------------
class _BodyReader:
    """Blocking file-like over the async request stream, for the store's one-pass upload in a worker thread."""

    def __init__(self, request: Request) -> None:
        self._it = request.stream().__aiter__()
        self._buf = bytearray()
        self._eof = False

    async def _next(self) -> bytes | None:
        try:
            return await self._it.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            chunk = from_thread.run(self._next)
            if chunk is None:
                self._eof = True
            else:
                self._buf += chunk
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


_BINARY_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/uploads", status_code=201, openapi_extra=_BINARY_BODY,
             summary="Upload one file as an original; the body is hashed in the pass that stores it")
async def upload(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId, exhibit_id: ExhibitId,
                 name: Annotated[str, Query(min_length=1, max_length=1024, description="Original file name")],
                 seized_at: Annotated[str | None, Query(max_length=40)] = None,
                 location: Annotated[str | None, Query(max_length=200)] = None,
                 device: Annotated[str | None, Query(max_length=200)] = None,
                 x_content_sha256: Annotated[str | None, Header(pattern=r"^[0-9a-fA-F]{64}$",
                                                                description="SHA-256 the client computed; "
                                                                            "a mismatch stores nothing")] = None,
                 content_type: Annotated[str | None, Header(max_length=200)] = None) -> dict[str, Any]:
    c, e = await anyio.to_thread.run_sync(exhibit_for, request, svc, user, case_id, exhibit_id, "evidence.upload")
    params = seizure_parameters(seized_at, location, device)
    reader = _BodyReader(request)

    def work() -> dict[str, Any]:
        o = offer(name, "api-upload", {**params, "request_id": getattr(request.state, "request_id", None)})
        r = store_stream(svc.ev, c, e, reader, o, actor=actor(user),  # type: ignore[arg-type]
                         expected_sha256=x_content_sha256, declared_type=content_type)
        return {**r.as_dict(), "object_id": object_id(r.bucket, r.key)}

    result = await anyio.to_thread.run_sync(work)
    note(request, object=result["key"], sha256=result["sha256"])
    return result


# ---- downloads -----------------------------------------------------------------
@router.get("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/download",
            summary="A short-lived presigned URL for one object (recorded as `downloaded`)")
def download(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId, exhibit_id: ExhibitId,
             object_id_: Annotated[str, Path(alias="object_id", pattern=OBJECT_ID)]) -> dict[str, Any]:
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.download")
    events = svc.ev.log.events(e.id)
    match = next((o for o in svc.ev.objects(events) if object_id(o.bucket, o.key) == object_id_), None)
    if match is None:
        raise NotFoundError(f"object {object_id_} is not part of exhibit {e.id}")
    ref = {"bucket": match.bucket, "key": match.key, "version_id": match.version_id, "sha256": match.sha256,
           "size": match.size, "role": "reference"}
    ctype = match.info.get("content_type")
    url = presigned_download(svc.ev.store, match.bucket, match.key, match.version_id, DOWNLOAD_TTL,
                             match.original_name, ctype)
    _record(svc, c, e, "downloaded", user, request, objects=[ref], expires_seconds=int(DOWNLOAD_TTL.total_seconds()))
    note(request, object=match.key)
    return {"url": url, "expires_seconds": int(DOWNLOAD_TTL.total_seconds()), "sha256": match.sha256,
            "size": match.size, "original_name": match.original_name, "version_id": match.version_id,
            "served_as": {"content_type": safe_content_type(ctype), "disposition": "attachment"}}


# ---- identical bytes across cases (supervisory, audited) ------------------------------
@router.get("/duplicates", summary="Cases holding exactly these bytes (supervisor, auditor, admin; audited)")
def search_duplicates(request: Request, svc: SvcDep, user: UserDep,
                      sha256: Annotated[str, Query(pattern=r"^[0-9a-fA-F]{64}$")],
                      reason: Annotated[HumanText, Query(min_length=3, max_length=500,
                                                         description="Why you search (audited)")]) -> dict[str, Any]:
    """The one place a match across cases is visible: no case's own view ever shows another case."""
    authorize(request, svc, user, "duplicates.search")
    found = HashIndex(svc.ev.store).matches(sha256)
    refs = {c.id: c.ref for c in svc.ev.catalog.list_cases()}
    note(request, sha256=sha256.lower(), reason=reason, matches=len(found),
         case_ids=[m["case_id"] for m in found])
    return {"sha256": sha256.lower(),
            "matches": [{"case_id": m["case_id"], "case": refs.get(m["case_id"]), "exhibit_id": m["exhibit_id"],
                         "object_id": object_id(m["bucket"], m["key"]), "since": m["time"]} for m in found]}


# ---- work requests (fulfilled later by flows) --------------------------------------
def _store_request(svc: Services, kind: str, doc: dict[str, Any]) -> str:
    rid = f"req-{uuid.uuid4().hex}"
    body = {"id": rid, "kind": kind, "status": "accepted",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **doc}
    svc.ev.store.put_bytes(svc.ev.store.buckets["custody"], f"requests/{rid}.json",
                           json.dumps(body, sort_keys=True).encode(), if_absent=True, lock=True)
    return rid


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/frames", status_code=202,
             summary="Request frame extraction (accepted and recorded; fulfilled by later work)")
def request_frames(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId, exhibit_id: ExhibitId,
                   body: FramesIn) -> Accepted:
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "frames.request")
    if not body.wants_anything():
        body = body.model_copy(update={"every_seconds": 1.0})
    if body.object_id is not None:
        objs = svc.ev.objects(svc.ev.log.events(e.id), roles=("original",))
        if not any(object_id(o.bucket, o.key) == body.object_id for o in objs):
            raise NotFoundError(f"object {body.object_id} is not an original of exhibit {e.id}")
    params = body.model_dump()
    rid = _store_request(svc, "frames", {"case_id": c.id, "exhibit_id": e.id, "requested_by": user.name,
                                         "parameters": params})
    _record(svc, c, e, "frames_requested", user, request, work_request=rid, **params)
    note(request, work_request=rid)
    return Accepted(id=rid, kind="frames", status="accepted")


@router.post("/cases/{case_id}/bundles", status_code=202,
             summary="Request an evidence bundle (accepted and recorded; fulfilled by later work)")
def request_bundle(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId,
                   body: Annotated[BundleIn, Body()]) -> Accepted:
    c = case_for(request, svc, user, case_id, "bundle.request")
    exhibits = svc.ev.catalog.list_exhibits(c)
    if body.exhibit_ids is not None:
        wanted = set(body.exhibit_ids)
        unknown = wanted - {e.id for e in exhibits}
        if unknown:
            raise NotFoundError(f"exhibit(s) not in case {c.id}: {', '.join(sorted(unknown))}")
        exhibits = [e for e in exhibits if e.id in wanted]
    if not exhibits:
        raise UsageError("the case has no exhibits to bundle")
    rid = _store_request(svc, "bundle", {"case_id": c.id, "exhibit_ids": [e.id for e in exhibits],
                                         "requested_by": user.name, "note": body.note, "derived": body.derived})
    for e in exhibits:
        _record(svc, c, e, "bundle_requested", user, request, work_request=rid, note=body.note)
    note(request, work_request=rid)
    return Accepted(id=rid, kind="bundle", status="accepted")


@router.get("/requests/{request_id}", summary="A frame or bundle request and its status")
def get_request(request: Request, svc: SvcDep, user: UserDep,
                request_id: Annotated[str, Path(pattern=REQUEST_ID)]) -> dict[str, Any]:
    data = svc.ev.store.try_get_bytes(svc.ev.store.buckets["custody"], f"requests/{request_id}.json")
    if not data:
        ok, reason = svc.auth.allowed(user, "evidence.read")
        if not ok:
            raise AccessDenied(reason)
        raise NotFoundError(f"request {request_id} does not exist")
    doc = json.loads(data)
    case_for(request, svc, user, doc["case_id"], "evidence.read")
    return doc

"""Resumable browser uploads for field teams.

A browser on a poor link sends a file as numbered chunks to an upload
session; the server appends each chunk only at the offset it has confirmed
(and only if its SHA-256 matches the one the browser computed), so after a
dropped connection the page asks for the confirmed offset and continues from
there. Chunks are spooled under `$CUSTODY_HOME/uploads/portal/` (the same
place the CLI journals its resumable uploads); once every byte is in, the
file goes through `pipeline.intake.upload.store_original` — the same hashing,
classification, duplicate check and `ingested` event as `custody upload`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path as FsPath
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from pipeline.access.auth import AccessDenied, User
from pipeline.api.cases import object_id
from pipeline.api.deps import Services, actor, case_for, exhibit_for, note
from pipeline.errors import ChainConflict, NotFoundError, UsageError
from pipeline.evidence import safe_display_name
from pipeline.intake.seizure import seizure_parameters
from pipeline.intake.upload import offer, store_original
from pipeline.web.perms import perms_for
from pipeline.web.routes import CaseId, ExhibitId, router
from pipeline.web.session import check_csrf, current, render

MAX_FILE = 256 * 1024**3
MAX_CHUNK = 64 * 1024 * 1024
SESSION_ID = r"^up-[0-9a-f]{32}$"
SESSION_DAYS = 7
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def chunk_bytes() -> int:
    """Chunk size offered to browsers: small enough to resend cheaply after a drop."""
    from pipeline.settings import load_settings

    return min(load_settings().portal_chunk_kb, MAX_CHUNK // 1024) * 1024


class ExhibitIn(BaseModel):
    ref: str = Field(min_length=1, max_length=32)
    officer: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)


class SessionIn(BaseModel):
    name: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0, le=MAX_FILE)
    content_type: str = Field(default="", max_length=200)
    seized_at: str | None = Field(default=None, max_length=40)
    seized_at_zone: str | None = Field(default=None, max_length=64, description="IANA zone or +HH:MM of seized_at")
    location: str | None = Field(default=None, max_length=200)
    device: str | None = Field(default=None, max_length=200)


_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")


def _zone(name: str) -> tzinfo:
    """An IANA zone (Europe/London) or a fixed offset (+01:00, UTC+0100)."""
    n = name.strip()
    if n.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET.match(n)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        if minutes > 14 * 60:
            raise UsageError(f"time zone offset {n!r} is out of range")
        return timezone(timedelta(minutes=minutes if m.group(1) == "+" else -minutes))
    try:
        return ZoneInfo(n)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"time zone {n!r} is not known; give an IANA name like Europe/London or an offset "
                         "like +01:00") from None


def seizure_facts(seized_at: str | None, zone: str | None, location: str | None,
                  device: str | None) -> dict[str, Any]:
    """Seizure parameters with the time stored as UTC and the local time, zone and offset it was given in.

    A local time that does not exist in the zone (the hour skipped when clocks go forward) is refused; one that
    happens twice (clocks go back) takes the first and says so.
    """
    params = seizure_parameters(None, location, device)
    if not seized_at:
        return params
    raw = seized_at.strip()
    try:
        given = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"seized-at {raw!r} is not a date-time") from None
    if given.tzinfo is not None:
        local, zname = given, zone.strip() if zone else "offset given with the time"
    elif zone:
        tz = _zone(zone)
        local, zname = given.replace(tzinfo=tz), zone.strip()
        if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != given:
            raise UsageError(f"{raw} does not exist in {zname} (the clocks went forward); check the time")
        if given.replace(tzinfo=tz, fold=1).utcoffset() != local.utcoffset():
            params["seized_at_note"] = f"{raw} happened twice in {zname} (clocks went back); the first was taken"
    else:
        local, zname = given.replace(tzinfo=UTC), "UTC (no time zone was given)"
    off = local.utcoffset() or timedelta(0)
    sign, mins = ("-" if off < timedelta(0) else "+"), abs(int(off.total_seconds())) // 60
    params.update({"seized_at": local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "seized_at_local": given.replace(tzinfo=None).isoformat(timespec="seconds"),
                   "seized_at_zone": zname, "seized_at_offset": f"{sign}{mins // 60:02d}:{mins % 60:02d}"})
    return params


def _root(svc: Services) -> FsPath:
    d = svc.ev.settings.home / "uploads" / "portal"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _fs_name(name: str) -> str:
    """The original name as a single safe file name (store_original records it from the path)."""
    n = safe_display_name(name).replace("\x00", "")
    if n in (".", "..") or not n:
        n = "unnamed"
    while len(n.encode()) > 200:
        n = n[:-1]
    return n


def _expire(root: FsPath) -> None:
    """Abandoned sessions hold only copies of what a browser sent; drop them after SESSION_DAYS."""
    cutoff = time.time() - SESSION_DAYS * 86400
    for d in root.glob("up-*"):
        with contextlib.suppress(OSError):
            if d.stat().st_mtime < cutoff and all(p.stat().st_mtime < cutoff for p in d.rglob("*")):
                shutil.rmtree(d, ignore_errors=True)


def _lock(sid: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(sid, threading.Lock())


def _load(svc: Services, sid: str, user: User, exhibit_id: str) -> tuple[dict[str, Any], FsPath]:
    d = _root(svc) / sid
    try:
        meta = json.loads((d / "session.json").read_text())
    except (OSError, ValueError):
        raise NotFoundError(f"upload session {sid} does not exist (finished or expired)") from None
    if meta["user"] != user.name or meta["exhibit_id"] != exhibit_id:
        raise AccessDenied("this upload session belongs to another user or exhibit")
    return meta, d / "data" / meta["fs_name"]


def _state(meta: dict[str, Any], data: FsPath) -> dict[str, Any]:
    received = data.stat().st_size if data.exists() else 0
    return {"id": meta["id"], "name": meta["name"], "size": meta["size"], "received": received,
            "chunk_size": meta["chunk_size"]}


@router.get("/cases/{case_id}/upload")
def upload_page(request: Request, case_id: CaseId) -> Response:
    """The field team's upload form: `evidence.upload` on the case, as the API's upload endpoint."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "evidence.upload")
    return render(request, "upload.html", case=c, exhibits=svc.ev.catalog.list_exhibits(c),
                  perms=perms_for(svc, user, c), chunk=chunk_bytes())


@router.post("/cases/{case_id}/upload/exhibit")
def ensure_exhibit(request: Request, case_id: CaseId, body: ExhibitIn) -> dict[str, Any]:
    """Find or register the exhibit the files belong to (same permission as the API's exhibit creation)."""
    svc, user, sess = current(request)
    check_csrf(request, sess, None)
    c = case_for(request, svc, user, case_id, "exhibit.create")
    _c, e = svc.ev.ensure_exhibit(c.ref, body.ref, body.officer, actor(user), body.description, create_case=False)
    note(request, exhibit_id=e.id)
    return {"exhibit_id": e.id, "exhibit": e.ref, "url": f"/cases/{c.id}/exhibits/{e.id}"}


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/upload-sessions", status_code=201)
def start_session(request: Request, case_id: CaseId, exhibit_id: ExhibitId, body: SessionIn) -> dict[str, Any]:
    """Open a spool for one file; seizure facts are validated now so a long upload cannot fail at the end."""
    svc, user, sess = current(request)
    check_csrf(request, sess, None)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.upload")
    params = seizure_facts(body.seized_at, body.seized_at_zone, body.location, body.device)  # validated now
    _expire(_root(svc))
    sid = f"up-{secrets.token_hex(16)}"
    d = _root(svc) / sid
    (d / "data").mkdir(parents=True, mode=0o700)
    meta = {"id": sid, "user": user.name, "case_id": c.id, "exhibit_id": e.id, "name": body.name,
            "fs_name": _fs_name(body.name), "size": body.size, "content_type": body.content_type,
            "parameters": params, "chunk_size": chunk_bytes()}
    (d / "session.json").write_text(json.dumps(meta))
    (d / "data" / meta["fs_name"]).touch()
    note(request, upload_session=sid, name=body.name[:200], size=body.size)
    return _state(meta, d / "data" / meta["fs_name"])


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/upload-sessions/{sid}")
def session_state(request: Request, case_id: CaseId, exhibit_id: ExhibitId,
                  sid: Annotated[str, Path(pattern=SESSION_ID)]) -> dict[str, Any]:
    """How many bytes the server holds: where a resumed upload continues."""
    svc, user, _ = current(request)
    exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.upload")
    meta, data = _load(svc, sid, user, exhibit_id)
    return _state(meta, data)


@router.put("/cases/{case_id}/exhibits/{exhibit_id}/upload-sessions/{sid}/chunk")
async def put_chunk(request: Request, case_id: CaseId, exhibit_id: ExhibitId,
                    sid: Annotated[str, Path(pattern=SESSION_ID)],
                    offset: Annotated[int, Query(ge=0, le=MAX_FILE)],
                    x_chunk_sha256: Annotated[str | None, Header(pattern=r"^[0-9a-f]{64}$")] = None) -> Response:
    """Append one chunk at exactly the confirmed offset; a stale or duplicate chunk gets 409 and the offset."""
    from starlette.concurrency import run_in_threadpool

    svc, user, sess = await run_in_threadpool(current, request)
    check_csrf(request, sess, None)
    await run_in_threadpool(exhibit_for, request, svc, user, case_id, exhibit_id, "evidence.upload")
    meta, data = await run_in_threadpool(_load, svc, sid, user, exhibit_id)
    declared = int(request.headers.get("content-length") or 0)
    if declared > min(MAX_CHUNK, meta["chunk_size"] * 2):
        raise UsageError("chunk too large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_CHUNK:
            raise UsageError("chunk too large")
    if x_chunk_sha256 and hashlib.sha256(body).hexdigest() != x_chunk_sha256:
        note(request, reason="chunk SHA-256 mismatch")
        return JSONResponse({"detail": "chunk SHA-256 mismatch; nothing appended, resend it",
                             **_state(meta, data)}, status_code=422)

    def append() -> dict[str, Any]:
        with _lock(sid):
            have = data.stat().st_size
            if offset != have:
                raise ChainConflict(f"offset {offset} but the server holds {have} bytes")
            if have + len(body) > meta["size"]:
                raise UsageError("more bytes than the declared file size")
            with open(data, "ab") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            return _state(meta, data)

    try:
        state = await run_in_threadpool(append)
    except ChainConflict as exc:
        note(request, reason=str(exc))
        return JSONResponse({"detail": str(exc), **_state(meta, data)}, status_code=409)
    return JSONResponse(state)


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/upload-sessions/{sid}/complete")
def complete(request: Request, case_id: CaseId, exhibit_id: ExhibitId,
             sid: Annotated[str, Path(pattern=SESSION_ID)]) -> dict[str, Any]:
    """Every byte is in: store it as an original through the CLI's upload path and record `ingested`."""
    svc, user, sess = current(request)
    check_csrf(request, sess, None)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.upload")
    meta, data = _load(svc, sid, user, exhibit_id)
    with _lock(sid):
        if not data.exists() or data.stat().st_size != meta["size"]:
            raise UsageError(f"upload incomplete: {data.stat().st_size if data.exists() else 0} of "
                             f"{meta['size']} bytes received")
        params = {**meta["parameters"], "via": "portal", "upload_session": sid,
                  "request_id": getattr(request.state, "request_id", None)}
        r = store_original(svc.ev, c, e, data, offer(data.name, "field-upload", params), actor=actor(user))
        shutil.rmtree(data.parent.parent, ignore_errors=True)
    with _locks_guard:
        _locks.pop(sid, None)
    out = r.as_dict()
    note(request, object=out["key"], sha256=out["sha256"])
    return {**out, "object_id": object_id(r.bucket, r.key)}

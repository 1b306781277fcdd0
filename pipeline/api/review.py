"""Review on the clock: timelines, activity, stills at an instant, clips, preparation and contact sheets.

Reads take `evidence.read` (as the exhibit's contents do); anything that makes a derived object takes
`frames.request`. Each accepts a bearer token or the portal session (state-changing portal calls must
carry the session's CSRF token in `X-CSRF-Token`). What they make is recorded by the review procedures.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from pipeline.api.deps import CASE_ID, EXHIBIT_ID, OBJECT_ID, actor, case_for, exhibit_for, note, services
from pipeline.api.media import CallerDep
from pipeline.errors import NotFoundError
from pipeline.review.objects import checked_chain, find_object
from pipeline.review.timeline import build_timeline
from pipeline.review.timesource import epoch_us, parse_instant
from pipeline.review.viewing import note_view

router = APIRouter(prefix="/api")
CaseId = Annotated[str, Path(pattern=CASE_ID)]
ExhibitId = Annotated[str, Path(pattern=EXHIBIT_ID)]
BASE = "/cases/{case_id}/exhibits/{exhibit_id}"


class StillIn(BaseModel):
    """Name the instant one way: a clock time, a review copy's media time, or an offset into an original."""

    clock: str | None = Field(default=None, max_length=40)
    copy_id: str | None = Field(default=None, pattern=OBJECT_ID)
    media_time: float | None = Field(default=None, ge=0, le=10 * 86400)
    source_id: str | None = Field(default=None, pattern=OBJECT_ID)
    offset: float | None = Field(default=None, ge=0, le=10 * 86400)


class ClipIn(BaseModel):
    start: str = Field(max_length=40)
    end: str = Field(max_length=40)
    mode: str = Field(default="stream_copy", pattern=r"^(stream_copy|frame_exact)$")
    note: str = Field(default="", max_length=500)


class ViewSessionIn(BaseModel):
    """What a player saw, sent once when the page is left (navigator.sendBeacon cannot set headers)."""

    csrf: str | None = Field(default=None, max_length=100)
    watched_us: list[tuple[int, int]] = Field(default_factory=list, max_length=500)
    frames_stepped: int = Field(default=0, ge=0, le=1_000_000)
    stills_taken: int = Field(default=0, ge=0, le=100_000)


class SheetIn(BaseModel):
    objects: list[Annotated[str, Field(pattern=OBJECT_ID)]] | None = Field(default=None, max_length=5000)


def _csrf(request: Request, supplied: str | None = None) -> None:
    sess = getattr(request.state, "portal_session", None)
    if sess is not None:
        from pipeline.web.session import check_csrf

        check_csrf(request, sess, supplied)


def _timeline(request: Request, user: Any, case_id: str, exhibit_id: str, permission: str) -> tuple[Any, ...]:
    svc = services(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, permission)
    chain = checked_chain(svc.ev, e.id)
    return svc, c, e, chain, build_timeline({**e.__dict__}, chain.events)


@router.get(BASE + "/timeline", summary="The exhibit on one clock-time axis (coverage, files, gaps, stills)")
def exhibit_timeline(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId) -> dict[str, Any]:
    svc, c, e, chain, tl = _timeline(request, user, case_id, exhibit_id, "evidence.read")
    note_view(svc.ev, c, e, actor(user), what="timeline", via=getattr(request.state, "caller_via", "api"),
              request_id=getattr(request.state, "request_id", None), events=chain.events)
    return {**tl, "chain": {"ok": chain.ok, "length": len(chain.events),
                            "findings": [str(f) for f in chain.findings]}}


@router.get("/cases/{case_id}/timeline", summary="Every exhibit of a case on one axis, side by side")
def case_timeline(request: Request, user: CallerDep, case_id: CaseId,
                  stills: Annotated[bool, Query(description="include each exhibit's stills")] = False
                  ) -> dict[str, Any]:
    svc = services(request)
    c = case_for(request, svc, user, case_id, "evidence.read")
    lanes = []
    for e in svc.ev.catalog.list_exhibits(c):
        tl = build_timeline({**e.__dict__}, checked_chain(svc.ev, e.id).events)
        if not stills:
            tl["stills"] = []
        lanes.append(tl)
    starts = [t["start_us"] for t in lanes if t["start_us"] is not None]
    ends = [t["end_us"] for t in lanes if t["end_us"] is not None]
    return {"case_id": c.id, "case": c.ref, "start_us": min(starts, default=None), "end_us": max(ends, default=None),
            "exhibits": lanes}


def activity_series(svc: Any, events: list[dict[str, Any]], tl: dict[str, Any]) -> list[dict[str, Any]]:
    """Each file's activity bins and spans, placed on the clock (microseconds since 1970)."""
    out = []
    for f in tl["files"]:
        act = f.get("activity")
        if not act or f["start_us"] is None:
            continue
        obj = find_object(svc.ev, events, act["object_id"])
        if obj is None:
            continue
        doc = json.loads(svc.ev.store.get_bytes(obj.bucket, obj.key, obj.version_id))
        s0 = f["start_us"]
        out.append({"object_id": f["object_id"], "name": f["name"], "start_us": s0, "end_us": f.get("end_us"),
                    "bin_seconds": doc.get("bin_seconds", 1.0), "bins": doc.get("bins", []),
                    "threshold": doc.get("threshold"),
                    "spans_us": [[s0 + round(a * 1e6), s0 + round(b * 1e6), p] for a, b, p in doc.get("spans", [])]})
    return out


@router.get(BASE + "/activity", summary="Activity scores per second and spans above the threshold, on the clock")
def activity(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId) -> dict[str, Any]:
    svc, _c, _e, chain, tl = _timeline(request, user, case_id, exhibit_id, "evidence.read")
    return {"files": activity_series(svc, chain.events, tl)}


@router.get(BASE + "/activity/next", summary="The next activity span starting after a clock time")
def next_activity(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId,
                  after: Annotated[str, Query(max_length=40, description="ISO 8601 clock time")]) -> dict[str, Any]:
    svc, _c, _e, chain, tl = _timeline(request, user, case_id, exhibit_id, "evidence.read")
    at = parse_instant(after)
    if at is None:
        from pipeline.errors import UsageError

        raise UsageError("after must be an ISO 8601 clock time")
    t = epoch_us(at) or 0
    spans = sorted(s for f in activity_series(svc, chain.events, tl) for s in f["spans_us"] if s[0] > t)
    if not spans:
        raise NotFoundError("no activity after that time")
    return {"start_us": spans[0][0], "end_us": spans[0][1], "peak": spans[0][2]}


@router.post(BASE + "/view-sessions", status_code=204, summary="A viewing session's summary, for the audit trail")
def view_session(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId,
                 body: ViewSessionIn) -> Response:
    """Written to the access audit trail only (the custody chain has the day's `reviewed` event)."""
    _csrf(request, body.csrf)
    svc = services(request)
    exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.read")
    spans = [(a, b) for a, b in body.watched_us if 0 < a <= b]
    note(request, view_session={"watched": [[iso_us(a), iso_us(b)] for a, b in spans[:100]],
                                # integers: audit entries, like events, hold no floats
                                "watched_ms": sum(b - a for a, b in spans) // 1000,
                                "frames_stepped": body.frames_stepped, "stills_taken": body.stills_taken})
    return Response(status_code=204)


def iso_us(us: int) -> str:
    from datetime import UTC, datetime, timedelta

    from pipeline.review.timesource import iso_utc

    return iso_utc(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)) or ""


@router.get(BASE + "/frames/at", summary="The frame of a review copy on screen at a media time (exact time, clock)")
def frame_at(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId,
             copy_id: Annotated[str, Query(pattern=OBJECT_ID)],
             media_time: Annotated[float, Query(ge=0, le=10 * 86400)]) -> dict[str, Any]:
    """For a player paused after a seek, which learns only the time it asked for: the frame's own time, so the
    clock it shows is that frame's (recordings are not on a regular frame grid)."""
    from pipeline.review.stills import frame_at as locate_frame

    svc = services(request)
    _c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.read")
    return locate_frame(svc.ev, e, copy_id, media_time)


@router.post(BASE + "/stills", status_code=201, summary="Extract and record the still at an instant")
def still(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId, body: StillIn) -> dict[str, Any]:
    from pipeline.review.stills import still_at

    _csrf(request)
    svc = services(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "frames.request")
    out = still_at(svc.ev, c, e, actor=actor(user), **body.model_dump())
    note(request, object=out["object_id"], still_of=out["source_object_id"])
    return out


@router.post(BASE + "/clips", status_code=201, summary="Export a clock-time range as a derived clip")
def clip(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId, body: ClipIn) -> dict[str, Any]:
    from pipeline.review.clips import make_clip
    from pipeline.review.objects import object_id

    _csrf(request)
    svc = services(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "frames.request")
    event = make_clip(svc.ev, c, e, body.start, body.end, body.mode, actor=actor(user), note=body.note)
    ref = next(o for o in event["objects"] if o.get("kind") == "clip")
    return {"object_id": object_id(ref["bucket"], ref["key"]), "event_seq": event["seq"], **ref["info"]}


@router.post(BASE + "/review/prepare", summary="Make the missing review copies and activity indexes")
def prepare(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId) -> dict[str, Any]:
    from pipeline.review.prepare import prepare_exhibit

    _csrf(request)
    svc = services(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "frames.request")
    done = prepare_exhibit(svc.ev, c, e, actor=actor(user))
    return {"prepared": [p.as_dict() for p in done]}


@router.post(BASE + "/contact-sheets", status_code=201, summary="Contact sheets of the exhibit's stills in clock time")
def contact_sheets(request: Request, user: CallerDep, case_id: CaseId, exhibit_id: ExhibitId,
                   body: SheetIn) -> dict[str, Any]:
    from pipeline.review.objects import object_id
    from pipeline.review.sheets import make_sheets

    _csrf(request)
    svc = services(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "frames.request")
    event = make_sheets(svc.ev, c, e, actor=actor(user), only=set(body.objects) if body.objects else None)
    return {"event_seq": event["seq"], "sheets": [object_id(o["bucket"], o["key"]) for o in event["objects"]]}

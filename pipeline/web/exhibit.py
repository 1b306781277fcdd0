"""The exhibit page: one clock-time timeline, the player, stills in clock order, files, metadata, custody.

Everything shown comes from the exhibit's checked custody chain (read through the review cache, so a page
with hundreds of stills costs one listing, not hundreds of reads) and every image or video is fetched by
the browser from the API's content endpoint (`/api/.../content`), authorised and audited per request.
Opening the page makes the day's `reviewed` custody event, once per user (see `pipeline.review.viewing`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Query, Request
from fastapi.responses import Response

from pipeline.api.deps import actor, exhibit_for
from pipeline.intake.clock import with_corrected_times
from pipeline.review.facts import seizures, sources
from pipeline.review.objects import checked_chain
from pipeline.review.timeline import build_timeline
from pipeline.review.viewing import note_view
from pipeline.web.perms import can, perms_for
from pipeline.web.routes import CaseId, ExhibitId, router
from pipeline.web.session import current, render, templates

STILLS_PER_PAGE = 60
EVENTS_SHOWN = 200


def utc_ms(us: Any) -> str:
    """Microseconds since 1970 as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), the form every page shows clock times in."""
    if us in (None, ""):
        return ""
    from datetime import UTC, timedelta

    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


templates.env.filters["utc_ms"] = utc_ms


def _hms(value: Any) -> str:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return dt.strftime("%H:%M:%S")


def _gap(event: dict[str, Any]) -> dict[str, Any] | None:
    """Camera recording gaps, whatever the recorder named the fields, as one plain sentence."""
    if "gap" not in str(event.get("action", "")):
        return None
    facts = {**(event.get("parameters") or {}), **(event.get("details") or {})}
    gap = facts.get("gap") if isinstance(facts.get("gap"), dict) else facts
    start = gap.get("start") or gap.get("gap_start") or gap.get("from")
    end = gap.get("end") or gap.get("gap_end") or gap.get("to")
    reason = gap.get("reason") or ("camera did not come back" if gap.get("open_ended") else "")
    seconds = None
    try:
        seconds = (datetime.fromisoformat(str(end).replace("Z", "+00:00"))
                   - datetime.fromisoformat(str(start).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        pass
    extra = [x for x in (f"{seconds:.0f} s" if seconds is not None else "", gap.get("camera") or "", reason) if x]
    text = f"Recording gap {_hms(start)}–{_hms(end)}" + (f" ({', '.join(extra)})" if extra else "")
    return {"text": text, "start": start, "end": end}


def _summary(event: dict[str, Any]) -> str:
    objs = event.get("objects") or []
    names = [o.get("original_name") or o.get("kind") or o.get("role") for o in objs if o.get("role") != "reference"]
    out = []
    if names:
        out.append(", ".join(str(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else ""))
    params = event.get("parameters") or {}
    for k in ("what", "first_view", "recipient", "reason", "offset_ms", "location", "device", "mode"):
        if params.get(k) not in (None, "") and not isinstance(params.get(k), dict | list):
            out.append(f"{k.replace('_', ' ')}: {params[k]}")
    return "; ".join(out)


def custody_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"seq": e["seq"], "time": e["time"], "action": e["action"].replace("_", " "),
             "actor": e.get("actor") or {}, "gap": _gap(e), "summary": _summary(e)} for e in events]


def metadata_items(events: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Metadata as recorded in each `metadata_extracted` event (no extra reads), camera times corrected."""
    from pipeline.review.timesource import clock_offsets

    offsets = clock_offsets(events)
    offset = offsets[-1][1] if offsets else None
    out = []
    for e in events:
        if e.get("action") != "metadata_extracted":
            continue
        d = e.get("details") or {}
        src = ((e.get("objects") or [{}])[0].get("source") or {})
        out.append({"name": names.get(src.get("key", ""), src.get("key", "")), "status": d.get("status"),
                    "metadata": with_corrected_times(d.get("metadata") or {}, offset)})
    return out


def player_items(tl: dict[str, Any]) -> list[dict[str, Any]]:
    """What the player walks: each timed file's review copy in clock order (untimed ones playable apart)."""
    out = []
    for f in tl["files"] + tl["untimed"]:
        rc = f.get("review_copy")
        if not rc or f["kind"] != "video":
            continue
        out.append({"copy_id": rc["object_id"], "source_id": f["object_id"], "name": f["name"],
                    "start_us": f["start_us"], "end_us": f["end_us"], "timed": f["start_us"] is not None,
                    "first_frame_time": float(rc.get("first_frame_time") or 0),
                    "frame_duration": float(rc.get("frame_duration") or 0.04), "mode": rc.get("mode"),
                    "partial": f["partial"]})
    return out


@router.get("/cases/{case_id}/exhibits/{exhibit_id}")
def exhibit_page(request: Request, case_id: CaseId, exhibit_id: ExhibitId,
                 page: int = Query(default=1, ge=1, le=100_000)) -> Response:
    """Exhibit header for anyone on the case; review, contents and custody each by their API permission."""
    svc, user, _ = current(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "case.read")
    perms = {**perms_for(svc, user, c), "frames_request": can(svc, user, "frames.request", c.id)}
    ctx: dict[str, Any] = {"case": c, "exhibit": e, "perms": perms, "tl": None, "timeline": None, "chain": None,
                           "metadata": None, "player": [], "stills": [], "page": page, "pages": 1,
                           "seizures": [], "sources": [], "events_total": 0}
    if perms["evidence_read"] or perms["custody_read"]:
        chain = checked_chain(svc.ev, e.id)
        ctx["chain"] = {"ok": chain.ok, "length": len(chain.events), "findings": [str(f) for f in chain.findings]}
        ctx["events_total"] = len(chain.events)
        ctx["seizures"], ctx["sources"] = seizures(chain.events), sources(chain.events)
        if perms["custody_read"]:
            ctx["timeline"] = custody_rows(chain.events[-EVENTS_SHOWN:])
        if perms["evidence_read"]:
            tl = build_timeline({**e.__dict__}, chain.events)
            ctx["tl"], ctx["player"] = tl, player_items(tl)
            ctx["pages"] = max(1, -(-len(tl["stills"]) // STILLS_PER_PAGE))
            ctx["stills"] = tl["stills"][(page - 1) * STILLS_PER_PAGE:page * STILLS_PER_PAGE]
            names = {f["key"]: f["name"] for f in tl["files"] + tl["untimed"]}
            ctx["metadata"] = metadata_items(chain.events, names)[:50]
            note_view(svc.ev, c, e, actor(user), what="exhibit page", via="portal",
                      request_id=getattr(request.state, "request_id", None), events=chain.events)
    return render(request, "exhibit.html", **ctx)

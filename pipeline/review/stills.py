"""A still at the instant a reviewer picked: resolved to one exact frame of the original, extracted and recorded.

The instant arrives as a clock time, or as a review copy's media time (what the browser reports for the
frame on screen). Either way it is mapped onto the original and snapped to the nearest frame's own
presentation time (the frame list comes from the activity index, or a probe of the original), then the
frames core extracts exactly that frame (`extract_object` with one timestamp, a quarter frame into the
frame so float rounding cannot pick its neighbour) and records `frames_extracted` as for any extraction.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import NotFoundError, UsageError
from pipeline.evidence import Evidence, ExhibitObject
from pipeline.review.objects import checked_chain, find_object, object_id
from pipeline.review.timeline import build_timeline, locate, still_flags
from pipeline.review.timesource import epoch_us, iso_utc, parse_instant


def frame_list(ev: Evidence, events: list[dict[str, Any]], f: dict[str, Any], obj: ExhibitObject
               ) -> tuple[np.ndarray, Fraction]:
    """Every frame's pts and the time base: from the stored activity index if there is one, else a probe."""
    act = f.get("activity")
    if act:
        a = find_object(ev, events, act["object_id"])
        if a is not None:
            doc = json.loads(ev.store.get_bytes(a.bucket, a.key, a.version_id))
            if doc.get("frame_pts"):
                return np.asarray(doc["frame_pts"], np.int64), Fraction(doc["time_base"])
    from pipeline.frames.probe import probe

    with tempfile.TemporaryDirectory(prefix="custody-still-") as tmp:
        local = Path(tmp) / "source"
        ev.store.download_verified(obj.bucket, obj.key, obj.version_id, obj.sha256, local)
        info = probe(local)
        return info.frame_pts, info.time_base


def snap(frame_pts: np.ndarray, time_base: Fraction, offset: float) -> tuple[int, float, float]:
    """(frame index, that frame's exact offset, the offset to ask the extractor for) nearest to `offset` (pure)."""
    if len(frame_pts) == 0:
        raise UsageError("the file has no readable frames")
    offsets = _offsets(frame_pts, time_base)
    i = int(np.clip(np.searchsorted(offsets, offset), 0, len(offsets) - 1))
    if i > 0 and abs(offsets[i - 1] - offset) <= abs(offsets[i] - offset):
        i -= 1
    step = float(np.median(np.diff(offsets))) if len(offsets) > 1 else 0.04
    return i, float(offsets[i]), float(offsets[i]) + step / 4


def _offsets(frame_pts: np.ndarray, time_base: Fraction) -> np.ndarray:
    """Each frame's offset from the first, in seconds, as the extractor counts them."""
    if len(frame_pts) == 0:
        raise UsageError("the file has no readable frames")
    return (frame_pts - int(frame_pts[0])).astype(np.float64) * float(time_base)


def _frames_at(ev: Evidence, exhibit: Exhibit, **instant: Any
               ) -> tuple[Any, dict[str, Any], float, str, ExhibitObject, np.ndarray, Fraction]:
    """(chain, file, offset, how given, its original, its frame pts, time base) for an instant `resolve` names."""
    chain = checked_chain(ev, exhibit.id)
    f, off, given = resolve(build_timeline(exhibit.__dict__, chain.events), **instant)
    obj = find_object(ev, chain.events, f["object_id"])
    if obj is None:
        raise NotFoundError("the original of that footage is not in the exhibit's record")
    pts, tb = frame_list(ev, chain.events, f, obj)
    return chain, f, off, given, obj, pts, tb


def _wall_of(f: dict[str, Any], offset: float) -> datetime | None:
    start = parse_instant(f["start"]) if f.get("start") else None
    return start + timedelta(seconds=offset) if start is not None else None


def frame_on_screen(frame_pts: np.ndarray, time_base: Fraction, offset: float) -> tuple[int, float]:
    """(index, exact offset) of the frame a player shows at `offset`: the last one that starts at or before it
    (pure). A player paused after a seek reports only the time it was asked for, not the frame's own."""
    offsets = _offsets(frame_pts, time_base)
    i = int(np.clip(np.searchsorted(offsets, offset + 1e-6, side="right") - 1, 0, len(offsets) - 1))
    return i, float(offsets[i])


def frame_at(ev: Evidence, exhibit: Exhibit, copy_id: str, media_time: float) -> dict[str, Any]:
    """The frame of a review copy on screen at `media_time`: its exact media time and clock time."""
    _chain, f, off, _given, _obj, pts, tb = _frames_at(ev, exhibit, copy_id=copy_id, media_time=media_time)
    index, exact = frame_on_screen(pts, tb, off)
    first = float((f.get("review_copy") or {}).get("first_frame_time") or 0.0)
    return {"frame_index": index, "media_time": round(first + exact, 6), "offset": exact,
            "wallclock_us": epoch_us(_wall_of(f, exact))}


def resolve(timeline: dict[str, Any], *, clock: datetime | None = None, copy_id: str | None = None,
            media_time: float | None = None, source_id: str | None = None, offset: float | None = None
            ) -> tuple[dict[str, Any], float, str]:
    """(file, offset into it, how the instant was given) from exactly one way of naming an instant (pure)."""
    if clock is not None:
        hit = locate(timeline, clock)
        if hit is None:
            raise NotFoundError("no footage was recorded at that clock time")
        return hit[0], hit[1], "clock time"
    for f in timeline["files"] + timeline["untimed"]:
        rc = f.get("review_copy") or {}
        if copy_id and rc.get("object_id") == copy_id and media_time is not None:
            return f, media_time - float(rc.get("first_frame_time") or 0.0), "review copy media time"
        if source_id and f["object_id"] == source_id and offset is not None:
            return f, offset, "offset into the original"
    raise NotFoundError("that file is not footage of this exhibit, or the instant was not given")


def still_at(ev: Evidence, case: Case, exhibit: Exhibit, *, actor: Actor, clock: str | None = None,
             copy_id: str | None = None, media_time: float | None = None, source_id: str | None = None,
             offset: float | None = None) -> dict[str, Any]:
    """Extract and record the still at the named instant; returns what the player shows beside it."""
    from pipeline.frames import ExtractParams
    from pipeline.frames.derive import extract_object

    at = parse_instant(clock) if clock else None
    if clock and at is None:
        raise UsageError(f"clock time {clock!r} is not an ISO 8601 date-time")
    _chain, f, off, given, obj, pts, tb = _frames_at(ev, exhibit, clock=at, copy_id=copy_id, media_time=media_time,
                                                     source_id=source_id, offset=offset)
    index, exact, target = snap(pts, tb, off)
    params = ExtractParams(timestamps=(target,), name_prefix=f"{exhibit.ref}_{Path(f['name']).stem}")
    event = extract_object(ev, case, exhibit, obj, params, actor=actor, workers=1)
    still = next((o for o in event.get("objects") or [] if o.get("kind") == "still"), None)
    if still is None:
        raise UsageError(f"no still could be extracted at {exact:.3f} s of {f['name']}: "
                         f"{(event.get('details') or {}).get('reason') or 'see the custody event'}")
    thumb = next((o for o in event["objects"] if o.get("kind") == "thumbnail"), None)
    info = still.get("info") or {}
    wall = parse_instant(info.get("wallclock"))
    if wall is None:
        wall = _wall_of(f, exact)

    return {"object_id": object_id(still["bucket"], still["key"]), "sha256": still["sha256"],
            "thumb_object_id": object_id(thumb["bucket"], thumb["key"]) if thumb else None,
            "pixel_sha256": info.get("pixel_sha256"), "pts": info.get("pts"), "offset": info.get("offset"),
            "frame_index": index, "frame_offset": exact, "wallclock": iso_utc(wall), "wallclock_us": epoch_us(wall),
            "source_object_id": f["object_id"], "source_name": f["name"], "instant_given_as": given,
            "requested_offset": off, "event_seq": event["seq"], "width": info.get("width"),
            "height": info.get("height"), **still_flags(info)}

"""What one camera ingest run did (its report), and where the previous run on the same exhibit ended."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .coverage import parse_time

if TYPE_CHECKING:
    from pipeline.custody.catalog import Exhibit
    from pipeline.evidence import Evidence

TAIL_EVENTS = 200  # how far back the previous run's end is looked for
AFTER_FIRST_HIT = 16  # events are appended roughly in time order: a few more after the first hit suffice


@dataclass
class IngestReport:
    camera: str
    case: str
    exhibit: str
    segments_recorded: int = 0
    segments_stored: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)  # gap events stored (outages and missed time)
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    close_to_event_s: list[float] = field(default_factory=list)
    run_id: str = ""
    ffmpeg_started: str | None = None  # first ffmpeg start (ISO UTC): the window-start latency's end point
    ended: str | None = None
    coverage: list[dict[str, Any]] = field(default_factory=list)  # coverage events stored
    missed_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["close_to_event_s"] = [round(x, 3) for x in self.close_to_event_s]
        d["missed_seconds"] = round(self.missed_seconds, 3)
        return d


def event_span(event: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The wall-clock span an event speaks for (segment, gap, coverage), else None."""
    p = event.get("parameters") or {}
    keys = ("wallclock_start", "wallclock_end") if event.get("action") == "segment_recorded" else ("start", "end")
    if event.get("action") not in ("segment_recorded", "gap", "coverage"):
        return None
    try:
        return parse_time(str(p[keys[0]])), parse_time(str(p[keys[1]]))
    except (KeyError, ValueError):
        return None


def previous_end(ev: Evidence, exhibit: Exhibit, before: datetime) -> datetime | None:
    """End of the latest footage, gap or coverage span on the exhibit that began before `before` (this run's
    own events begin after it), capped at `before`; None for an exhibit no run has recorded into yet."""
    from pipeline.custody.log import events_prefix

    bucket = ev.log.bucket
    keys = sorted(ev.store.list_keys(bucket, events_prefix(exhibit.id)))[-TAIL_EVENTS:]
    best: datetime | None = None
    left: int | None = None
    for key in reversed(keys):
        data = ev.store.try_get_bytes(bucket, key)
        span = event_span(json.loads(data)["event"]) if data else None
        if span and span[0] < before:
            best = span[1] if best is None else max(best, span[1])
            left = AFTER_FIRST_HIT if left is None else left
        if left is not None:
            left -= 1
            if left <= 0:
                break
    return min(best, before) if best is not None else None

"""Viewing is part of custody, but a page view is not a custody event.

Every request (page, image, video range) is written to the access audit trail as before. The custody
chain gets one `reviewed` event per user per exhibit per UTC day, on the first view of that day, naming
who, when, from where and what they opened first; later views that day are in the audit trail only,
which the event points to. Whether today's event exists is read from the chain itself (so it survives
restarts and other API processes), with an in-process memo and lock so a page with hundreds of thumbnails
checks once and two requests at the same moment record it once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.evidence import Evidence

ACTION = "reviewed"
_lock = threading.Lock()
_seen: set[tuple[str, str, str]] = set()


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def already_reviewed(events: list[dict[str, Any]], user: str, day: str) -> bool:
    """True when the chain holds a `reviewed` event by `user` on UTC `day` (pure)."""
    return any(e.get("action") == ACTION and (e.get("actor") or {}).get("name") == user
               and str(e.get("time", "")).startswith(day) for e in reversed(events))


def note_view(ev: Evidence, case: Case, exhibit: Exhibit, actor: Actor, *, what: str, via: str,
              request_id: str | None = None, events: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """Record today's `reviewed` event for this user and exhibit unless it exists; returns it when recorded."""
    day = _today()
    memo = (exhibit.id, actor.name, day)
    if memo in _seen:
        return None
    with _lock:
        if memo in _seen:
            return None
        if events is None:
            from pipeline.review.objects import checked_chain

            events = checked_chain(ev, exhibit.id).events
        if already_reviewed(events, actor.name, day):
            _seen.add(memo)
            return None
        event = ev.record(case, exhibit, ACTION, actor=actor,
                          parameters={"day": day, "via": via, "first_view": what, "request_id": request_id},
                          details={"note": "first view by this user today; every later request is in the access "
                                           "audit trail (audit/<day>/ in the custody bucket)"})
        _seen.add(memo)
        if len(_seen) > 100_000:
            _seen.clear()
            _seen.add(memo)
        return event

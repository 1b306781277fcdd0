"""Checking event times against each other and against trusted time-stamps; pure, no I/O.

An *anchor* says "the first `length` documents of this chain existed by `time`", on the word of a
time-stamp authority (an RFC 3161 token on a tree head whose tree includes the chain at that length). An
event's own `time` is only its signer's claim; the checks are:
- within a chain, time never goes backwards (the appender stamps max(now, previous), so any step back is
  a forgery such as an event dated 2019 appended after 2026 events);
- no event claims a time more than `tolerance` before the earliest anchor covering it (backdating: it was
  first proven to exist much later than it says);
- no event claims a time more than `tolerance` after an anchor covering it (it cannot postdate its proof);
- an event older than `tolerance` that no anchor covers is reported: it was never time-stamped.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.custody.chain import Finding


@dataclass(frozen=True)
class Anchor:
    length: int  # documents 0..length-1 of the chain are covered
    time: datetime  # the time-stamp's genTime (UTC)
    what: str  # which token and tree head, for messages


def parse_time(value: Any) -> datetime | None:
    """UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the only form events use), else None."""
    v = str(value)
    if len(v) != 27 or v[-1] != "Z" or v[10] != "T":
        return None
    try:
        return datetime.fromisoformat(v[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None


def earliest_cover(anchors: list[Anchor]) -> tuple[list[int], list[Anchor]]:
    """For bisecting: anchors sorted by length with each one's time the earliest of it and all longer ones."""
    ordered = sorted(anchors, key=lambda a: a.length)
    out: list[Anchor] = []
    for a in reversed(ordered):
        out.append(a if not out or a.time < out[-1].time else out[-1])
    out.reverse()
    return [a.length for a in ordered], out


def check_times(events: list[dict[str, Any]], anchors: list[Anchor], *, tolerance: timedelta,
                now: datetime | None = None, label: str = "event", timestamps_checked: bool = True) -> list[Finding]:
    """Findings for one chain's events (in seq order) against its anchors."""
    now = now or datetime.now(UTC)
    lengths, cover = earliest_cover(anchors)
    out: list[Finding] = []
    prev: datetime | None = None
    unanchored: list[int] = []
    for ev in events:
        seq = ev.get("seq")
        subj = f"{label} {seq}"
        t = parse_time(ev.get("time"))
        if t is None:
            out.append(Finding(subj, f"time {ev.get('time')!r} is not UTC YYYY-MM-DDTHH:MM:SS.ffffffZ"))
            continue
        if prev is not None and t < prev:
            out.append(Finding(subj, f"time goes backwards: claims {ev['time']}, after the previous event's "
                                     f"{prev:%Y-%m-%dT%H:%M:%S.%fZ} (backdated or inserted)"))
        prev = max(prev, t) if prev else t
        if not timestamps_checked or not isinstance(seq, int):
            continue
        i = bisect_right(lengths, seq)  # first anchor with length > seq
        if i == len(lengths):
            if t < now - tolerance:
                unanchored.append(seq)
            continue
        a = cover[i]
        if t < a.time - tolerance:
            out.append(Finding(subj, f"backdated: claims {ev['time']} but was first time-stamped at "
                                     f"{a.time:%Y-%m-%dT%H:%M:%SZ} ({a.what}), more than {_span(tolerance)} later"))
        elif t > a.time + tolerance:
            out.append(Finding(subj, f"claims {ev['time']}, after the time-stamp {a.time:%Y-%m-%dT%H:%M:%SZ} "
                                     f"({a.what}) that already proves it existed"))
    if unanchored:
        first, last = unanchored[0], unanchored[-1]
        what = f"{label} {first}" if first == last else f"{label}s {first}..{last}"
        out.append(Finding(what, f"not time-stamped: older than {_span(tolerance)} and no time-stamped tree head "
                                 "includes them (the transparency log never logged them, or the TSA was unreachable)"))
    return out


def _span(d: timedelta) -> str:
    s = int(d.total_seconds())
    return f"{s // 60} min" if s % 60 == 0 and s >= 60 else f"{s} s"

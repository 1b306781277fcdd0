"""What time a camera exhibit covers, as spans a reviewer can draw: pure functions, no I/O.

Every stretch of a camera-day is one of
    recorded        footage exists (segments)
    gap             the recorder ran but the camera sent nothing (outage, with the recorder's reason)
    missed          a recording window was scheduled but no recorder ran (worker down or started late)
    not_scheduled   no window asked for footage
and each becomes a `coverage` custody event `{start, end, state, reason}`. Windows are 5-field UTC crons with
a duration (inventory.RecordingWindow); their occurrences are computed here with cronsim, so a recorder that
starts inside one can catch up (record the rest) and say exactly what it missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cronsim import CronSim

STATES = ("recorded", "gap", "missed", "not_scheduled")
_EPS = timedelta(milliseconds=50)  # holes shorter than this are clock rounding, not missing footage
_MAX_OCCURRENCES = 100_000  # a "* * * * *" window over a long span: bounded, never an endless loop


class Window(Protocol):
    cron: str
    duration: float  # seconds


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime
    state: str
    reason: str

    def as_params(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end), "state": self.state, "reason": self.reason}

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def parse_time(value: str) -> datetime:
    """ISO 8601 as stored in events (`Z` or an offset); naive means UTC."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def hms(t: datetime) -> str:
    return f"{t.astimezone(UTC):%H:%M:%S}"


def window_label(camera: str, start: datetime, end: datetime) -> str:
    """`cam1 22:00–06:00` (UTC; seconds only when not on the minute)."""
    def short(t: datetime) -> str:
        t = t.astimezone(UTC)
        return f"{t:%H:%M}" if t.second == 0 and t.microsecond == 0 else f"{t:%H:%M:%S}"

    return f"{camera} {short(start)}–{short(end)}"


# ---- window occurrences -----------------------------------------------------------------------------------
def occurrences(window: Window, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Occurrences (begin, end) of `window` that overlap [start, end)."""
    length = timedelta(seconds=window.duration)
    out = []
    it = CronSim(window.cron, (start - length - timedelta(minutes=1)).astimezone(UTC))  # yields strictly after
    for _ in range(_MAX_OCCURRENCES):
        begin = next(it)
        if begin >= end:
            break
        if begin + length > start:
            out.append((begin, begin + length))
    return out


def current_occurrence(window: Window, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence under way at `now` (the latest to have begun, if they overlap), else None."""
    hits = [o for o in occurrences(window, now, now + timedelta(microseconds=1)) if o[0] <= now < o[1]]
    return max(hits) if hits else None


def next_occurrence(window: Window, after: datetime) -> tuple[datetime, datetime]:
    begin = next(CronSim(window.cron, after.astimezone(UTC)))
    return begin, begin + timedelta(seconds=window.duration)


def _merge(intervals: Iterable[tuple[datetime, datetime]], tolerance: timedelta = timedelta(0)) -> list[
        tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + tolerance:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


# ---- spans ------------------------------------------------------------------------------------------------
def _tile(pieces: list[Span]) -> list[Span]:
    """Contiguous pieces, cleaned: slivers shorter than _EPS (clock rounding) go to a neighbour, equal neighbours
    merge. The result still covers exactly the same time, with no hole and no overlap."""
    out: list[Span] = []
    for p in pieces:
        if p.end <= p.start:
            continue
        if out and (p.end - p.start <= _EPS or (out[-1].state, out[-1].reason) == (p.state, p.reason)):
            out[-1] = Span(out[-1].start, p.end, out[-1].state, out[-1].reason)
        else:
            out.append(p)
    if len(out) > 1 and out[0].end - out[0].start <= _EPS:
        out[1] = Span(out[0].start, out[1].end, out[1].state, out[1].reason)
        out.pop(0)
    return out


def uncovered(camera: str, start: datetime, end: datetime, windows: Sequence[Window], *,
              current: tuple[datetime, datetime] | None = None) -> list[Span]:
    """[start, end) had no recorder: `missed` where a window was scheduled, `not_scheduled` elsewhere.

    `current` is the window the recorder now starting belongs to; its missed part says when it began and when
    recording began (`end`), the catch-up case."""
    if end - start <= _EPS:
        return []
    scheduled = _merge(o for w in windows for o in occurrences(w, start, end))
    if current is not None:
        scheduled = _merge([*scheduled, current])
    pieces: list[Span] = []
    t = start
    for a, b in scheduled:
        a, b = max(a, start), min(b, end)
        if b <= t:
            continue
        if a > t:
            pieces.append(Span(t, a, "not_scheduled", "no recording window was scheduled"))
        if current is not None and a < current[1] and b > current[0]:
            reason = f"worker not running: window began {hms(current[0])}, recording began {hms(end)}"
        else:
            reason = f"scheduled window {window_label(camera, a, b)} not recorded: no recorder was running"
        pieces.append(Span(max(a, t), b, "missed", reason))
        t = b
    if end > t:
        pieces.append(Span(t, end, "not_scheduled", "no recording window was scheduled"))
    return _tile(pieces)


def recorded(start: datetime, end: datetime, segments: Iterable[tuple[datetime, datetime]],
             gaps: Iterable[tuple[datetime, datetime, str]]) -> list[Span]:
    """A recorder run [start, end) as `recorded` spans (contiguous segments merged) and `gap` spans between
    them, each gap with the recorder's own reason where it reported one."""
    segs = _merge(((a, b) for a, b in segments if b > a), _EPS)
    gap_list = list(gaps)
    if segs:
        end = max(end, segs[-1][1])
        start = min(start, segs[0][0])
    pieces: list[Span] = []
    t = start

    def hole(a: datetime, b: datetime) -> None:
        if b <= a:
            return
        reasons = [r for ga, gb, r in gap_list if ga < b and gb > a]
        default = "connecting to the camera: no footage yet" if not pieces else "no footage"
        pieces.append(Span(a, b, "gap", "; ".join(dict.fromkeys(reasons)) or default))

    for a, b in segs:
        hole(t, a)
        pieces.append(Span(max(a, t), b, "recorded", "segments stored"))
        t = b
    hole(t, end)
    return _tile(pieces)

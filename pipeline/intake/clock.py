"""Times people type and camera clocks that drift: parsing, and the recorded camera clock offset.

A camera's clock is evidence too: an officer compares it with a reference clock
and the offset is recorded as its own custody event; displayed times then show
the corrected value beside the recorded one, which is never changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import UsageError
from pipeline.text import clean_human_text


def parse_time(value: str, what: str) -> datetime:
    """ISO 8601 (or EXIF `YYYY:MM:DD HH:MM:SS`); naive times are taken as UTC."""
    v = value.strip()
    if len(v) >= 19 and v[4] == ":" and v[7] == ":":
        v = v[:4] + "-" + v[5:7] + "-" + v[8:]
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a date-time; use ISO 8601, e.g. 2026-03-01T14:05:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


CLOCK_ACTION = "clock_offset_recorded"
#: a camera clock reads between these (reset clocks start at 1970, 2000 or the firmware's year; none at year 1)
CAMERA_CLOCK_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
#: how far ahead of this machine's clock a reference reading may be (the reading was taken, so it is not later)
REFERENCE_AHEAD = timedelta(minutes=5)


def clock_parameters(camera_time: str, reference_time: str, note: str = "",
                     now: datetime | None = None) -> dict[str, Any]:
    """The custody-event parameters of a clock check: both readings and the offset in ms (camera - reference).

    A reference reading later than now (a mistyped year) or before 1970, or a camera reading outside
    CAMERA_CLOCK_RANGE, is refused: the offset would move every displayed time of the exhibit by it."""
    cam = parse_time(camera_time, "camera time")
    ref = parse_time(reference_time, "reference time")
    now = now or datetime.now(UTC)
    lo, hi = CAMERA_CLOCK_RANGE
    if not lo <= cam < hi:
        raise UsageError(f"camera time {camera_time!r} is outside {lo:%Y}-{hi:%Y}: check the reading")
    if ref > now + REFERENCE_AHEAD or ref < lo:
        raise UsageError(f"reference time {reference_time!r} is "
                         + ("in the future" if ref > now else "before 1970")
                         + f" (now {now:%Y-%m-%dT%H:%M:%SZ}): give the reference clock as it read when compared")
    offset_ms = int(round((cam - ref).total_seconds() * 1000))
    return {"camera_time": cam.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "reference_time": ref.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"), "offset_ms": offset_ms, "note": clean_human_text(note, "note", 500)}


def clock_offset_ms(events: list[dict[str, Any]]) -> int | None:
    """The latest recorded camera clock offset of an exhibit, if any."""
    for ev in reversed(events):
        if ev.get("action") == CLOCK_ACTION:
            try:
                return int(ev["parameters"]["offset_ms"])
            except (KeyError, TypeError, ValueError):
                continue
    return None


def corrected_time(camera_value: str | None, offset_ms: int | None) -> str | None:
    """A camera timestamp moved onto the reference clock (naive camera times are taken as UTC)."""
    if not camera_value or offset_ms is None:
        return None
    try:
        t = parse_time(camera_value, "time")
        return (t - timedelta(milliseconds=offset_ms)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except Exception:  # noqa: BLE001 - unparseable, or moved off the calendar: shown as is, uncorrected
        return None


def with_corrected_times(metadata: dict[str, Any], offset_ms: int | None) -> dict[str, Any]:
    """Add `<field>_corrected` beside each camera time; the recorded values stay untouched."""
    out = dict(metadata)
    for k in ("creation_time", "capture_time"):
        c = corrected_time(metadata.get(k), offset_ms)
        if c:
            out[f"{k}_corrected"] = c
    if offset_ms is not None:
        out["clock_offset_ms"] = offset_ms
    return out

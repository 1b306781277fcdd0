"""When a file was recorded, and how we know: one place that reads times out of custody events.

Pure functions over recorded events. Each time keeps the exact string the custody event holds
(`*_recorded`), so a report can quote the record verbatim, beside the parsed instant used for drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.custody.events import iso
from pipeline.intake.clock import CLOCK_ACTION

SEGMENT_ACTION = "segment_recorded"
METADATA_ACTION = "metadata_extracted"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant from a record (naive values are UTC, as everywhere in custody); None if unusable."""
    if value in (None, ""):
        return None
    v = str(value).strip()
    if len(v) >= 19 and v[4] == ":" and v[7] == ":":  # EXIF style YYYY:MM:DD HH:MM:SS
        v = v[:4] + "-" + v[5:7] + "-" + v[8:]
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def to_float(value: Any) -> float | None:
    """Numbers in events are decimal strings (canonical JSON has no floats)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def iso_utc(t: datetime | None) -> str | None:
    """Data form: UTC to the microsecond, the custody events' own format (2026-11-28T21:40:03.120000Z)."""
    return iso(t) if t is not None else None


def epoch_us(t: datetime | None) -> int | None:
    """Microseconds since 1970 (exact integer arithmetic for players that map media time to clock time)."""
    if t is None:
        return None
    return (t - EPOCH) // timedelta(microseconds=1)


@dataclass
class FileTime:
    """A file's place on the clock: start/end instants, their recorded strings, and the method."""

    start: datetime | None
    end: datetime | None
    start_recorded: str | None
    end_recorded: str | None
    method: str  # recorder_clock | creation_time | exif_capture_time | none
    how: str  # one sentence for people
    clock_offset_ms: int | None = None


def clock_offsets(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(event seq, offset ms) of every recorded clock check, oldest first."""
    out = []
    for e in events:
        if e.get("action") == CLOCK_ACTION:
            try:
                out.append((int(e["seq"]), int((e.get("parameters") or {})["offset_ms"])))
            except (KeyError, TypeError, ValueError):
                continue
    return out


def segment_time(params: dict[str, Any]) -> FileTime:
    """Camera segments: the recorder's wall-clock bounds (its own, NTP-disciplined clock, UTC)."""
    s, e = params.get("wallclock_start"), params.get("wallclock_end")
    source = params.get("clock_source") or "recorder wall clock (UTC) at the segment's first and last data"
    how = f"recorded by the camera recorder: {source}"
    cam_off = to_float(params.get("camera_clock_offset"))
    if cam_off is not None:
        how += f"; camera clock measured {cam_off:+.3f} s from the recorder's"
    return FileTime(parse_instant(s), parse_instant(e), str(s) if s else None, str(e) if e else None,
                    "recorder_clock", how)


def metadata_time(md: dict[str, Any], offsets: list[tuple[int, int]]) -> FileTime:
    """Field uploads: the device's own time tag, moved onto the reference clock by the latest clock check."""
    offset = offsets[-1] if offsets else None
    duration = to_float(md.get("duration_seconds"))
    if md.get("creation_time"):
        raw, method = str(md["creation_time"]), "creation_time"
        what = "the file's creation_time tag (device clock), taken as the recording start"
    elif md.get("capture_time"):
        raw, method = str(md["capture_time"]), "exif_capture_time"
        what = "EXIF DateTimeOriginal (device clock; EXIF carries no time zone, read as UTC)"
    else:
        return FileTime(None, None, None, None, "none", "no recording time in the file's metadata")
    t = parse_instant(raw)
    if t is None:
        return FileTime(None, None, raw, None, "none", f"time tag {raw!r} could not be read as a date-time")
    if offset is not None:
        t = t - timedelta(milliseconds=offset[1])
        what += f", corrected by the clock offset recorded in event {offset[0]} ({offset[1] / 1000:+.3f} s)"
    else:
        what += "; no clock check recorded, device clock taken as is"
    end = t + timedelta(seconds=duration) if duration else t
    if duration:
        what += f"; end = start + duration {duration:.3f} s"
    return FileTime(t, end, raw, None, method, what, offset[1] if offset else None)

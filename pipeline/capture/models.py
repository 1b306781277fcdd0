"""Plain records the recorder hands to callbacks and the spool writes to its journal.

Kept free of behaviour so the Prefect flow, the spool and the custody record can share them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SegmentInfo:
    """One closed MPEG-TS segment, hashed at first contact.

    Wall-clock times are UTC, estimated from the connection's packet arrivals (see clock.py); `clock_source`
    says how, and `camera_clock_offset` is the camera's clock minus ours in seconds where the stream's RTCP
    sender reports were measured (None: not available). `stream_start`/`stream_end` are the exact stream
    times ffmpeg reported (None when unknown, e.g. a segment cut by a crash). `source` describes how the
    stream was read (camera source, transport, redacted URL). Journals written before a field existed load
    with its default.
    """

    path: Path
    camera: str
    index: int
    connection: int
    start: datetime
    end: datetime
    stream_start: float | None
    stream_end: float | None
    size: int
    sha256: str
    partial: bool
    ffmpeg_version: str
    command: tuple[str, ...]
    clock_source: str = "receiver clock (method not recorded)"
    camera_clock_offset: float | None = None
    source: tuple[tuple[str, str], ...] = ()

    @property
    def item_id(self) -> str:
        """Stable id for idempotent uploads: camera plus a file name that is never reused."""
        return f"{self.camera}/{self.path.name}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat()
        d["command"] = list(self.command)
        d["source"] = dict(self.source)
        d["item_id"] = self.item_id
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SegmentInfo:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["path"] = Path(d["path"])
        d["start"] = datetime.fromisoformat(d["start"])
        d["end"] = datetime.fromisoformat(d["end"])
        d["command"] = tuple(d["command"])
        if isinstance(d.get("source"), dict):
            d["source"] = tuple((str(k), str(v)) for k, v in d["source"].items())
        return cls(**d)


@dataclass(frozen=True)
class GapInfo:
    """A stretch with no footage. `start` = last data before the drop-out, `end` = first data after it.

    `open_ended` means the camera never came back before the recording ended (end = recording end).
    """

    camera: str
    start: datetime
    end: datetime
    reason: str
    open_ended: bool = False

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class DropoutInfo:
    """Emitted as soon as a drop-out is detected (the gap itself is only known once the stream is back)."""

    camera: str
    last_data: datetime | None
    detected: datetime
    reason: str


@dataclass
class RecordingSummary:
    camera: str
    url: str
    started: datetime
    ended: datetime
    segments: list[SegmentInfo] = field(default_factory=list)
    gaps: list[GapInfo] = field(default_factory=list)
    connections: int = 0
    ffmpeg_version: str = ""
    attempts: list[datetime] = field(default_factory=list)  # start of each connection attempt

    @property
    def recorded_seconds(self) -> float:
        return sum((s.end - s.start).total_seconds() for s in self.segments)

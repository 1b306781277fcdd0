"""Segment-level helpers: hashing in one pass and reading ffmpeg's CSV segment list incrementally."""

from __future__ import annotations

import csv
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hashing.stream import hash_file


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 and byte count in one bounded-memory read, by the project's hashing module."""
    d = hash_file(path)
    return d.sha256, d.size


@dataclass(frozen=True)
class ListEntry:
    name: str
    start: float
    end: float


class SegmentListReader:
    """Tails ffmpeg's `-segment_list_type csv` file; ffmpeg appends a line only once a segment is closed.

    Only complete lines are consumed, so a line being written while we read is picked up next time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read_new(self) -> list[ListEntry]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        out = []
        for row in csv.reader(io.StringIO(complete.decode())):
            if len(row) >= 3:
                out.append(ListEntry(row[0], float(row[1]), float(row[2])))
        return out


def probe_duration(path: Path, timeout: float = 15) -> float | None:
    """Duration of a (possibly truncated) segment per ffprobe; None if it cannot tell (e.g. empty file)."""
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                              "default=noprint_wrappers=1:nokey=1", str(path)],
                             capture_output=True, text=True, timeout=timeout)
        return float(out.stdout.strip()) if out.returncode == 0 else None
    except (ValueError, OSError, subprocess.TimeoutExpired):
        return None

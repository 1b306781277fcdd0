"""Camera status for operators: recording now or not, last segment stored, next window, recent gaps.

The ingest run that records a camera keeps `<spool>/<camera>/status.json` up to date (atomic rewrites); whether
a recorder is live right now is read from the kernel's lock table: a live recorder holds its camera's spool
lock (`Spool.camera_lock`, released by the kernel even on kill -9), so a crashed run never shows as recording.
Nothing here contacts the store: status works while S3 is down, which is when it matters.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.ops.processes import alive
from pipeline.settings import Settings

from .coverage import current_occurrence, iso, next_occurrence, parse_time, window_label
from .inventory import Inventory

STATUS_FILE = "status.json"
KEEP_GAPS = timedelta(hours=48)
MAX_GAPS = 500


def status_path(settings: Settings, camera: str) -> Path:
    return settings.spool_dir / camera / STATUS_FILE


def lock_path(settings: Settings, camera: str) -> Path:
    """Where the camera's recorder lock lives (ingest keeps one spool per camera: spool/<cam>/<cam>/)."""
    return settings.spool_dir / camera / camera / ".recording.lock"


class StatusFile:
    """One camera's status document; thread-safe within the recording process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(self.path)

    def update(self, **fields: Any) -> None:
        with self._lock:
            data = self.read()
            data.update(fields)
            self._write(data)

    def add_gap(self, start: datetime, end: datetime, reason: str, state: str = "gap") -> None:
        """Remember an outage or missed span (the last 48 h are kept) for `cameras status`."""
        with self._lock:
            data = self.read()
            cutoff = datetime.now(UTC) - KEEP_GAPS
            gaps = [g for g in data.get("gaps", []) if _time(g.get("end")) and _time(g["end"]) > cutoff]
            gaps.append({"start": iso(start), "end": iso(end), "seconds": round((end - start).total_seconds(), 3),
                         "state": state, "reason": reason})
            data["gaps"] = gaps[-MAX_GAPS:]
            self._write(data)


def _time(value: object) -> datetime | None:
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def lock_holder(path: Path) -> int | None:
    """Pid holding an flock on `path` per /proc/locks (read-only: never takes the lock, so it can't make a
    recorder starting at that instant fail). None if nobody holds it or the table can't be read."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == ident:
            try:
                return int(parts[4])
            except ValueError:
                return None
    return None


def _next_window(inventory: Inventory | None, camera: str, now: datetime) -> dict[str, Any] | None:
    cam = next((c for c in inventory.cameras if c.id == camera), None) if inventory else None
    if cam is None or not cam.windows:
        return None
    current = [o for w in cam.windows if (o := current_occurrence(w, now))]
    if current:
        start, end = min(current, key=lambda o: o[1])
        return {"start": iso(start), "end": iso(end), "label": window_label(camera, start, end), "under_way": True}
    start, end = min(next_occurrence(w, now) for w in cam.windows)
    return {"start": iso(start), "end": iso(end), "label": window_label(camera, start, end), "under_way": False}


def camera_status(settings: Settings, inventory: Inventory | None = None, now: datetime | None = None) -> list[
        dict[str, Any]]:
    """One row per camera in the inventory or with a status file in the spool."""
    now = now or datetime.now(UTC)
    names = [c.id for c in inventory.cameras] if inventory else []
    if settings.spool_dir.is_dir():
        names += sorted(p.parent.name for p in settings.spool_dir.glob(f"*/{STATUS_FILE}")
                        if p.parent.name not in names)
    cases = {c.id: c.case_ref for c in inventory.cameras} if inventory else {}
    rows = []
    for name in names:
        st = StatusFile(status_path(settings, name)).read()
        holder = lock_holder(lock_path(settings, name))
        if holder is None and st.get("recording") and isinstance(st.get("pid"), int) and not Path(
                "/proc/locks").exists():
            holder = st["pid"] if alive(st["pid"]) else None  # no lock table here: trust a live recorder pid
        # the lock is taken before the new run writes its facts: until then the file still holds the last run's
        own = holder is not None and st.get("pid") == holder
        recent = [g for g in st.get("gaps", []) if (end := _time(g.get("end"))) and end > now - timedelta(hours=24)]
        rows.append({
            "camera": name, "case": st.get("case") or cases.get(name), "exhibit": st.get("exhibit"),
            "recording": holder is not None, "pid": holder,
            "recording_since": st.get("ffmpeg_started") if own else None,
            "window": st.get("window") if own else None,
            "last_run_ended": st.get("ended"),
            "last_segment_end": st.get("last_segment_end"), "last_segment_stored_at": st.get("last_segment_stored_at"),
            "segments_stored_last_run": st.get("segments_stored"),
            "next_window": _next_window(inventory, name, now),
            "gaps_24h": len(recent), "gap_seconds_24h": round(sum(g.get("seconds", 0) for g in recent), 3),
            "gaps": recent,
        })
    return rows

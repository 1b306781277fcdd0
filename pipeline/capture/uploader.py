"""From the spool into custody: segments as locked originals, gap and coverage events through a disk queue.

Both survive the store being away and the process being killed: a segment's object key is derived from its
spool item id (adopted, never stored twice, after a crash between upload and journal), and events wait in a
JSON-lines file until the custody log takes them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.custody.actor import Actor
from pipeline.errors import IntegrityError

from .spool import SpoolIntegrityError, SpoolItem, UploadReceipt

if TYPE_CHECKING:
    from pipeline.custody.catalog import Case, Exhibit
    from pipeline.evidence import Evidence

EVENT_NOTES = {
    "gap": "no footage between start and end; bounds contain the outage",
    "coverage": "what this span of the camera-day holds: recorded, gap (outage), missed (scheduled, no recorder) "
                "or not_scheduled",
}


def segment_parameters(seg: Any, item_id: str) -> dict[str, Any]:
    """What a `segment_recorded` event says about its segment, including how its wall-clock time was obtained."""
    return {"camera": seg.camera, "item_id": item_id, "segment_index": seg.index, "connection": seg.connection,
            "wallclock_start": seg.start, "wallclock_end": seg.end, "stream_start": seg.stream_start,
            "stream_end": seg.stream_end, "bytes": seg.size, "partial": seg.partial,
            "clock_source": seg.clock_source, "camera_clock_offset": seg.camera_clock_offset,
            "source": dict(seg.source)}


class SegmentUploader:
    """Idempotent on the spool item id: a deterministic key per item, adopted if already there."""

    def __init__(self, ev: Evidence, case: Case, exhibit: Exhibit, actor: Actor,
                 on_stored: Callable[[Any, float], None] | None = None) -> None:
        self.ev, self.case, self.exhibit, self.actor = ev, case, exhibit, actor
        self.on_stored = on_stored

    def key_for(self, item_id: str) -> str:
        digest = hashlib.sha256(f"{self.exhibit.id}:{item_id}".encode()).hexdigest()[:40]
        return f"{self.exhibit.case_id}/{self.exhibit.id}/seg-{digest}"

    def _already_recorded(self, key: str) -> dict[str, Any] | None:
        """Recovery path only: is there an event for this key among the latest events?"""
        from pipeline.custody.log import events_prefix

        log_ = self.ev.log
        keys = sorted(self.ev.store.list_keys(log_.bucket, events_prefix(self.exhibit.id)))[-64:]
        for k in reversed(keys):
            data = self.ev.store.try_get_bytes(log_.bucket, k)
            if not data:
                continue
            ev = json.loads(data)["event"]
            for o in ev.get("objects", []):
                if o.get("key") == key:
                    return o
        return None

    def __call__(self, item: SpoolItem) -> UploadReceipt:
        from pipeline.intake.mediainfo import MediaReport
        from pipeline.intake.originals import Offer, record_original
        from pipeline.intake.upload import store_original

        seg = item.segment
        bucket = self.ev.store.buckets["originals"]
        key = self.key_for(item.item_id)
        media = MediaReport("partial" if seg.partial else "ok",
                            "segment cut short by a drop-out; kept as recorded" if seg.partial else
                            "segment recorded from the camera stream (stream copy, not re-encoded)",
                            "video", "mpeg-ts")
        offer = Offer(seg.path.name, action="segment_recorded", key=key, index=False,
                      metadata={"camera": seg.camera}, tools={"ffmpeg": seg.ffmpeg_version},
                      parameters=segment_parameters(seg, item.item_id), details={"command": list(seg.command)})
        existing = self.ev.store.stat(bucket, key)
        if existing is not None:  # uploaded before a crash: adopt it, never store twice
            recorded = self._already_recorded(key)
            if recorded:
                return UploadReceipt(item.item_id, recorded.get("version_id") or "", {"adopted": True})
            if existing.sha256 != seg.sha256 or existing.size != seg.size:
                raise SpoolIntegrityError(f"{bucket}/{key} exists with different content than spooled {item.item_id}")
            ref = {"bucket": bucket, "key": key, "version_id": existing.version_id, "sha256": seg.sha256,
                   "size": seg.size, "content_type": "video/mp2t"}
            result = record_original(self.ev, self.case, self.exhibit, ref, offer, media, self.actor)
        else:
            try:
                result = store_original(self.ev, self.case, self.exhibit, seg.path, offer, actor=self.actor,
                                        expected_sha256=seg.sha256, media=media, resumable=False)
            except IntegrityError as exc:
                raise SpoolIntegrityError(str(exc)) from None
        if self.on_stored is not None:
            self.on_stored(seg, (datetime.now(UTC) - seg.end).total_seconds())
        return UploadReceipt(item.item_id, result.version_id or "", {"event_seq": result.event_seq})


class PendingEvents:
    """Custody events (gap, coverage) wait on disk until the store takes them, like segments do."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def add(self, action: str, parameters: dict[str, Any]) -> None:
        with self._lock, open(self.path, "a") as f:
            f.write(json.dumps({"action": action, "parameters": parameters}) + "\n")

    def pending(self) -> int:
        try:
            return sum(1 for x in self.path.read_text().splitlines() if x.strip())
        except OSError:
            return 0

    def flush(self, ev: Evidence, case: Case, exhibit: Exhibit, actor: Actor,
              on_recorded: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        with self._lock:
            if not self.path.exists():
                return
            lines = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
            done = 0
            try:
                for rec in lines:
                    action = rec.get("action", "gap")  # a line without one is an older gap record
                    params = rec.get("parameters", rec)
                    ev.record(case, exhibit, action, actor=actor, parameters=params,
                              details={"note": EVENT_NOTES.get(action, "")})
                    done += 1
                    if on_recorded is not None:
                        on_recorded(action, params)
            finally:
                rest = lines[done:]
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in rest))
                tmp.replace(self.path)

"""Camera ingest as a custody procedure.

Record one camera into the local spool (ffmpeg, no re-encoding), and while it
records, drain closed segments into the store: each becomes a locked original
with a `segment_recorded` event; each outage becomes a `gap` event. The store
can vanish and come back, the process can be killed: the spool journal plus a
deterministic object key per segment make every segment land exactly once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.capture import GapInfo, SegmentInfo, Spool, SpoolIntegrityError, SpoolItem, UploadReceipt, record
from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.log import events_prefix
from pipeline.errors import CustodyError, IntegrityError
from pipeline.evidence import Evidence
from pipeline.intake.mediainfo import MediaReport
from pipeline.intake.originals import Offer, record_original
from pipeline.intake.upload import store_original
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def exhibit_ref_for(prefix: str, day: datetime) -> str:
    """One exhibit per camera per UTC day: `CAM1/20261129`."""
    return f"{prefix}/{day.astimezone(UTC):%Y%m%d}"


@dataclass
class IngestReport:
    camera: str
    case: str
    exhibit: str
    segments_recorded: int = 0
    segments_stored: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    close_to_event_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["close_to_event_s"] = [round(x, 3) for x in self.close_to_event_s]
        return d


class SegmentUploader:
    """Idempotent on the spool item id: a deterministic key per item, adopted if already there."""

    def __init__(self, ev: Evidence, case: Case, exhibit: Exhibit, actor: Actor, report: IngestReport) -> None:
        self.ev, self.case, self.exhibit, self.actor, self.report = ev, case, exhibit, actor, report

    def key_for(self, item_id: str) -> str:
        digest = hashlib.sha256(f"{self.exhibit.id}:{item_id}".encode()).hexdigest()[:40]
        return f"{self.exhibit.case_id}/{self.exhibit.id}/seg-{digest}"

    def _already_recorded(self, key: str) -> dict[str, Any] | None:
        """Recovery path only: is there an event for this key among the latest events?"""
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
        seg = item.segment
        bucket = self.ev.store.buckets["originals"]
        key = self.key_for(item.item_id)
        media = MediaReport("partial" if seg.partial else "ok",
                            "segment cut short by a drop-out; kept as recorded" if seg.partial else
                            "segment recorded from the camera stream (stream copy, not re-encoded)",
                            "video", "mpeg-ts")
        offer = Offer(seg.path.name, action="segment_recorded", key=key, index=False,
                      metadata={"camera": seg.camera}, tools={"ffmpeg": seg.ffmpeg_version},
                      parameters={"camera": seg.camera, "item_id": item.item_id, "segment_index": seg.index,
                                  "connection": seg.connection, "wallclock_start": seg.start,
                                  "wallclock_end": seg.end, "stream_start": seg.stream_start,
                                  "stream_end": seg.stream_end, "bytes": seg.size, "partial": seg.partial},
                      details={"command": list(seg.command)})
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
        self.report.segments_stored += 1
        self.report.close_to_event_s.append((datetime.now(UTC) - seg.end).total_seconds())
        return UploadReceipt(item.item_id, result.version_id or "", {"event_seq": result.event_seq})


class GapQueue:
    """Gap events wait on disk until the store takes them, like segments do."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def add(self, gap: GapInfo) -> None:
        rec = {"camera": gap.camera, "start": gap.start.isoformat(), "end": gap.end.isoformat(),
               "seconds": round(gap.seconds, 3), "reason": gap.reason, "open_ended": gap.open_ended}
        with self._lock, open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def flush(self, ev: Evidence, case: Case, exhibit: Exhibit, actor: Actor, report: IngestReport) -> None:
        with self._lock:
            if not self.path.exists():
                return
            lines = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
            done = 0
            try:
                for rec in lines:
                    ev.record(case, exhibit, "gap", actor=actor, parameters=rec,
                              details={"note": "no footage between start and end; bounds contain the outage"})
                    report.gaps.append(rec)
                    done += 1
            finally:
                rest = lines[done:]
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in rest))
                tmp.replace(self.path)


def ingest_camera(settings: Settings, *, camera: str, url: str, case_ref: str, exhibit_prefix: str | None = None,
                  duration: float, segment_seconds: float = 60.0, stall_timeout: float = 10.0,
                  actor: Actor | None = None, drain_interval: float = 1.0,
                  stop_event: threading.Event | None = None, final_drain_timeout: float = 60.0) -> IngestReport:
    """Record `camera` for `duration` seconds into its exhibit; returns what happened."""
    actor = actor or Actor("camera-ingest", "system")
    ev = Evidence(settings)
    start = datetime.now(UTC)
    ex_ref = exhibit_ref_for(exhibit_prefix or camera.upper(), start)
    case, exhibit = ev.ensure_exhibit(case_ref, ex_ref, officer=actor.name, actor=actor,
                                      description=f"covert camera {camera} recording")
    report = IngestReport(camera, case.ref, exhibit.ref)
    # one spool per camera: its journal holds only this camera's segments, so a drain can't mix exhibits
    spool_root = settings.spool_dir / camera
    spool = Spool(spool_root, max_bytes=int(settings.spool_cap_gb * 1024**3))
    gaps = GapQueue(spool_root / "gaps-pending.jsonl")
    uploader = SegmentUploader(ev, case, exhibit, actor, report)
    done = threading.Event()

    def drain_once() -> int:
        try:
            gaps.flush(ev, case, exhibit, actor, report)
        except CustodyError as exc:
            log.warning("gap events wait for the store: %s", exc)
        res = spool.drain(uploader, verify=False)
        if res.error:
            log.warning("store unavailable, segments wait in the spool: %s", res.error)
        spool.check_cap()
        return res.pending

    def drainer() -> None:
        while not done.wait(drain_interval):
            try:
                drain_once()
            except SpoolIntegrityError as exc:
                report.errors.append(str(exc))
                log.error("%s", exc)
            except Exception as exc:  # noqa: BLE001 - keep recording whatever the store does
                log.warning("drain failed, will retry: %s", exc)

    drain_once()  # leftovers of an earlier, killed run go first
    t = threading.Thread(target=drainer, name=f"drain-{camera}", daemon=True)
    t.start()

    def on_segment(seg: SegmentInfo) -> None:
        report.segments_recorded += 1

    try:
        record(url, spool_root, camera=camera, segment_seconds=segment_seconds, duration=duration,
               stall_timeout=stall_timeout, on_segment=on_segment, on_gap=gaps.add, stop_event=stop_event,
               spool=spool)
    finally:
        done.set()
        t.join()
    deadline = datetime.now(UTC).timestamp() + final_drain_timeout
    pending = -1
    while datetime.now(UTC).timestamp() < deadline:
        try:
            pending = drain_once()
        except Exception as exc:  # noqa: BLE001
            log.warning("final drain: %s", exc)
            pending = -1
        if pending == 0 and not (gaps.path.exists() and gaps.path.read_text().strip()):
            break
        done.wait(1.0)
    report.pending = max(pending, 0) if pending >= 0 else len(spool.pending())
    return report

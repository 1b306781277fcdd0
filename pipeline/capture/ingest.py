"""Camera ingest as a custody procedure.

Record one camera into the local spool (ffmpeg, no re-encoding), and while it records, drain closed segments
into the store: each becomes a locked original with a `segment_recorded` event (saying how its wall-clock time
was obtained); each outage becomes a `gap` event; what the camera-day exhibit covers is stated by `coverage`
events (coverage.py). The store can vanish and come back, the process can be killed: the spool journal plus a
deterministic object key per segment make every segment land exactly once.

Recording never waits for anything else: `IngestRun.start()` launches the recorder thread first, and only then
connects to the store (and a caller may report to Prefect). ffmpeg runs within a fraction of a second of the
start whatever the store or the orchestrator are doing; segments and events wait in the spool meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.settings import Settings

from .connection import Connection
from .coverage import Span, Window, iso, recorded, uncovered, window_label
from .errors import RecorderError
from .models import GapInfo, RecordingSummary, SegmentInfo
from .recorder import Recorder
from .report import IngestReport, previous_end
from .spool import Spool, SpoolIntegrityError
from .status import StatusFile, status_path
from .uploader import PendingEvents, SegmentUploader

log = logging.getLogger(__name__)

_runs: dict[str, IngestRun] = {}
_runs_lock = threading.Lock()

__all__ = ["IngestReport", "IngestRun", "exhibit_ref_for", "get_run", "ingest_camera"]


def exhibit_ref_for(prefix: str, day: datetime) -> str:
    """One exhibit per camera per UTC day (the day its window began): `CAM1/20261129`."""
    return f"{prefix}/{day.astimezone(UTC):%Y%m%d}"


def get_run(run_id: str) -> IngestRun | None:
    """A run started in this process (the Prefect flow attaches to it by id instead of recording again)."""
    with _runs_lock:
        return _runs.get(run_id)


class _Recorder(Recorder):
    """The recorder, telling us when each ffmpeg has been started."""

    def __init__(self, *args: Any, on_launch: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_launch = on_launch

    def _launch(self, number: int, stamp: str) -> Connection:
        conn = super()._launch(number, stamp)
        self._on_launch(conn)
        return conn


class IngestRun:
    """One camera recording window as a custody procedure; `start()` returns at once, `wait()` for the report.

    `window` is the scheduled occurrence the run belongs to: started late (catch-up), the part already past is
    recorded as missed, with a `gap` event saying so. `schedule` (the camera's windows) tells `missed` from
    `not_scheduled` in the uncovered time since the previous run on the same exhibit. `extend()` moves the end
    (an overlapping window of the same camera)."""

    def __init__(self, settings: Settings, *, camera: str, url: str, case_ref: str, exhibit_prefix: str | None = None,
                 duration: float | None = None, until: datetime | None = None, segment_seconds: float = 60.0,
                 stall_timeout: float = 10.0, camera_clock: bool = True, actor: Actor | None = None,
                 drain_interval: float = 1.0, stop_event: threading.Event | None = None,
                 final_drain_timeout: float = 60.0, window: tuple[datetime, datetime] | None = None,
                 schedule: Sequence[Window] = ()) -> None:
        if duration is not None and duration <= 0:
            raise RecorderError(f"duration must be > 0, got {duration}")
        self.settings, self.camera, self.url = settings, camera, url
        self.segment_seconds, self.stall_timeout, self.camera_clock = segment_seconds, stall_timeout, camera_clock
        self.actor = actor or Actor("camera-ingest", "system")
        self.drain_interval, self.final_drain_timeout = drain_interval, final_drain_timeout
        self.window, self.schedule, self._duration = window, list(schedule), duration
        self.end: datetime | None = until or (window[1] if window else None)
        self.id = uuid.uuid4().hex
        self.began = datetime.now(UTC)
        self.window_start = window[0] if window else self.began
        self._prefix = exhibit_prefix or camera.upper()
        self.exhibit_ref = exhibit_ref_for(self._prefix, self.window_start)
        self.case_ref = case_ref
        self.report = IngestReport(camera, case_ref, self.exhibit_ref, run_id=self.id)
        self._stop = stop_event or threading.Event()
        self._changed = threading.Event()
        self._rec_done = threading.Event()
        self.launched = threading.Event()  # set at the first ffmpeg start (or when the recorder gave up)
        self.ffmpeg_started: float | None = None
        self.error: BaseException | None = None
        self.summary: RecordingSummary | None = None
        self._lock = threading.Lock()
        root = settings.spool_dir / camera  # one spool per camera: its journal holds only this camera's segments
        self.spool = Spool(root, max_bytes=int(settings.spool_cap_gb * 1024**3))
        self.events = PendingEvents(root / "events-pending.jsonl")
        self.status = StatusFile(status_path(settings, camera))
        self._threads: list[threading.Thread] = []

    @property
    def label(self) -> str:
        if self.end is None:
            return f"{self.camera} {self.window_start:%H:%M}–(until stopped)"
        return window_label(self.camera, self.window_start, self.end)

    # -- control ----------------------------------------------------------------------------------------------
    def start(self) -> IngestRun:
        """Recorder first (ffmpeg within a fraction of a second), then the custody side in the background."""
        self.began = datetime.now(UTC)
        if self.window is None:  # the exhibit is the day recording began, even just after midnight
            self.window_start = self.began
            self.exhibit_ref = self.report.exhibit = exhibit_ref_for(self._prefix, self.began)
        if self.end is None and self._duration is not None:
            self.end = self.began + timedelta(seconds=self._duration)
        with _runs_lock:
            _runs[self.id] = self
        self._spawn(self._record, "rec")
        if self.end is not None:
            self._spawn(self._watch_end, "end")
        self._spawn(self._custody, "custody")
        return self

    def _spawn(self, target: Any, what: str) -> None:
        t = threading.Thread(target=target, name=f"ingest-{what}-{self.camera}", daemon=True)
        self._threads.append(t)
        t.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def extend(self, until: datetime) -> None:
        """Record at least until `until` (another window of this camera overlaps this one)."""
        with self._lock:
            if self.end is not None and until > self.end:
                self.end = until
                self._changed.set()

    def wait(self, timeout: float | None = None) -> IngestReport:
        """Until recorded and drained; raises the recorder's error if it could not record at all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with _runs_lock:
            _runs.pop(self.id, None)
        if self.error is not None and self.ffmpeg_started is None:
            raise self.error
        return self.report

    @property
    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    # -- recorder side ------------------------------------------------------------------------------------------
    def _watch_end(self) -> None:
        while not self._stop.is_set() and not self._rec_done.is_set():
            with self._lock:
                remaining = (self.end - datetime.now(UTC)).total_seconds() if self.end else 3600.0
            if remaining <= 0:
                self._stop.set()
                return
            self._changed.wait(remaining)
            self._changed.clear()

    def _on_launch(self, conn: Connection) -> None:
        if self.ffmpeg_started is not None:
            return
        self.ffmpeg_started = conn.started
        late = conn.started - self.window_start.timestamp()
        self.report.ffmpeg_started = iso(datetime.fromtimestamp(conn.started, UTC))
        self.status.update(camera=self.camera, case=self.case_ref, exhibit=self.exhibit_ref, recording=True,
                           pid=os.getpid(), run_id=self.id, ffmpeg_started=self.report.ffmpeg_started,
                           window={"start": iso(self.window_start), "end": iso(self.end) if self.end else None,
                                   "label": self.label}, ended=None)
        self.launched.set()
        catch_up = (self.began - self.window_start).total_seconds() > 1.0  # started inside a window under way
        late_note = (f"catch-up: window began {self.window_start:%H:%M:%S}, recording began {self.began:%H:%M:%S}"
                     if catch_up else f"ffmpeg started {late:.3f} s after the window began")
        log.info("window %s started: %s", self.label, late_note)

    def _on_segment(self, seg: SegmentInfo) -> None:
        with self._lock:
            self.report.segments_recorded += 1

    def _on_gap(self, gap: GapInfo) -> None:
        self.events.add("gap", {"camera": gap.camera, "start": iso(gap.start), "end": iso(gap.end),
                                "seconds": round(gap.seconds, 3), "reason": gap.reason, "open_ended": gap.open_ended,
                                "kind": "outage"})
        self.status.add_gap(gap.start, gap.end, gap.reason)

    def _record(self) -> None:
        try:
            rec = _Recorder(self.url, self.spool, camera=self.camera, segment_seconds=self.segment_seconds,
                            duration=None, stall_timeout=self.stall_timeout, on_segment=self._on_segment,
                            on_gap=self._on_gap, on_dropout=None, stop_event=self._stop, backoff=None,
                            socket_timeout=None, poll_interval=0.2, camera_clock=self.camera_clock,
                            on_launch=self._on_launch)
            self.summary = rec.run()
        except BaseException as exc:  # noqa: BLE001 - reported by wait(); the custody side must still finish
            self.error = exc
            self.report.errors.append(f"recorder: {exc}")
            log.error("%s: recording failed: %s", self.camera, exc)
        finally:
            self._rec_done.set()
            self._changed.set()
            self.launched.set()

    # -- custody side -------------------------------------------------------------------------------------------
    def _stored(self, seg: SegmentInfo, delay: float) -> None:
        with self._lock:
            self.report.segments_stored += 1
            self.report.close_to_event_s.append(delay)
        self.status.update(last_segment_end=iso(seg.end), last_segment_stored_at=iso(datetime.now(UTC)),
                           segments_stored=self.report.segments_stored)

    def _recorded_event(self, action: str, params: dict[str, Any]) -> None:
        if action == "gap":
            self.report.gaps.append(params)
        elif action == "coverage":
            self.report.coverage.append(params)

    def _connect(self) -> tuple[Any, Any, Any] | None:
        """Evidence facade and exhibit, retried while the store is away (the recorder carries on)."""
        from pipeline.evidence import Evidence

        give_up: float | None = None
        while True:
            try:
                ev = Evidence(self.settings)
                case, exhibit = ev.ensure_exhibit(self.case_ref, self.exhibit_ref, officer=self.actor.name,
                                                  actor=self.actor, description=f"covert camera {self.camera} "
                                                                                "recording")
                self.report.case, self.report.exhibit = case.ref, exhibit.ref
                return ev, case, exhibit
            except Exception as exc:  # noqa: BLE001 - store down, bad credentials...: keep spooling, say why
                log.warning("%s: store not reachable, segments wait in the spool: %s", self.camera, exc)
                if self._rec_done.is_set() and self.ffmpeg_started is None:
                    return None  # nothing was recorded: nothing to wait for
                if self._rec_done.is_set():
                    give_up = give_up or time.monotonic() + self.final_drain_timeout
                    if time.monotonic() > give_up:
                        self.report.errors.append(f"store unreachable: {exc}")
                        return None
            if not self._rec_done.wait(min(5.0, self.drain_interval * 2)):
                continue
            time.sleep(1.0)  # recording over: retry once a second until the final-drain deadline

    def _queue_spans(self, spans: list[Span]) -> None:
        for span in spans:
            self.events.add("coverage", span.as_params())
            if span.state == "missed":
                self.events.add("gap", {"camera": self.camera, "start": iso(span.start), "end": iso(span.end),
                                        "seconds": round(span.seconds, 3), "reason": span.reason,
                                        "open_ended": False, "kind": "missed"})
            if span.state in ("missed", "gap"):
                self.status.add_gap(span.start, span.end, span.reason, span.state)
        self.report.missed_seconds += sum(s.seconds for s in spans if s.state == "missed")

    def _start_coverage(self, ev: Any, exhibit: Any) -> None:
        """The time since the previous run on this exhibit (or this window's start) that nobody recorded."""
        prev = previous_end(ev, exhibit, before=self.began)
        # no earlier run on this exhibit: only this window's own missed part (if it began before we did)
        lo = self.window_start if prev is None else prev
        self._queue_spans(uncovered(self.camera, min(lo, self.began), self.began, self.schedule,
                                    current=self.window))

    def _end_coverage(self) -> None:
        s = self.summary
        if s is None:
            return
        # the run covers up to its last footage (or the end of an outage it ended in), not to the moment
        # ffmpeg had finished closing the last segment
        ends = [x.end for x in s.segments] + [g.end for g in s.gaps]
        spans = recorded(self.began, max(ends) if ends else s.ended, [(x.start, x.end) for x in s.segments],
                         [(g.start, g.end, g.reason) for g in s.gaps])
        for span in spans:
            self.events.add("coverage", span.as_params())

    def _drain_once(self, ev: Any, case: Any, exhibit: Any, uploader: SegmentUploader) -> int:
        from pipeline.errors import CustodyError

        try:
            self.events.flush(ev, case, exhibit, self.actor, self._recorded_event)
        except CustodyError as exc:
            log.warning("%s: custody events wait for the store: %s", self.camera, exc)
        res = self.spool.drain(uploader, verify=False)
        if res.error:
            log.warning("%s: store unavailable, segments wait in the spool: %s", self.camera, res.error)
        self.spool.check_cap()
        return res.pending

    def _custody(self) -> None:
        try:
            self._custody_inner()
        finally:
            ended = datetime.now(UTC)
            self.report.ended = iso(ended)
            self.status.update(recording=False, ended=iso(self.summary.ended if self.summary else ended),
                               segments_stored=self.report.segments_stored)
            r = self.report
            log.info("window %s finished: %d segments stored, %d gaps, %d pending%s", self.label,
                     r.segments_stored, len(r.gaps), r.pending, f", errors: {'; '.join(r.errors)}" if r.errors else "")

    def _custody_inner(self) -> None:
        connected = self._connect()
        if connected is None:
            self._rec_done.wait()
            self.report.pending = len(self.spool.pending())
            return
        ev, case, exhibit = connected
        self.launched.wait()  # set within moments: at ffmpeg's start, or when the recorder gave up
        if self.ffmpeg_started is None:  # camera busy (another recorder owns its spool), no ffmpeg: wait() says
            self.report.pending = len(self.spool.pending())
            return
        uploader = SegmentUploader(ev, case, exhibit, self.actor, on_stored=self._stored)
        self._drain_safely(ev, case, exhibit, uploader)  # leftovers of an earlier, killed run go first
        started = False
        while True:
            if not started:
                try:
                    self._start_coverage(ev, exhibit)
                    started = True
                except Exception as exc:  # noqa: BLE001 - the store went away again: next round
                    log.warning("%s: coverage since the previous run waits for the store: %s", self.camera, exc)
            if self._rec_done.wait(self.drain_interval):
                break
            self._drain_safely(ev, case, exhibit, uploader)
        self._end_coverage()
        deadline = time.monotonic() + self.final_drain_timeout
        pending = -1
        while time.monotonic() < deadline:
            pending = self._drain_safely(ev, case, exhibit, uploader)
            if pending == 0 and not self.events.pending():
                break
            time.sleep(1.0)
        self.report.pending = pending if pending >= 0 else len(self.spool.pending())
        ev.flush()  # the window's events reach the transparency log, time-stamped, as it ends (not at a timer)

    def _drain_safely(self, ev: Any, case: Any, exhibit: Any, uploader: SegmentUploader) -> int:
        try:
            return self._drain_once(ev, case, exhibit, uploader)
        except SpoolIntegrityError as exc:
            self.report.errors.append(str(exc))
            log.error("%s", exc)
        except Exception as exc:  # noqa: BLE001 - keep recording whatever the store does
            log.warning("%s: drain failed, will retry: %s", self.camera, exc)
        return -1


def ingest_camera(settings: Settings, *, camera: str, url: str, case_ref: str, exhibit_prefix: str | None = None,
                  duration: float, segment_seconds: float = 60.0, stall_timeout: float = 10.0,
                  actor: Actor | None = None, drain_interval: float = 1.0,
                  stop_event: threading.Event | None = None, final_drain_timeout: float = 60.0,
                  camera_clock: bool = True, window: tuple[datetime, datetime] | None = None,
                  schedule: Sequence[Window] = ()) -> IngestReport:
    """Record `camera` for `duration` seconds into its exhibit; returns what happened."""
    return IngestRun(settings, camera=camera, url=url, case_ref=case_ref, exhibit_prefix=exhibit_prefix,
                     duration=duration, segment_seconds=segment_seconds, stall_timeout=stall_timeout,
                     camera_clock=camera_clock, actor=actor, drain_interval=drain_interval, stop_event=stop_event,
                     final_drain_timeout=final_drain_timeout, window=window, schedule=schedule).start().wait()

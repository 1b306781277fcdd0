"""`custody cameras serve`: record every inventory window at its instant, and catch up on windows under way.

The scheduler is this long-lived process itself, not Prefect's runner: a Prefect runner polls for scheduled runs
(seconds late) and starts each in a fresh process that imports Prefect again (seconds more), and Prefect only
queues future runs, so a window under way when the worker (re)starts would be skipped entirely. Here each
window's occurrences come from its cron (coverage.py, cronsim); at an occurrence's instant the recorder starts
in-process (ffmpeg within a fraction of a second), and a window found under way at start is recorded from now to
its end, its missed part stated as a `gap` and `missed` coverage. Reporting each run to Prefect is a callback,
run in its own thread, which the recording never waits for.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline.settings import Settings

from .coverage import current_occurrence, next_occurrence, window_label
from .ingest import IngestRun
from .inventory import Camera, Inventory

log = logging.getLogger(__name__)

Report = Callable[[IngestRun, Camera], None]


class Scheduler:
    def __init__(self, settings: Settings, inventory: Inventory, *, report: Report | None = None, limit: int = 64,
                 drain_interval: float = 1.0) -> None:
        self.settings, self.inventory, self.report, self.limit = settings, inventory, report, limit
        self.drain_interval = drain_interval
        self.cameras = {c.id: c for c in inventory.cameras if c.windows}
        self.active: dict[str, IngestRun] = {}
        self.finished: list[IngestRun] = []
        self._queue: list[tuple[datetime, int, str, int, datetime]] = []
        self._seq = 0
        self._wake = threading.Event()
        self._lock = threading.Lock()

    # -- the schedule -------------------------------------------------------------------------------------------
    def add_occurrence(self, camera: str, start: datetime, end: datetime, window: int = -1) -> None:
        """Queue one occurrence (`window` -1: a one-off, nothing follows it)."""
        with self._lock:
            self._seq += 1
            heapq.heappush(self._queue, (start, self._seq, camera, window, end))
        self._wake.set()

    def _queue_next(self, camera: str, index: int, after: datetime) -> None:
        start, end = next_occurrence(self.cameras[camera].windows[index], after)
        self.add_occurrence(camera, start, end, index)

    def start(self, now: datetime | None = None) -> list[IngestRun]:
        """Catch up on windows under way now, and queue every window's next occurrence."""
        now = now or datetime.now(UTC)
        caught = []
        for cam in self.cameras.values():
            under_way = [o for w in cam.windows if (o := current_occurrence(w, now))]
            if under_way:
                start = min(o[0] for o in under_way)
                end = max(o[1] for o in under_way)
                log.info("window %s under way at start: recording the remaining %.0f s now (catch-up)",
                         window_label(cam.id, start, end), (end - now).total_seconds())
                run = self._begin(cam, start, end)
                if run is not None:
                    caught.append(run)
            for i in range(len(cam.windows)):
                self._queue_next(cam.id, i, now)
        with self._lock:
            upcoming = sorted(self._queue)[:3]
        for start, _, camera, _, end in upcoming:
            log.info("next window %s on %s", window_label(camera, start, end), f"{start:%Y-%m-%d}")
        return caught

    def run(self, stop: threading.Event) -> None:
        """Start each occurrence at its instant until `stop` is set; then stop the recordings and drain them."""
        stop_watch = threading.Thread(target=lambda: (stop.wait(), self._wake.set()), daemon=True)
        stop_watch.start()
        while not stop.is_set():
            with self._lock:
                first = self._queue[0][0] if self._queue else None
            now = datetime.now(UTC)
            if first is None or first > now:
                self._wake.wait(None if first is None else (first - now).total_seconds())
                self._wake.clear()
                continue
            with self._lock:
                start, _, camera, index, end = heapq.heappop(self._queue)
            self._reap()
            if end > now:
                self._begin(self.cameras[camera] if camera in self.cameras else self._camera(camera), start, end)
            else:
                log.warning("window %s already over when due (clock jump?): not recorded",
                            window_label(camera, start, end))
            if index >= 0:
                self._queue_next(camera, index, start)
        self.shutdown()

    def _camera(self, camera: str) -> Camera:
        return self.inventory.camera(camera)

    # -- runs -----------------------------------------------------------------------------------------------
    def _reap(self) -> None:
        for cam, run in list(self.active.items()):
            if run.done:
                self.finished.append(self.active.pop(cam))

    def _begin(self, cam: Camera, start: datetime, end: datetime) -> IngestRun | None:
        self._reap()
        running = self.active.get(cam.id)
        label = window_label(cam.id, start, end)
        if running is not None:
            running.extend(end)
            log.info("window %s overlaps the recording under way on %s: it goes on until %s", label, cam.id,
                     f"{running.end:%H:%M:%S}" if running.end else "stopped")
            return None
        if len(self.active) >= self.limit:
            log.error("window %s NOT recorded: %d recordings already run (--limit %d)", label, len(self.active),
                      self.limit)
            return None
        try:
            url = cam.resolved_url()
        except Exception as exc:  # noqa: BLE001 - a credential unset since start: say so, keep serving others
            log.error("window %s NOT recorded: %s", label, exc)
            return None
        run = IngestRun(self.settings, camera=cam.id, url=url, case_ref=cam.case_ref,
                        exhibit_prefix=cam.exhibit_prefix, segment_seconds=cam.segment_seconds,
                        stall_timeout=cam.stall_timeout, camera_clock=cam.camera_clock, window=(start, end),
                        schedule=cam.windows, drain_interval=self.drain_interval).start()
        self.active[cam.id] = run
        if self.report is not None:
            self.report(run, cam)
        return run

    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop every recording (each closes and stores its last segment) and wait for their drains."""
        runs = list(self.active.values())
        for run in runs:
            run.stop()
        for run in runs:
            try:
                run.wait(timeout)
            except Exception as exc:  # noqa: BLE001 - already logged by the run
                log.error("%s: %s", run.camera, exc)
        self._reap()

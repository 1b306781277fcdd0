"""Camera recorder: ffmpeg stream copy into fixed-length MPEG-TS segments, with drop-out handling.

Why this shape:
- `-c copy` only: the original bitstream is evidence and is never re-encoded.
- One ffmpeg process per connection, each with its own file prefix (`<camera>_<run stamp>_c<NNN>_%05d.ts`),
  so a reconnect can never overwrite an earlier segment. How the stream is opened is the camera source's
  business (`sources/`, by URL scheme).
- A segment is reported only once closed: ffmpeg appends it to the CSV segment list when it closes it (or it
  is the leftover of an ffmpeg that exited). It is hashed once, journaled in the spool, then `on_segment`
  runs. Segments cut by a drop-out are flagged `partial` and kept.
- Two stall detectors: ffmpeg's socket timeout (`-timeout`) and, from Python, "neither ffmpeg's progress (muxed
  stream time) nor the segment files advanced for `stall_timeout`"; the second one is what catches a camera
  that keeps the TCP connection (and RTCP) alive but sends no video.

Drop-outs: the first retry starts at once, then attempts start every `Backoff.interval` (0.5 s) for the first
30 s of the outage, then at a doubling interval capped at 5 s (backoff.py). A gap runs from the end of the
footage before the drop-out (the last segment's end: the last packet received) to the first packet of the
connection that brings the camera back, and `on_gap` fires as soon as that packet's time is known (two
progress reports, ~0.4 s after it arrived), not when the first new segment closes. The first new segment then
starts exactly where the gap ends. Wall-clock times come from ffmpeg's progress reports (clock.py); each
segment records how (`clock_source`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from .backoff import Backoff
from .clock import clock_source
from .command import STATS_PERIOD, ffmpeg_version, redact_url
from .connection import Connection, launch
from .errors import RecorderError
from .models import DropoutInfo, GapInfo, RecordingSummary, SegmentInfo
from .segments import ListEntry, probe_duration, sha256_file
from .sources import source_for
from .spool import Spool

log = logging.getLogger(__name__)

__all__ = ["Backoff", "Recorder", "RecorderError", "camera_from_url", "record"]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Recorder:
    """One camera's recording run. Use `record()` unless you need to inspect state from another thread."""

    def __init__(self, url: str, spool: Spool, *, camera: str, segment_seconds: float, duration: float | None,
                 stall_timeout: float, on_segment: Callable[[SegmentInfo], None] | None,
                 on_gap: Callable[[GapInfo], None] | None, on_dropout: Callable[[DropoutInfo], None] | None,
                 stop_event: threading.Event | None, backoff: Backoff | tuple[float, float] | None,
                 socket_timeout: float | None, poll_interval: float, camera_clock: bool = True) -> None:
        if segment_seconds <= 0:
            raise RecorderError(f"segment_seconds must be > 0, got {segment_seconds}")
        if stall_timeout <= 0:
            raise RecorderError(f"stall_timeout must be > 0, got {stall_timeout}")
        if duration is not None and duration <= 0:
            raise RecorderError(f"duration must be > 0 or None, got {duration}")
        self.source = source_for(url)  # SourceError (exit 2) for a scheme no camera source serves
        self.url = url
        self.spool = spool
        self.camera = camera
        self.segment_seconds = segment_seconds
        self.duration = duration
        self.stall_timeout = stall_timeout
        self.on_segment = on_segment
        self.on_gap = on_gap
        self.on_dropout = on_dropout
        self.stop_event = stop_event or threading.Event()
        self.backoff = Backoff.coerce(backoff)
        self.socket_timeout = socket_timeout if socket_timeout is not None else stall_timeout
        self.poll = poll_interval
        self.version = ffmpeg_version()
        self.described = tuple((k, str(v)) for k, v in self.source.describe(url).items())
        self.camera_clock = camera_clock
        self._clock_base = clock_source(STATS_PERIOD)
        self.clock_source = self._clock_base
        self.camera_clock_offset: float | None = None
        self._clock_thread: threading.Thread | None = None
        self._conn_number = 0
        self.dir = spool.camera_dir(camera)
        self.log_dir = self.dir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.index = 0
        self.gap_start: float | None = None
        self.gap_reason = ""
        self.callback_errors = 0
        self._wake = threading.Event()  # set by a progress reader when data starts flowing

    # -- helpers --------------------------------------------------------------------------------------------
    def _call(self, cb: Callable | None, arg: object) -> None:
        if cb is None:
            return
        try:
            cb(arg)
        except Exception:  # a broken callback must not stop the recording
            self.callback_errors += 1
            log.exception("%s: callback %r failed", self.camera, cb)

    def _should_stop(self, deadline: float | None) -> bool:
        return self.stop_event.is_set() or (deadline is not None and time.time() >= deadline)

    def _probe_camera_clock(self, conn: Connection) -> None:
        """Once per connection with data, in the background: the camera's clock offset (see rtcp.py)."""
        measure = getattr(self.source, "measure_clock", None)
        if measure is None or not self.camera_clock:
            conn.clock_probed = True
            self.clock_source = f"{self._clock_base}; camera clock: not measured ({self.source.name} source)" \
                if measure is None else f"{self._clock_base}; camera clock: not measured (disabled)"
            return
        if self._clock_thread is not None and self._clock_thread.is_alive():
            return  # the previous connection's probe is still out; try again on the next poll
        conn.clock_probed = True

        def run() -> None:
            try:
                reading = measure(self.url, 10.0)
                offset, text = round(reading.offset, 4), f"{self._clock_base}; {reading.describe()}"
            except Exception as exc:  # noqa: BLE001 - ClockUnavailable or a camera's oddity: never stops recording
                offset, text = None, f"{self._clock_base}; camera clock not available: {exc}"
            if self._conn_number == conn.number:  # still the connection it was measured for
                self.camera_clock_offset, self.clock_source = offset, text
            log.info("%s: %s", self.camera, text)

        self._clock_thread = threading.Thread(target=run, daemon=True, name=f"camera-clock-{self.camera}")
        self._clock_thread.start()

    def _launch(self, number: int, stamp: str) -> Connection:
        # a camera that went away may come back with another clock (a power cut resets many): measure anew
        self.clock_source, self.camera_clock_offset = f"{self._clock_base}; camera clock: not measured yet", None
        self._conn_number = number
        conn = launch(self.url, self.dir, self.log_dir, self.camera, stamp, number, on_data=self._wake.set,
                      segment_seconds=self.segment_seconds, socket_timeout=self.socket_timeout)
        log.info("%s: connection %d: %s", self.camera, number, " ".join(conn.command))
        return conn

    def _wall(self, conn: Connection, stream_t: float | None, fallback: float) -> datetime:
        w0 = conn.clock.wall0
        if w0 is None or stream_t is None:
            return _utc(fallback)
        return _utc(w0 + stream_t)

    def _scan_files(self, conn: Connection) -> None:
        total = 0
        for path in sorted(self.dir.glob(f"{conn.prefix}_*.ts")):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
            if path.name not in conn.files:
                conn.files[path.name] = self.index
                self.index += 1
                start = conn.last_wall_end or self._wall(conn, conn.last_stream_end, time.time())
                self.spool.record_open(self.camera, path, {
                    "index": conn.files[path.name], "connection": conn.number, "start": start.isoformat(),
                    "stream_start": conn.last_stream_end, "list_path": str(conn.list_path),
                    "ffmpeg_version": self.version, "command": list(conn.command)})
        if total > conn.total_bytes:
            conn.total_bytes = total
            conn.last_growth = time.time()

    def _close(self, conn: Connection, name: str, entry: ListEntry | None, partial: bool,
               summary: RecordingSummary) -> SegmentInfo:
        path = self.dir / name
        if name not in conn.files:
            conn.files[name] = self.index
            self.index += 1
        self.spool.record_closed(self.camera, path, partial=partial)
        digest, size = sha256_file(path)
        mtime = path.stat().st_mtime
        s_start = entry.start if entry else conn.last_stream_end
        probed = None if entry else probe_duration(path)  # cut by a kill: ask the file how long it is
        with conn.clock.lock:
            out_time = conn.clock.out_time
        s_end = entry.end if entry else s_start + probed if probed else max(out_time, s_start)
        self._end_gap(conn, summary)  # before on_segment, so a custody log reads gap, then footage
        # Contiguous segments share their boundary exactly, even if wall0 was refined in between; the first one
        # after a gap starts where the gap ends.
        start = conn.last_wall_end if conn.last_wall_end is not None else self._wall(conn, s_start, mtime)
        end = max(start, self._wall(conn, s_end, mtime))
        seg = SegmentInfo(
            path=path, camera=self.camera, index=conn.files[name], connection=conn.number, start=start, end=end,
            stream_start=s_start, stream_end=entry.end if entry else None, size=size, sha256=digest,
            partial=partial, ffmpeg_version=self.version, command=conn.command, clock_source=self.clock_source,
            camera_clock_offset=self.camera_clock_offset, source=self.described)
        conn.closed.add(name)
        conn.last_stream_end = s_end
        conn.last_wall_end = end
        self.spool.record_hashed(seg)
        self._call(self.on_segment, seg)
        return seg

    # -- main loop ------------------------------------------------------------------------------------------
    def _run_connection(self, conn: Connection, deadline: float | None, summary: RecordingSummary) -> str | None:
        """Returns None for a normal end, else the drop-out reason."""
        reason: str | None = None
        while True:
            # ffmpeg lists a segment when it closes it; in normal flow the next file already exists. A listed
            # newest file means ffmpeg is finishing (drop-out or stop), so it waits for the verdict below.
            entries = conn.held + conn.reader.read_new()
            self._scan_files(conn)
            newest = max(conn.files, key=conn.files.__getitem__, default=None)
            conn.held = [e for e in entries if e.name == newest]
            for entry in entries:
                if entry.name != newest:
                    summary.segments.append(self._close(conn, entry.name, entry, partial=False, summary=summary))
            if conn.clock.settled:
                self._end_gap(conn, summary)  # the camera is back: report the gap now, not at the segment close
                if not conn.clock_probed:
                    self._probe_camera_clock(conn)
            with conn.clock.lock:
                last = conn.clock.last_advance
            # Two independent detectors (muxed stream time, file bytes); either going quiet is a stall. Before the
            # first data the clock runs from the launch.
            activity = min(x for x in (last, conn.last_growth) if x is not None) if last else conn.started
            if conn.proc.poll() is not None:
                conn.detected = time.time()
                reason = conn.exit_reason(self.socket_timeout)
                break
            if time.time() - activity > self.stall_timeout:
                conn.detected = time.time()
                reason = f"stall: no data for {self.stall_timeout:g} s"
                t0 = time.monotonic()
                conn.stop()  # SIGTERM lets ffmpeg close the segment; SIGKILL after 5 s
                log.info("%s: stalled ffmpeg stopped in %.2f s", self.camera, time.monotonic() - t0)
                break
            if self._should_stop(deadline):
                conn.stop()
                break
            wait = self.poll if deadline is None else max(0.0, min(self.poll, deadline - time.time()))
            self._wake.wait(wait)
            self._wake.clear()
        conn.stop()
        # Whatever ffmpeg closed on its way out, then leftovers it never closed (killed): partial.
        entries = conn.held + conn.reader.read_new()
        self._scan_files(conn)
        last_name = max(conn.files, key=conn.files.__getitem__, default=None)
        for entry in entries:
            cut = reason is not None and entry.name == last_name  # the drop-out ended this one early
            summary.segments.append(self._close(conn, entry.name, entry, partial=cut, summary=summary))
        for name in sorted((n for n in conn.files if n not in conn.closed), key=conn.files.__getitem__):
            summary.segments.append(self._close(conn, name, None, partial=True, summary=summary))
        if conn.clock.wall0 is not None:
            self._end_gap(conn, summary)  # data came but too briefly to settle: the gap still ended
        return reason

    def _end_gap(self, conn: Connection, summary: RecordingSummary) -> None:
        """Footage exists again: the pending gap ends at this connection's first packet, where its footage
        will start."""
        w0 = conn.clock.wall0
        if self.gap_start is None or w0 is None:
            return
        end = _utc(max(w0, self.gap_start))
        gap = GapInfo(self.camera, _utc(self.gap_start), end, self.gap_reason)
        self.gap_start = None
        if conn.last_wall_end is None:
            conn.last_wall_end = end
        summary.gaps.append(gap)
        log.info("%s: camera back after %.1f s gap (%s)", self.camera, gap.seconds, gap.reason)
        self._call(self.on_gap, gap)

    def _note_dropout(self, conn: Connection, reason: str, started: float) -> None:
        with conn.clock.lock:
            got_data, out_t = conn.clock.first_data is not None, conn.clock.out_time
        w0 = conn.clock.wall0
        if got_data and w0 is not None:
            # The gap starts where the footage ends: the last segment's end if we have one.
            last_end = conn.last_wall_end.timestamp() if conn.last_wall_end is not None else w0 + out_t
            self.gap_start, self.gap_reason = last_end, reason
            self._call(self.on_dropout, DropoutInfo(self.camera, _utc(self.gap_start),
                                                    _utc(conn.detected or time.time()), reason))
        elif self.gap_start is None:  # never had data since the start of the recording
            self.gap_start, self.gap_reason = started, f"no data at start: {reason}"
            self._call(self.on_dropout, DropoutInfo(self.camera, None, _utc(conn.detected or time.time()),
                                                    self.gap_reason))

    def run(self) -> RecordingSummary:
        started = time.time()
        stamp = _utc(started).strftime("%Y%m%dT%H%M%S%fZ")
        deadline = started + self.duration if self.duration is not None else None
        summary = RecordingSummary(self.camera, redact_url(self.url), _utc(started), _utc(started),
                                   ffmpeg_version=self.version)
        outage_since: float | None = None
        delay: float | None = None
        last_attempt = 0.0
        with self.spool.camera_lock(self.camera):
            number = 0
            while not self._should_stop(deadline):
                if delay is not None:
                    until = last_attempt + delay if deadline is None else min(last_attempt + delay, deadline)
                    self.stop_event.wait(max(0.0, until - time.time()))
                    if self._should_stop(deadline):
                        break
                number += 1
                conn = self._launch(number, stamp)
                last_attempt = conn.started
                summary.connections = number
                summary.attempts.append(_utc(conn.started))
                reason = self._run_connection(conn, deadline, summary)
                got_data = conn.clock.wall0 is not None
                if reason is None:
                    break
                self._note_dropout(conn, reason, started)
                if got_data:  # a fresh outage: retry at once, then on the backoff schedule
                    outage_since, delay = conn.detected or time.time(), 0.0
                    log.warning("%s: drop-out (%s); reconnecting now", self.camera, reason)
                    continue
                outage_since = outage_since if outage_since is not None else started
                delay = self.backoff.delay(time.time() - outage_since, delay or None)
                log.info("%s: attempt %d failed (%s); next in %.1f s", self.camera, number, reason, delay)
                conn.discard_if_empty()
        ended = time.time()
        if self.gap_start is not None:
            gap = GapInfo(self.camera, _utc(self.gap_start), _utc(max(ended, self.gap_start)), self.gap_reason,
                          open_ended=True)
            summary.gaps.append(gap)
            self._call(self.on_gap, gap)
        summary.ended = _utc(ended)
        return summary


def camera_from_url(url: str) -> str:
    """Default camera id: last path component of the URL (rtsp://host/cam1 -> cam1)."""
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise RecorderError(f"cannot derive a camera id from {redact_url(url)!r}; pass camera=")
    return name


def record(url: str, spool_dir: Path, *, camera: str | None = None, segment_seconds: float = 60.0,
           duration: float | None = None, stall_timeout: float = 10.0,
           on_segment: Callable[[SegmentInfo], None] | None = None, on_gap: Callable[[GapInfo], None] | None = None,
           on_dropout: Callable[[DropoutInfo], None] | None = None, stop_event: threading.Event | None = None,
           backoff: Backoff | tuple[float, float] | None = None, socket_timeout: float | None = None,
           spool: Spool | None = None, poll_interval: float = 0.2, camera_clock: bool = True) -> RecordingSummary:
    """Record one camera into `spool_dir/<camera>/` until `duration` elapses or `stop_event` is set.

    Reconnects on its own after drop-outs (see Backoff; `backoff` also takes the older (initial, cap) tuple) and
    reports each closed segment, each gap (as soon as the camera is back) and each detected drop-out
    (immediately) through the callbacks, which run on this thread. Raises RecorderError (exit 2) for bad
    arguments, FfmpegNotFound (exit 3) without ffmpeg, SpoolBusy if another live recorder holds the camera.
    `camera_clock`: measure the camera's clock from its RTCP sender reports on a short parallel session once
    per connection (off for cameras that allow only one session).
    """
    sp = spool if spool is not None else Spool(spool_dir)
    rec = Recorder(url, sp, camera=camera or camera_from_url(url), segment_seconds=segment_seconds,
                   duration=duration, stall_timeout=stall_timeout, on_segment=on_segment, on_gap=on_gap,
                   on_dropout=on_dropout, stop_event=stop_event, backoff=backoff, socket_timeout=socket_timeout,
                   poll_interval=poll_interval, camera_clock=camera_clock)
    return rec.run()

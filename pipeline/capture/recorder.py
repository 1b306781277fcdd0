"""RTSP recorder: ffmpeg stream copy into fixed-length MPEG-TS segments, with drop-out handling.

Why this shape:
- `-c copy` only: the original bitstream is evidence and is never re-encoded.
- One ffmpeg process per connection, each with its own file prefix (`<camera>_<run stamp>_c<NNN>_%05d.ts`),
  so a reconnect can never overwrite an earlier segment.
- A segment is reported only once closed: ffmpeg appends it to the CSV segment list when it closes it (or it
  is the leftover of an ffmpeg that exited). It is hashed once, journaled in the spool, then `on_segment`
  runs. Segments cut by a drop-out are flagged `partial` and kept.
- Two stall detectors: ffmpeg's RTSP socket timeout (`-timeout`, microseconds, ffmpeg 5.x) and, from Python,
  "neither ffmpeg's progress (muxed stream time) nor the segment files advanced for `stall_timeout`"; the
  second one is what catches a camera that keeps the TCP connection (and RTCP) alive but sends no video.

Wall-clock times: for each connection, `wall0` (the UTC time of stream time 0) is estimated as
min(report_time - muxed_stream_time) over ffmpeg's progress reports. A live source cannot deliver stream
time X before wall0 + X, so the estimate is never earlier than the first packet's arrival and converges to
within one progress period (0.5 s). Segment times are wall0 + the segment list's stream times, which are
also kept verbatim. Gaps run from the last muxed data before a drop-out to wall0 of the next connection.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from .command import build_command, ffmpeg_version, redact_command, redact_url, segment_pattern
from .models import DropoutInfo, GapInfo, RecordingSummary, SegmentInfo
from .segments import ListEntry, SegmentListReader, probe_duration, sha256_file
from .spool import Spool

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:  # not glibc Linux: orphaned ffmpeg must then be cleaned up by the supervisor
    _prctl = None


def _die_with_parent() -> None:
    """Runs in the forked child: if the recorder is SIGKILLed, ffmpeg dies too instead of writing on alone."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class RecorderError(RuntimeError):
    """Bad recorder arguments (the message names the argument)."""


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class _Progress:
    """Parsed `-progress pipe:1` output, updated by a reader thread."""

    wall0: float | None = None  # wall time of stream time 0 (see module doc)
    first_advance: float | None = None
    last_advance: float | None = None
    out_time: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, stream) -> None:  # type: ignore[no-untyped-def]
        block: dict[str, str] = {}
        for raw in stream:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            block[key] = value
            if key != "progress":
                continue
            now = time.time()
            try:
                out_us = int(block.get("out_time_us", "N/A"))
            except ValueError:
                out_us = -1
            block = {}
            if out_us <= 0:
                continue
            t = out_us / 1e6
            with self.lock:
                if t > self.out_time:
                    self.out_time = t
                    self.last_advance = now
                    if self.first_advance is None:
                        self.first_advance = now
                self.wall0 = now - t if self.wall0 is None else min(self.wall0, now - t)


@dataclass
class _Conn:
    number: int
    prefix: str
    list_path: Path
    log_path: Path
    proc: subprocess.Popen
    command: tuple[str, ...]
    started: float
    progress: _Progress
    reader: SegmentListReader
    thread: threading.Thread
    files: dict[str, int] = field(default_factory=dict)  # name -> index, in order of appearance
    closed: set[str] = field(default_factory=set)
    last_growth: float | None = None
    total_bytes: int = 0
    last_stream_end: float = 0.0
    last_wall_end: datetime | None = None
    held: list[ListEntry] = field(default_factory=list)
    detected: float | None = None  # when the drop-out was noticed (before ffmpeg was stopped)


class Recorder:
    """One camera's recording run. Use `record()` unless you need to inspect state from another thread."""

    def __init__(self, url: str, spool: Spool, *, camera: str, segment_seconds: float, duration: float | None,
                 stall_timeout: float, on_segment: Callable[[SegmentInfo], None] | None,
                 on_gap: Callable[[GapInfo], None] | None, on_dropout: Callable[[DropoutInfo], None] | None,
                 stop_event: threading.Event | None, backoff: tuple[float, float], socket_timeout: float | None,
                 poll_interval: float) -> None:
        if segment_seconds <= 0:
            raise RecorderError(f"segment_seconds must be > 0, got {segment_seconds}")
        if stall_timeout <= 0:
            raise RecorderError(f"stall_timeout must be > 0, got {stall_timeout}")
        if duration is not None and duration <= 0:
            raise RecorderError(f"duration must be > 0 or None, got {duration}")
        if not (0 < backoff[0] <= backoff[1]):
            raise RecorderError(f"backoff must be (initial, cap) with 0 < initial <= cap, got {backoff}")
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
        self.backoff = backoff
        self.socket_timeout = socket_timeout if socket_timeout is not None else stall_timeout
        self.poll = poll_interval
        self.version = ffmpeg_version()
        self.dir = spool.camera_dir(camera)
        self.log_dir = self.dir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.index = 0
        self.gap_start: float | None = None
        self.gap_reason = ""
        self.callback_errors = 0

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

    def _launch(self, number: int, stamp: str) -> _Conn:
        prefix = f"{self.camera}_{stamp}_c{number:03d}"
        pattern = segment_pattern(self.camera, stamp, number)
        list_path = self.log_dir / f"{prefix}.csv"
        log_path = self.log_dir / f"{prefix}.log"
        cmd = build_command(self.url, self.dir, pattern, list_path, segment_seconds=self.segment_seconds,
                            socket_timeout=self.socket_timeout)
        with open(log_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                    preexec_fn=_die_with_parent)
        progress = _Progress()
        thread = threading.Thread(target=progress.feed, args=(proc.stdout,), daemon=True,
                                  name=f"ffmpeg-progress-{self.camera}-{number}")
        thread.start()
        log.info("%s: connection %d: %s", self.camera, number, " ".join(redact_command(cmd, self.url)))
        return _Conn(number, prefix, list_path, log_path, proc, redact_command(cmd, self.url), time.time(),
                     progress, SegmentListReader(list_path), thread)

    def _wall(self, conn: _Conn, stream_t: float | None, fallback: float) -> datetime:
        with conn.progress.lock:
            w0 = conn.progress.wall0
        if w0 is None or stream_t is None:
            return _utc(fallback)
        return _utc(w0 + stream_t)

    def _scan_files(self, conn: _Conn) -> None:
        total = 0
        for path in sorted(self.dir.glob(f"{conn.prefix}_*.ts")):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
            if path.name not in conn.files:
                conn.files[path.name] = self.index
                self.index += 1
                start = self._wall(conn, conn.last_stream_end, time.time())
                self.spool.record_open(self.camera, path, {
                    "index": conn.files[path.name], "connection": conn.number, "start": start.isoformat(),
                    "stream_start": conn.last_stream_end, "list_path": str(conn.list_path),
                    "ffmpeg_version": self.version, "command": list(conn.command)})
        if total > conn.total_bytes:
            conn.total_bytes = total
            conn.last_growth = time.time()

    def _close(self, conn: _Conn, name: str, entry: ListEntry | None, partial: bool,
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
        with conn.progress.lock:
            s_end = entry.end if entry else s_start + probed if probed else max(conn.progress.out_time, s_start)
        # Contiguous segments share their boundary exactly, even if wall0 was refined in between.
        start = conn.last_wall_end if conn.last_wall_end is not None else self._wall(conn, s_start, mtime)
        end = max(start, self._wall(conn, s_end, mtime))
        seg = SegmentInfo(
            path=path, camera=self.camera, index=conn.files[name], connection=conn.number, start=start, end=end,
            stream_start=s_start, stream_end=entry.end if entry else None, size=size, sha256=digest,
            partial=partial, ffmpeg_version=self.version, command=conn.command)
        self._end_gap(start, summary)  # before on_segment, so a custody log reads gap, then footage
        conn.closed.add(name)
        conn.last_stream_end = s_end
        conn.last_wall_end = end
        self.spool.record_hashed(seg)
        self._call(self.on_segment, seg)
        return seg

    def _stop_proc(self, conn: _Conn, graceful: bool) -> None:
        # ffmpeg ends its main loop on the first SIGTERM but only aborts a blocking network read on the second
        # (decode_interrupt_cb counts signals), so a stalled reader needs two; SIGKILL is the last resort.
        if conn.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 0.5), (signal.SIGTERM, 4.5)) if graceful else ((signal.SIGKILL, 5),):
                conn.proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    conn.proc.wait(timeout=wait)
                    break
            if conn.proc.poll() is None:
                conn.proc.kill()
                conn.proc.wait()
        conn.thread.join(timeout=5)
        if conn.proc.stdout is not None:
            conn.proc.stdout.close()

    def _exit_reason(self, conn: _Conn) -> str:
        errors: list[str] = []
        with contextlib.suppress(OSError):
            errors = [ln.strip() for ln in conn.log_path.read_text(errors="replace").splitlines()
                      if "rtsp://" in ln or "timed out" in ln.lower() or "error" in ln.lower()]
        tail = redact_url(errors[-1])[:200] if errors else ""
        if "timed out" in tail.lower():
            return f"stall: ffmpeg socket timeout ({self.socket_timeout:g} s), rc={conn.proc.returncode}"
        if conn.proc.returncode == 0:
            return "stream ended by the camera (EOF), ffmpeg rc=0"
        return f"ffmpeg exited rc={conn.proc.returncode}" + (f": {tail}" if tail else "")

    # -- main loop ------------------------------------------------------------------------------------------
    def _run_connection(self, conn: _Conn, deadline: float | None, summary: RecordingSummary) -> str | None:
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
            with conn.progress.lock:
                last = conn.progress.last_advance
            # Two independent detectors (muxed stream time, file bytes); either going quiet is a stall. Before the
            # first data the clock runs from the launch.
            activity = min(x for x in (last, conn.last_growth) if x is not None) if last else conn.started
            if conn.proc.poll() is not None:
                conn.detected = time.time()
                reason = self._exit_reason(conn)
                break
            if time.time() - activity > self.stall_timeout:
                conn.detected = time.time()
                reason = f"stall: no data for {self.stall_timeout:g} s"
                t0 = time.monotonic()
                self._stop_proc(conn, graceful=True)  # SIGTERM lets ffmpeg close the segment; SIGKILL after 5 s
                log.info("%s: stalled ffmpeg stopped in %.2f s", self.camera, time.monotonic() - t0)
                break
            if self._should_stop(deadline):
                self._stop_proc(conn, graceful=True)
                break
            wait = self.poll if deadline is None else max(0.0, min(self.poll, deadline - time.time()))
            self.stop_event.wait(wait)
        self._stop_proc(conn, graceful=True)
        # Whatever ffmpeg closed on its way out, then leftovers it never closed (killed): partial.
        entries = conn.held + conn.reader.read_new()
        self._scan_files(conn)
        last = max(conn.files, key=conn.files.__getitem__, default=None)
        for entry in entries:
            cut = reason is not None and entry.name == last  # the drop-out ended this one early
            summary.segments.append(self._close(conn, entry.name, entry, partial=cut, summary=summary))
        for name in sorted((n for n in conn.files if n not in conn.closed), key=conn.files.__getitem__):
            summary.segments.append(self._close(conn, name, None, partial=True, summary=summary))
        return reason

    def _end_gap(self, first_data: datetime, summary: RecordingSummary) -> None:
        """Footage exists again: the pending gap ends where the first new segment starts."""
        if self.gap_start is None:
            return
        gap = GapInfo(self.camera, _utc(self.gap_start), max(first_data, _utc(self.gap_start)), self.gap_reason)
        self.gap_start = None
        summary.gaps.append(gap)
        self._call(self.on_gap, gap)

    def run(self) -> RecordingSummary:
        started = time.time()
        stamp = _utc(started).strftime("%Y%m%dT%H%M%S%fZ")
        deadline = started + self.duration if self.duration is not None else None
        summary = RecordingSummary(self.camera, redact_url(self.url), _utc(started), _utc(started),
                                   ffmpeg_version=self.version)
        delay = self.backoff[0]
        with self.spool.camera_lock(self.camera):
            number = 0
            while not self._should_stop(deadline):
                number += 1
                conn = self._launch(number, stamp)
                summary.connections = number
                reason = self._run_connection(conn, deadline, summary)
                with conn.progress.lock:
                    got_data, w0, out_t = conn.progress.first_advance is not None, conn.progress.wall0, \
                        conn.progress.out_time
                if got_data:
                    delay = self.backoff[0]
                if reason is None:
                    break
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
                log.warning("%s: drop-out (%s); reconnecting in %.1f s", self.camera, reason, delay)
                wait = delay if deadline is None else max(0.0, min(delay, deadline - time.time()))
                self.stop_event.wait(wait)
                delay = min(delay * 2, self.backoff[1])
        ended = time.time()
        if self.gap_start is not None:
            gap = GapInfo(self.camera, _utc(self.gap_start), _utc(max(ended, self.gap_start)), self.gap_reason,
                          open_ended=True)
            summary.gaps.append(gap)
            self._call(self.on_gap, gap)
        summary.ended = _utc(ended)
        return summary


def camera_from_url(url: str) -> str:
    """Default camera id: last path component of the RTSP URL (rtsp://host/cam1 -> cam1)."""
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise RecorderError(f"cannot derive a camera id from {redact_url(url)!r}; pass camera=")
    return name


def record(url: str, spool_dir: Path, *, camera: str | None = None, segment_seconds: float = 60.0,
           duration: float | None = None, stall_timeout: float = 10.0,
           on_segment: Callable[[SegmentInfo], None] | None = None, on_gap: Callable[[GapInfo], None] | None = None,
           on_dropout: Callable[[DropoutInfo], None] | None = None, stop_event: threading.Event | None = None,
           backoff: tuple[float, float] = (1.0, 30.0), socket_timeout: float | None = None,
           spool: Spool | None = None, poll_interval: float = 0.2) -> RecordingSummary:
    """Record one RTSP camera into `spool_dir/<camera>/` until `duration` elapses or `stop_event` is set.

    Reconnects on its own after drop-outs (capped exponential backoff) and reports each closed segment,
    each gap and (immediately) each detected drop-out through the callbacks, which run on this thread.
    Raises SpoolBusy if another live recorder holds the same camera in the same spool.
    """
    sp = spool if spool is not None else Spool(spool_dir)
    rec = Recorder(url, sp, camera=camera or camera_from_url(url), segment_seconds=segment_seconds,
                   duration=duration, stall_timeout=stall_timeout, on_segment=on_segment, on_gap=on_gap,
                   on_dropout=on_dropout, stop_event=stop_event, backoff=backoff, socket_timeout=socket_timeout,
                   poll_interval=poll_interval)
    return rec.run()


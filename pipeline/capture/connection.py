"""One ffmpeg process reading one camera connection: start it, watch its progress, stop it, say why it ended."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .clock import StreamClock
from .command import build_command, redact_command, redact_url, segment_pattern
from .segments import ListEntry, SegmentListReader

_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:  # not glibc Linux: orphaned ffmpeg must then be cleaned up by the supervisor
    _prctl = None


def _die_with_parent() -> None:
    """Runs in the forked child: if the recorder is SIGKILLed, ffmpeg dies too instead of writing on alone."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Connection:
    number: int
    prefix: str
    list_path: Path
    log_path: Path
    proc: subprocess.Popen
    command: tuple[str, ...]  # credentials redacted
    started: float
    clock: StreamClock
    reader: SegmentListReader
    thread: threading.Thread
    files: dict[str, int] = field(default_factory=dict)  # name -> index, in order of appearance
    closed: set[str] = field(default_factory=set)
    last_growth: float | None = None
    total_bytes: int = 0
    last_stream_end: float = 0.0
    last_wall_end: datetime | None = None  # end of the last segment; before the first one: where it must start
    held: list[ListEntry] = field(default_factory=list)
    detected: float | None = None  # when the drop-out was noticed (before ffmpeg was stopped)
    clock_probed: bool = False

    def stop(self, graceful: bool = True) -> None:
        # ffmpeg ends its main loop on the first SIGTERM but only aborts a blocking network read on the second
        # (decode_interrupt_cb counts signals), so a stalled reader needs two; SIGKILL is the last resort.
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 0.5), (signal.SIGTERM, 4.5)) if graceful else ((signal.SIGKILL, 5),):
                self.proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=wait)
                    break
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def exit_reason(self, socket_timeout: float) -> str:
        errors: list[str] = []
        with contextlib.suppress(OSError):
            errors = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines()
                      if "://" in ln or "timed out" in ln.lower() or "error" in ln.lower()]
        tail = redact_url(errors[-1])[:200] if errors else ""
        if "timed out" in tail.lower():
            return f"stall: ffmpeg socket timeout ({socket_timeout:g} s), rc={self.proc.returncode}"
        if self.proc.returncode == 0:
            return "stream ended by the camera (EOF), ffmpeg rc=0"
        return f"ffmpeg exited rc={self.proc.returncode}" + (f": {tail}" if tail else "")

    def discard_if_empty(self) -> None:
        """An attempt that never got data leaves nothing worth keeping: its reason is in the log and the gap."""
        if not self.files:
            self.list_path.unlink(missing_ok=True)
            self.log_path.unlink(missing_ok=True)


def launch(url: str, out_dir: Path, log_dir: Path, camera: str, stamp: str, number: int, *,
           on_data: Callable[[], None] | None, segment_seconds: float, socket_timeout: float) -> Connection:
    prefix = f"{camera}_{stamp}_c{number:03d}"
    pattern = segment_pattern(camera, stamp, number)
    list_path = log_dir / f"{prefix}.csv"
    log_path = log_dir / f"{prefix}.log"
    cmd = build_command(url, out_dir, pattern, list_path, segment_seconds=segment_seconds,
                        socket_timeout=socket_timeout)
    started = time.time()
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                preexec_fn=_die_with_parent)
    clock = StreamClock(on_data=on_data)
    thread = threading.Thread(target=clock.feed, args=(proc.stdout,), daemon=True,
                              name=f"ffmpeg-progress-{camera}-{number}")
    thread.start()
    return Connection(number, prefix, list_path, log_path, proc, redact_command(cmd, url), started, clock,
                      SegmentListReader(list_path), thread)

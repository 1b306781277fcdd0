"""Wall-clock times for one live connection, from ffmpeg's `-progress` reports.

ffmpeg prints a report right after muxing a packet (the first one as soon as the output starts, then at most
every `-stats_period`), so each report is a sample (report time, muxed stream time t). A live camera cannot
deliver stream time t before wall0 + t, where wall0 is when stream time 0 arrived, so

    wall0 ~= min(report time - t)     over the reports of the last WINDOW seconds

is never earlier than the true arrival and settles within a frame interval once ffmpeg is past its start-up
burst (it replays the ~0.3 s of packets it held back to probe the stream at the first report, which is why the
first sample alone is late and `settled` waits for a second one). The window keeps a camera clock that runs
slow or fast against ours (20 ppm is 0.6 s over 8 h) from dragging the estimate; the estimate is what
`CLOCK_SOURCE` says, recorded with every segment.

The camera's own clock (RTCP sender reports: NTP time <-> RTP timestamp) is not available this way: ffmpeg
5.1's RTSP demuxer keeps it internal (AVFormatContext.start_time_realtime, no CLI output), so segments say
`camera_clock_offset=None` unless a caller measures it (see `rtcp.py`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

WINDOW = 300.0


def clock_source(stats_period: float, window: float = WINDOW) -> str:
    return (f"receiver clock: wall time = stream time + min(report time - muxed stream time) over the last "
            f"{window:g} s of ffmpeg -progress reports (every {stats_period:g} s)")


@dataclass
class StreamClock:
    """Parsed `-progress pipe:1` output of one ffmpeg, updated by a reader thread (all reads under `lock`)."""

    window: float = WINDOW
    on_data: Callable[[], None] | None = None  # called (on the reader thread) at the first and second data report
    first_data: float | None = None  # report time of the first report with muxed data
    last_advance: float | None = None  # report time of the last report where the stream time advanced
    out_time: float = 0.0  # muxed stream time, seconds
    reports: int = 0  # reports with data, the final one excluded
    ended: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _mins: deque[tuple[float, float]] = field(default_factory=deque)  # (report time, offset), offsets increasing

    def sample(self, now: float, t: float, final: bool = False) -> None:
        """One report. The final one (ffmpeg exiting) is no arrival: it may only move out_time on."""
        with self.lock:
            if t > self.out_time:
                self.out_time = t
                if not final:
                    self.last_advance = now
            if final:
                self.ended = True
                return
            self.reports += 1
            if self.first_data is None:
                self.first_data = now
            offset = now - t
            while self._mins and self._mins[-1][1] >= offset:
                self._mins.pop()
            self._mins.append((now, offset))
            while len(self._mins) > 1 and self._mins[0][0] < now - self.window:
                self._mins.popleft()
            notify = self.reports <= 2
        if notify and self.on_data is not None:
            self.on_data()

    @property
    def wall0(self) -> float | None:
        """Wall time of stream time 0, or None before the first data."""
        with self.lock:
            return self._mins[0][1] if self._mins else None

    @property
    def settled(self) -> bool:
        """Past ffmpeg's start-up burst: a second data report, or the stream ended after one."""
        with self.lock:
            return self.reports >= 2 or (self.reports >= 1 and self.ended)

    def feed(self, stream: Iterable[bytes]) -> None:
        """Reader thread body: blocks on ffmpeg's stdout until it closes."""
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
            if out_us > 0:
                self.sample(now, out_us / 1e6, final=value == "end")
            elif value == "end":
                with self.lock:
                    self.ended = True

"""The exact ffmpeg command line for one recorder connection, built with ffmpeg-python.

The command is part of the custody record, so it is kept verbatim except for credentials, which the camera's
source redacts from the URL before it is stored or logged. How the input is opened (transport, timeouts) is the
source's business (`pipeline.capture.sources`); the output side is the same for every camera.
"""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import ffmpeg

from .errors import FfmpegNotFound, RecorderError, SourceError
from .sources import source_for

# ffmpeg -progress period. Every report follows a muxed packet, so each is a sample of (arrival, stream time);
# 0.1 s lets the recorder see a returning camera's first packets ~0.1 s after ffmpeg has them (see clock.py).
STATS_PERIOD = 0.1


def redact_url(url: str) -> str:
    """URL with its password replaced by *** (the source's rule; a generic one for unknown schemes)."""
    try:
        return source_for(url).redact(url)
    except SourceError:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port
                                                                                 else "")))


def redact_command(cmd: list[str], url: str) -> tuple[str, ...]:
    safe = redact_url(url)
    return tuple(safe if a == url else a for a in cmd)


@functools.cache
def ffmpeg_version(binary: str = "ffmpeg") -> str:
    """First line of `ffmpeg -version`, recorded with every segment so the process is reproducible."""
    exe = shutil.which(binary)
    if exe is None:
        raise FfmpegNotFound(f"{binary!r} not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg)")
    from pipeline.ops.toolversion import first_line

    return first_line(exe)


def segment_pattern(camera: str, stamp: str, connection: int) -> str:
    """File name pattern unique per recording run and connection, so a reconnect never overwrites."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", camera):
        raise RecorderError(f"camera id {camera!r} must match [A-Za-z0-9_.-]+ (it becomes a file name)")
    return f"{camera}_{stamp}_c{connection:03d}_%05d.ts"


def build_command(url: str, out_dir: Path, pattern: str, list_path: Path, *, segment_seconds: float,
                  socket_timeout: float, stats_period: float = STATS_PERIOD) -> list[str]:
    """ffmpeg: the source's input, stream copy (never re-encode) into fixed-length MPEG-TS segments.

    `-progress pipe:1` lets the recorder see data arriving independently of file buffering.
    """
    target, options = source_for(url).input_args(url, socket_timeout=socket_timeout)
    stream = ffmpeg.input(target, **options)
    out = ffmpeg.output(
        stream, str(out_dir / pattern),
        map="0", c="copy", f="segment", segment_time=f"{segment_seconds:g}", segment_format="mpegts",
        # Flush every packet to the segment file: a crash then loses at most one packet, and file growth is a
        # truthful liveness signal (without it the inner muxer buffers seconds of video).
        segment_format_options="flush_packets=1",
        reset_timestamps="1", segment_list=str(list_path), segment_list_type="csv",
        progress="pipe:1", stats_period=f"{stats_period:g}",
    )
    args = out.compile(cmd="ffmpeg")
    # Global options first: ffmpeg reads options positionally and this keeps the line readable in the record.
    return [args[0], "-hide_banner", "-nostdin", "-loglevel", "info", "-nostats", *args[1:]]

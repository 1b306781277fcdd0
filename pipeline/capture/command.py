"""The exact ffmpeg command line for one recorder connection, built with ffmpeg-python.

The command is part of the custody record, so it is kept verbatim except for credentials, which are
redacted from the RTSP URL before it is stored or logged.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import ffmpeg


class FfmpegNotFound(RuntimeError):
    """ffmpeg is not on PATH; install it (Debian: apt-get install ffmpeg)."""


def redact_url(url: str) -> str:
    """rtsp://user:secret@host/x -> rtsp://user:***@host/x (user kept: it says which account recorded)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def redact_command(cmd: list[str], url: str) -> tuple[str, ...]:
    safe = redact_url(url)
    return tuple(safe if a == url else a for a in cmd)


@functools.cache
def ffmpeg_version(binary: str = "ffmpeg") -> str:
    """First line of `ffmpeg -version`, recorded with every segment so the process is reproducible."""
    exe = shutil.which(binary)
    if exe is None:
        raise FfmpegNotFound(f"{binary!r} not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg)")
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def segment_pattern(camera: str, stamp: str, connection: int) -> str:
    """File name pattern unique per recording run and connection, so a reconnect never overwrites."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", camera):
        raise ValueError(f"camera id {camera!r} must match [A-Za-z0-9_.-]+ (it becomes a file name)")
    return f"{camera}_{stamp}_c{connection:03d}_%05d.ts"


def build_command(url: str, out_dir: Path, pattern: str, list_path: Path, *, segment_seconds: float,
                  socket_timeout: float, stats_period: float = 0.5) -> list[str]:
    """ffmpeg: RTSP over TCP, stream copy (never re-encode) into fixed-length MPEG-TS segments.

    `-timeout` is the RTSP demuxer's TCP socket I/O timeout in microseconds in ffmpeg 5.x (it replaced
    `-stimeout`). `-progress pipe:1` lets the recorder see data arriving independently of file buffering.
    """
    stream = ffmpeg.input(url, rtsp_transport="tcp", timeout=str(int(socket_timeout * 1_000_000)))
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

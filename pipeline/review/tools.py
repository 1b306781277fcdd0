"""ffmpeg and libav plumbing for review work: run a recorded command, read stream facts.

Commands are argument lists (never a shell), built only from our own constants and numbers; the paths
in them are our temporary files. The custody record keeps the command with `{source}` / `{output}`
placeholders, so an examiner can repeat it on their own copy.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.errors import CustodyError, InfrastructureError

FFMPEG_TIMEOUT_S = 3600


class ReviewToolError(CustodyError):
    """ffmpeg could not make a review copy or clip from this file (the message has ffmpeg's reason)."""


@functools.cache
def ffmpeg_binary() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise InfrastructureError("ffmpeg not found on PATH; install it (Debian: apt-get install ffmpeg)")
    return exe


@functools.cache
def ffmpeg_version() -> str:
    from pipeline.ops.toolversion import first_line

    return first_line(ffmpeg_binary())


def run_ffmpeg(args: list[str], source: Path, output: Path, timeout: float = FFMPEG_TIMEOUT_S) -> list[str]:
    """Run `ffmpeg <args>` with {source}/{output} filled in; returns the command as recorded (placeholders kept)."""
    recorded = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", *args]
    real = [ffmpeg_binary(), *[str(source) if a == "{source}" else str(output) if a == "{output}" else a
                               for a in recorded[1:]]]
    try:
        proc = subprocess.run(real, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReviewToolError(f"ffmpeg took longer than {timeout:.0f} s; nothing was stored") from None
    if proc.returncode != 0 or not output.exists() or output.stat().st_size == 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])[:500]
        raise ReviewToolError(f"ffmpeg failed ({proc.returncode}): {tail or 'no output'}; nothing was stored")
    return recorded


@dataclass(frozen=True)
class StreamFacts:
    """What decides between a stream copy and a transcode, and how copy time maps to the original."""

    container: str
    video_codec: str
    profile: str | None
    pix_fmt: str | None
    width: int
    height: int
    time_base: Fraction
    fps: float
    audio_codec: str | None
    first_pts: int | None  # lowest video pts, in time_base
    frames: int
    duration: float  # seconds from the first to the end of the last video frame

    @property
    def first_time(self) -> float:
        """Media time of the first video frame, as a player reports it."""
        return float((self.first_pts or 0) * self.time_base)

    def as_dict(self) -> dict[str, Any]:
        return {"container": self.container, "video_codec": self.video_codec, "profile": self.profile,
                "pix_fmt": self.pix_fmt, "width": self.width, "height": self.height,
                "time_base": f"{self.time_base.numerator}/{self.time_base.denominator}", "fps": round(self.fps, 6),
                "audio_codec": self.audio_codec, "first_frame_time": round(self.first_time, 6),
                "frames": self.frames, "duration": round(self.duration, 6)}


def stream_facts(path: Path) -> StreamFacts:
    """Open with libav (PyAV) and list the video packets (demux only, no decoding)."""
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise ReviewToolError(f"{path.name}: not readable as media ({exc})") from None
    with container:
        if not container.streams.video:
            raise ReviewToolError(f"{path.name}: no video stream")
        v = container.streams.video[0]
        cc = v.codec_context
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        tb = Fraction(v.time_base) if v.time_base else Fraction(1, 90000)
        pts: list[int] = []
        try:
            for pkt in container.demux(v):
                if pkt.size and pkt.pts is not None and not pkt.is_discard:
                    pts.append(int(pkt.pts))
        except av.FFmpegError:
            pass
        pts.sort()
        step = (pts[-1] - pts[0]) / (len(pts) - 1) if len(pts) > 1 else 0
        fps = float(v.average_rate or v.guessed_rate or 0) or (float(1 / (step * tb)) if step else 0.0)
        duration = float((pts[-1] - pts[0] + step) * tb) if pts else 0.0
        return StreamFacts(container.format.name, cc.name, cc.profile, cc.pix_fmt, cc.width, cc.height, tb, fps,
                           audio, pts[0] if pts else None, len(pts), duration)

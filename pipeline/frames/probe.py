"""ffprobe the container once: stream facts plus every video packet's pts and key flag.

The packet listing is demux-only (no decoding), so it is cheap even for an hour of footage, and it gives
the exact presentation timestamps we later select frames by. ffprobe runs with argument lists, never a
shell.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from pipeline.frames.errors import ExtractionError, NotVideoError, ToolMissingError

FFPROBE = "ffprobe"
FFMPEG = "ffmpeg"

_TRUNCATION_HINTS = ("moov atom not found",)
_ADDR = re.compile(r" @ 0x[0-9a-f]+")


def _clean(line: str) -> str:
    """Drop heap addresses from ffmpeg log lines so recorded warnings are identical run to run."""
    return _ADDR.sub("", line.strip())


@dataclass(frozen=True)
class VideoInfo:
    """What the planner and decoders need to know about one video stream."""

    path: str
    stream_index: int
    codec: str
    container: str
    width: int
    height: int
    time_base: Fraction
    format_start: float
    rotation: int  # clockwise degrees to apply for upright display
    avg_fps: float
    frame_pts: np.ndarray  # int64, sorted presentation order, readable frames only
    key_pts: np.ndarray  # int64, sorted, subset of frame_pts
    frames_in_index: int
    warnings: tuple[str, ...] = field(default_factory=tuple)
    moov_missing: bool = False
    video_delay: bool = False  # stream reorders frames (B-frames); affects how ffmpeg seeks

    @property
    def first_pts(self) -> int:
        return int(self.frame_pts[0]) if len(self.frame_pts) else 0

    def offset_of(self, pts: int) -> float:
        return float((pts - self.first_pts) * self.time_base)

    def pts_time(self, pts: int) -> float:
        return float(pts * self.time_base)

    def summary(self) -> dict:
        return {"codec": self.codec, "container": self.container, "width": self.width, "height": self.height,
                "time_base": f"{self.time_base.numerator}/{self.time_base.denominator}", "rotation": self.rotation,
                "avg_fps": self.avg_fps, "stream_index": self.stream_index, "keyframes": int(len(self.key_pts)),
                "first_pts": self.first_pts}


def require_tools() -> None:
    for tool in (FFPROBE, FFMPEG):
        if shutil.which(tool) is None:
            raise ToolMissingError(f"{tool} not found on PATH; install ffmpeg (e.g. apt-get install ffmpeg)")


def _rotation_cw(stream: dict) -> int:
    """Clockwise degrees to rotate stored pixels for display, mirroring ffmpeg's own autorotate rule."""
    theta = None
    for sd in stream.get("side_data_list", []) or []:
        if "rotation" in sd:
            theta = -float(sd["rotation"])  # av_display_rotation_get is counter-clockwise
    if theta is None and "rotate" in (stream.get("tags") or {}):
        theta = float(stream["tags"]["rotate"])
    if theta is None:
        return 0
    return int(round(theta / 90.0)) * 90 % 360


def _fraction(s: str | None) -> Fraction | None:
    if not s or s in ("0/0", "N/A"):
        return None
    try:
        f = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return f if f > 0 else None


def probe(source: Path) -> VideoInfo:
    """Probe `source`; raises NotVideoError when there is no video stream to decode."""
    require_tools()
    source = Path(source)
    if not source.is_file():
        raise ExtractionError(f"{source}: no such file; check the exhibit path")
    proc = subprocess.run([FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(source)],
                          capture_output=True, text=True)
    err = proc.stderr.strip()
    if proc.returncode != 0:
        if any(h in err for h in _TRUNCATION_HINTS) and _looks_like_mp4(source):
            return _moov_missing(source, err)
        last = err.splitlines()[-1] if err else "no output"
        raise NotVideoError(f"{source}: ffprobe cannot read it as media ({last}); is this really a video file?")
    meta = json.loads(proc.stdout or "{}")
    streams = [s for s in meta.get("streams", []) if s.get("codec_type") == "video"
               and not (s.get("disposition") or {}).get("attached_pic")]
    if not streams:
        kinds = sorted({s.get("codec_type", "?") for s in meta.get("streams", [])}) or ["none"]
        raise NotVideoError(f"{source}: no video stream (streams: {', '.join(kinds)}); nothing to extract frames from")
    st = streams[0]
    tb = _fraction(st.get("time_base"))
    if tb is None:
        raise ExtractionError(f"{source}: video stream has no usable time base")
    fmt = meta.get("format", {})
    warnings = [f"ffprobe: {_clean(line)}" for line in err.splitlines() if line.strip()]
    frame_pts, key_pts, pw = _packets(source, int(st["index"]))
    warnings += pw
    if len(frame_pts) == 0:
        raise NotVideoError(f"{source}: the video stream has no readable frames")
    nb = st.get("nb_frames")
    frames_in_index = int(nb) if nb and str(nb).isdigit() else len(frame_pts)
    fps = _fraction(st.get("avg_frame_rate")) or _fraction(st.get("r_frame_rate")) or Fraction(0)
    return VideoInfo(path=str(source), stream_index=int(st["index"]), codec=st.get("codec_name", "?"),
                     container=fmt.get("format_name", "?"), width=int(st["width"]), height=int(st["height"]),
                     time_base=tb, format_start=float(fmt.get("start_time") or 0.0), rotation=_rotation_cw(st),
                     avg_fps=float(fps), frame_pts=frame_pts, key_pts=key_pts, frames_in_index=frames_in_index,
                     warnings=tuple(warnings), video_delay=int(st.get("has_b_frames") or 0) > 0)


def _looks_like_mp4(source: Path) -> bool:
    """An ISO-BMFF file starts with a box header; text renamed to .mp4 also makes ffprobe say 'moov not found'."""
    with open(source, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[4:8] in (b"ftyp", b"mdat", b"free", b"wide", b"skip", b"moov")


def _moov_missing(source: Path, err: str) -> VideoInfo:
    empty = np.zeros(0, dtype=np.int64)
    msg = (f"{source}: MP4 'moov' index atom is missing (recording was cut off before the camera finalised the "
           "file); no frame can be located without it. Try an index-rebuild tool (e.g. untrunc) with a reference "
           "file from the same camera, on a copy, and ingest the result as a derived exhibit.")
    return VideoInfo(path=str(source), stream_index=-1, codec="?", container="mov,mp4", width=0, height=0,
                     time_base=Fraction(1, 1), format_start=0.0, rotation=0, avg_fps=0.0, frame_pts=empty,
                     key_pts=empty, frames_in_index=0, warnings=(msg, f"ffprobe: {_clean(err)}"), moov_missing=True)


def _packets(source: Path, stream_index: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Presentation timestamps of readable frames and of keyframes, from a demux-only pass.

    Done with the same libavformat (PyAV's) that the decoders use, so the pts we plan with are exactly the
    pts the decoders report; ~10x quicker than an `ffprobe -show_packets` listing.
    """
    import av
    import av.logging

    pts: list[int] = []
    keys: list[int] = []
    no_pts = 0
    warnings: list[str] = []
    with av.logging.Capture(local=True) as logs:
        try:
            with av.open(str(source)) as container:
                stream = container.streams[stream_index]
                for pkt in container.demux(stream):
                    if not pkt.size or pkt.is_discard:  # flush marker / dropped by the edit list: never shown
                        continue
                    v = pkt.pts if pkt.pts is not None else pkt.dts
                    if v is None:
                        no_pts += 1
                        continue
                    pts.append(v)
                    if pkt.is_keyframe:
                        keys.append(v)
        except av.FFmpegError as e:
            warnings.append(f"demuxing stopped early: {e}")
    warnings = [f"packets: {_clean(f'[{name}] {msg}')}" for level, name, msg in logs
                if level <= av.logging.WARNING] + warnings
    if no_pts:
        warnings.append(f"{no_pts} packets carry no timestamp and were ignored")
    frame_pts = np.unique(np.asarray(pts, dtype=np.int64))
    if len(frame_pts) != len(pts):
        warnings.append(f"{len(pts) - len(frame_pts)} packets share a pts with another; kept one frame per pts")
    key_pts = np.unique(np.asarray(keys, dtype=np.int64))
    return frame_pts, key_pts, sorted(set(warnings), key=warnings.index)


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    try:
        out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout
    except OSError:
        return "missing"
    first = out.splitlines()[0] if out else ""
    return first.split(" ")[2] if first.startswith("ffmpeg version") else first

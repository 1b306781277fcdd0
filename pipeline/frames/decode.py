"""Decoder runs: one ffmpeg process per GOP-aligned chunk, emitting only the frames we keep.

Why ffmpeg rather than cv2.VideoCapture for decoding: OpenCV 5's FFmpeg backend seeks by frame number
derived from the *average* fps (wrong for VFR) and aims 16 frames before the target, so asking for a
keyframe decodes the whole previous GOP too; its frame numbering after a seek is fps-derived as well.
(cv2 5 also auto-rotates by default: CAP_PROP_ORIENTATION_AUTO=1, CAP_PROP_ORIENTATION_META reports the
same clockwise angle we record.) An ffmpeg process given `-ss <keyframe>` starts decoding at that
keyframe, `select` by exact integer pts keeps only the frames the plan wants (unwanted frames are decoded
but never colour-converted), `-frames:v N` stops as soon as the last one is out, and `showinfo` reports the
pts of every frame we receive, so each still is verified to be the frame whose pts we report.
Rotation is applied by us (with -noautorotate) so it is explicit and recorded.
"""

from __future__ import annotations

import hashlib
import queue
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.frames.png import encode_jpeg, encode_png, pixel_sha256, rotate_upright, thumbnail
from pipeline.frames.probe import FFMPEG

_SHOWINFO = re.compile(rb"\[Parsed_showinfo[^\]]*\] (?:\[info\] )?n:\s*(\d+)\s+pts:\s*(-?\d+)")
_ADDR = re.compile(rb" @ 0x[0-9a-f]+")
_PROBLEM = re.compile(rb"\[(error|warning|fatal|panic)\]")
# ffmpeg backs an input seek off by 3/23 s when the stream has decoder delay (B-frames), which would land
# on the previous keyframe; aim that much later so it lands on the keyframe we asked for.
B_FRAME_SEEK_BACKOFF = 3 / 23
SEEK_EPSILON = 1e-4


@dataclass(frozen=True)
class Source:
    path: str
    stream_index: int
    width: int
    height: int
    time_base_num: int
    time_base_den: int
    format_start: float
    video_delay: bool
    rotation: int
    threads: int = 1

    def seek_arg(self, pts: int | None) -> list[str]:
        if pts is None:
            return []
        t = pts * self.time_base_num / self.time_base_den - self.format_start + SEEK_EPSILON
        if self.video_delay:
            t += B_FRAME_SEEK_BACKOFF
        return ["-noaccurate_seek", "-ss", f"{max(t, 0.0):.6f}"]


@dataclass(frozen=True)
class DecodeTask:
    source: Source
    chunk_id: int
    seek_pts: int | None
    wanted: tuple[tuple[int, str], ...]  # (pts, file stem)
    keys_only: bool
    out_dir: str
    png_level: int
    thumb_width: int


@dataclass
class StillOut:
    pts: int
    stem: str
    width: int
    height: int
    pixel_sha256: str
    png_sha256: str
    png: str
    thumb: str


@dataclass
class DecodeOut:
    chunk_id: int
    stills: list[StillOut] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seek_overshoot: bool = False


def _ffmpeg_base(src: Source, seek_pts: int | None, keys_only: bool) -> list[str]:
    args = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-threads", str(src.threads),
            "-filter_threads", "1"]
    if keys_only:
        args += ["-skip_frame", "nokey"]
    return [*args, "-noautorotate", "-copyts", *src.seek_arg(seek_pts), "-i", src.path,
            "-map", f"0:{src.stream_index}", "-an", "-sn", "-dn"]


class _StderrPump(threading.Thread):
    """Drains ffmpeg's stderr so it can never block, handing showinfo pts to the reader in order."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream = stream
        self.pts: queue.Queue[int | None] = queue.Queue()
        self.problems: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            m = _SHOWINFO.search(line)
            if m:
                self.pts.put(int(m.group(2)))
            elif _PROBLEM.search(line) and b"deprecated pixel format" not in line and len(self.problems) < 20:
                # drop heap addresses ("@ 0x55d0...") so warnings are identical from run to run
                self.problems.append(_ADDR.sub(b"", line).decode(errors="replace").strip())
        self.pts.put(None)


def _read_exact(stream, buf: bytearray) -> bool:  # type: ignore[no-untyped-def]
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = stream.readinto(view[got:])
        if not n:
            return False
        got += n
    return True


class FfmpegFrames:
    """Iterate (pts, frame bytes) over raw frames from one ffmpeg run; `problems` holds its errors afterwards.

    A reader thread keeps up to `ahead` frames queued so ffmpeg keeps decoding while the caller encodes
    PNGs (cv2 releases the GIL); memory stays bounded at `ahead` + 1 frames.
    """

    def __init__(self, args: list[str], frame_bytes: int, ahead: int = 2) -> None:
        self.args = args
        self.frame_bytes = frame_bytes
        self.ahead = ahead
        self.problems: list[str] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        pump = _StderrPump(proc.stderr)
        pump.start()
        frames: queue.Queue[bytearray | None] = queue.Queue(maxsize=self.ahead)
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    buf = bytearray(self.frame_bytes)
                    if not _read_exact(proc.stdout, buf):
                        break
                    frames.put(buf)
            finally:
                frames.put(None)

        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        try:
            while True:
                buf = frames.get()
                if buf is None:
                    break
                pts = pump.pts.get(timeout=120)
                if pts is None:
                    break
                yield pts, buf
        finally:
            stop.set()
            if proc.poll() is None and rt.is_alive():  # consumer gave up early: don't decode the rest
                proc.kill()
            while rt.is_alive():  # unblock a reader waiting on a full queue
                try:
                    frames.get(timeout=0.1)
                except queue.Empty:
                    pass
            if proc.stdout:
                proc.stdout.close()
            proc.wait()
            pump.join(timeout=10)
            self.problems = sorted(set(pump.problems))  # log interleaving is not part of the evidence


def decode_chunk(task: DecodeTask) -> DecodeOut:
    """Decode one chunk, writing each wanted frame as PNG + JPEG thumbnail; never holds more than one frame."""
    import cv2

    cv2.setNumThreads(1)
    src = task.source
    stems = dict(task.wanted)
    pts_list = [p for p, _ in task.wanted]
    sel = "+".join(f"eq(pts\\,{p})" for p in pts_list)
    args = [*_ffmpeg_base(src, task.seek_pts, task.keys_only), "-vf", f"select={sel},showinfo=checksum=0",
            "-fps_mode", "passthrough", "-frames:v", str(len(pts_list)), "-f", "rawvideo", "-pix_fmt", "bgr24",
            "pipe:1"]
    out = DecodeOut(chunk_id=task.chunk_id)
    out_dir = Path(task.out_dir)
    seen: set[int] = set()
    frames = FfmpegFrames(args, src.width * src.height * 3)
    for pts, buf in frames:
        stem = stems.get(pts)
        if stem is None or pts in seen:
            out.problems.append(f"decoder emitted unexpected pts {pts}; ignored")
            continue
        seen.add(pts)
        img = rotate_upright(np.frombuffer(buf, np.uint8).reshape(src.height, src.width, 3), src.rotation)
        png = encode_png(img, task.png_level)
        (out_dir / f"{stem}.png").write_bytes(png)
        (out_dir / "thumbs" / f"{stem}.jpg").write_bytes(encode_jpeg(thumbnail(img, task.thumb_width)))
        out.stills.append(StillOut(pts=pts, stem=stem, width=img.shape[1], height=img.shape[0],
                                   pixel_sha256=pixel_sha256(img), png_sha256=hashlib.sha256(png).hexdigest(),
                                   png=f"{stem}.png", thumb=f"thumbs/{stem}.jpg"))
    out.problems += frames.problems
    out.missing = [p for p in pts_list if p not in seen]
    if out.missing and seen and min(out.missing) < min(seen):
        out.seek_overshoot = True
    return out


@dataclass(frozen=True)
class SceneTask:
    source: Source
    chunk_id: int
    seek_pts: int | None
    lo: int | None
    hi: int | None
    expected: int
    small_w: int = 64
    small_h: int = 36
    liveness_only: bool = False  # only "which pts decode" matters: skip the deblocking filter to save CPU


@dataclass
class SceneOut:
    chunk_id: int
    pts: np.ndarray
    diffs: np.ndarray  # diffs[i] = mean |frame i - frame i-1|; diffs[0] is NaN (needs the previous chunk)
    first: np.ndarray | None
    last: np.ndarray | None
    problems: list[str]


def scene_chunk(task: SceneTask) -> SceneOut:
    """Decode every frame of a range into tiny grey images and score consecutive differences."""
    src = task.source
    conds = []
    if task.lo is not None:
        conds.append(f"gte(pts\\,{task.lo})")
    if task.hi is not None:
        conds.append(f"lt(pts\\,{task.hi})")
    sel = f"select={'*'.join(conds)}," if conds else ""
    # Rotation does not change a mean absolute difference, so scenes are scored on stored pixels.
    base = _ffmpeg_base(src, task.seek_pts, False)
    if task.liveness_only:
        base[1:1] = ["-skip_loop_filter", "all"]
    args = [*base, "-vf",
            f"{sel}showinfo=checksum=0,scale={task.small_w}:{task.small_h}:flags=area,format=gray",
            "-fps_mode", "passthrough", "-frames:v", str(task.expected), "-f", "rawvideo", "-pix_fmt", "gray",
            "pipe:1"]
    pts: list[int] = []
    diffs: list[float] = []
    prev: np.ndarray | None = None
    first: np.ndarray | None = None
    frames = FfmpegFrames(args, task.small_w * task.small_h)
    for p, buf in frames:
        cur = np.frombuffer(buf, np.uint8).astype(np.int16)
        diffs.append(float(np.abs(cur - prev).mean()) if prev is not None else float("nan"))
        if first is None:
            first = cur.copy()
        prev = cur
        pts.append(p)
    return SceneOut(chunk_id=task.chunk_id, pts=np.asarray(pts, np.int64), diffs=np.asarray(diffs, np.float64),
                    first=first, last=prev, problems=frames.problems)


def run_task(task: DecodeTask | SceneTask) -> DecodeOut | SceneOut:
    """Single entry point for executors, so decode chunks and scene/tail scans share one pool."""
    if isinstance(task, DecodeTask):
        return decode_chunk(task)
    return scene_chunk(task)

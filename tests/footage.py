"""Synthetic test footage made with ffmpeg lavfi (testsrc2 + noise).

Everything is written to a caller-supplied directory (pytest tmp dirs or /tmp),
never into the repository. Noise keeps the encoders honest (real I/P/B frame
sizes) and makes every frame's pixels distinct.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

FFMPEG = "ffmpeg"


def _run(args: list[str]) -> None:
    proc = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(args)}\n{proc.stderr}")


def _src(seconds: float, size: str, fps: float, noise: int = 12) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds},noise=alls={noise}:allf=t+u"]


def h264(path: Path, seconds: float = 4, *, size: str = "320x240", fps: float = 25, gop_s: float = 1.0,
         bframes: bool = True, bitrate: str | None = None, extra: list[str] | None = None) -> Path:
    """H.264 in whatever container `path`'s suffix names (.mp4, .ts, .mkv)."""
    gop = max(1, round(fps * gop_s))
    enc = ["-c:v", "libx264", "-preset", "ultrafast" if bitrate is None else "veryfast", "-pix_fmt", "yuv420p",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "3" if bframes else "0"]
    if bitrate:
        enc += ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    else:
        enc += ["-crf", "28"]
    if bframes and bitrate is None:
        # ultrafast disables B-frames; turn them back on explicitly.
        enc += ["-x264-params", f"bframes=3:b-adapt=0:keyint={gop}:min-keyint={gop}:scenecut=0"]
    _run([*_src(seconds, size, fps), *enc, *(extra or []), str(path)])
    return path


def h265(path: Path, seconds: float = 3, *, size: str = "320x240", fps: float = 25, gop_s: float = 1.0,
         temporal_layers: bool = False) -> Path:
    """HEVC (B-frames, half of them unreferenced) in MP4 (hvc1), or in what the suffix names (.ts, .mkv, .hevc);
    `temporal_layers` puts the unreferenced B-frames in a second temporal sub-layer, as some cameras do."""
    gop = max(1, round(fps * gop_s))
    x265 = f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error"
    x265 += ":temporal-layers=1" if temporal_layers else ""
    tag = ["-tag:v", "hvc1"] if path.suffix in (".mp4", ".mov") else []
    _run([*_src(seconds, size, fps), "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
          "-x265-params", x265, *tag, str(path)])
    return path


def mjpeg_avi(path: Path, seconds: float = 3, *, size: str = "320x240", fps: float = 15) -> Path:
    _run([*_src(seconds, size, fps), "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", str(path)])
    return path


def vfr_mp4(path: Path, *, size: str = "320x240") -> Path:
    """Variable frame rate: 2 s at 25 fps, 2 s at 5 fps, 2 s at 12 fps, kept VFR in the MP4."""
    parts = []
    for i, (dur, fps) in enumerate(((2, 25), (2, 5), (2, 12))):
        parts.append(f"testsrc2=size={size}:rate={fps}:duration={dur},noise=alls=12:allf=t+u,"
                     f"settb=1/12800[v{i}]")
    graph = ";".join(parts) + ";[v0][v1][v2]concat=n=3:v=1:a=0,settb=1/12800[out]"
    _run(["-filter_complex", graph, "-map", "[out]", "-fps_mode", "vfr", "-video_track_timescale", "12800",
          "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", str(path)])
    return path


def rotated_mp4(path: Path, degrees: int = 90, seconds: float = 2, *, size: str = "320x240") -> Path:
    """H.264 MP4 carrying a display matrix (phone/bodycam held sideways); pixels are stored unrotated.

    ffmpeg 5.1 has no -display_rotation, and `-metadata:s:v rotate=` is only honoured on a stream copy,
    so encode first and remux with the tag.
    """
    raw = path.with_name(path.stem + "_raw.mp4")
    _run([*_src(seconds, size, 25), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
          str(raw)])
    _run(["-i", str(raw), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(path)])
    raw.unlink()
    return path


def _cut(path: Path, seconds: float, keep: float, extra: list[str] | None = None) -> Path:
    """Encode a whole clip beside `path`, then keep only its first `keep` fraction as `path`."""
    full = path.with_name(path.stem + "_full" + path.suffix)
    h264(full, seconds, extra=extra)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def truncated_mp4_no_moov(path: Path, seconds: float = 3, *, keep: float = 0.6) -> Path:
    """A camera that lost power mid-recording: moov is written last, so cutting the tail loses it."""
    return _cut(path, seconds, keep)


def truncated_mp4_faststart(path: Path, seconds: float = 4, *, keep: float = 0.6) -> Path:
    """moov at the front (faststart) but mdat cut: the index promises frames the file no longer holds."""
    return _cut(path, seconds, keep, ["-movflags", "+faststart"])


def truncated_ts(path: Path, seconds: float = 4, *, keep: float = 0.6) -> Path:
    """An MPEG-TS segment cut mid-write: the last packets are partial."""
    return _cut(path, seconds, keep)


def open_gop_h264(path: Path, seconds: float = 5, *, size: str = "320x240", fps: float = 25) -> Path:
    """H.264 with open GOPs, as some cameras send: only the first keyframe is an IDR, the others are I-frames
    with a recovery point and B-frames before them that refer back across the GOP boundary."""
    _run([*_src(seconds, size, fps), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
          "-x264-params", f"open-gop=1:bframes=3:keyint={round(fps)}:min-keyint={round(fps)}:scenecut=0", str(path)])
    return path


def intra_refresh_h264(path: Path, seconds: float = 5, *, size: str = "320x240", fps: float = 25) -> Path:
    """H.264 with periodic intra refresh, as low-latency cameras send: one IDR, then each second a P picture with
    a recovery point that the container flags as a keyframe, the picture refreshed a column at a time."""
    _run([*_src(seconds, size, fps), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
          "-x264-params", f"intra-refresh=1:keyint={round(fps)}", str(path)])
    return path


def damaged_mp4(path: Path, at_s: list[float], seconds: float = 4, *, cabac: bool = False,
                extra: list[str] | None = None, middle: bool = False, overwrite: bool = False) -> Path:
    """H.264 MP4 (no B-frames) whose video packets presented at `at_s` seconds have the second half of their
    bytes zeroed (`middle`: the middle third), as bad sectors on a card leave them: the file opens and every
    packet is there. A zeroed tail cuts the slice short, and the decoder conceals errors in that frame;
    zeros in the middle, with coded data after them, `cabac` (the entropy coding most cameras use) decodes
    into a wrong picture silently (no corrupt flag, no log line). `overwrite`: the middle third overwritten with
    non-zero bytes (seeded) instead, which breaks no NAL rule: only the decoder can tell."""
    import json
    import random

    h264(path, seconds, bframes=False, bitrate="400k" if cabac else None, extra=extra)
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts_time,pos,size", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    packets = json.loads(out)["packets"]
    with open(path, "r+b") as f:
        for t in at_s:
            p = min(packets, key=lambda p: abs(float(p["pts_time"]) - t))
            size = int(p["size"])
            start, end = (size // 3, 2 * size // 3) if middle or overwrite else (size // 2, size)
            f.seek(int(p["pos"]) + start)
            rnd = random.Random(t)
            f.write(bytes(rnd.randrange(1, 256) for _ in range(end - start)) if overwrite else b"\x00" * (end - start))
    return path


def two_scenes_mp4(path: Path, *, size: str = "320x240", fps: float = 25) -> Path:
    """2 s of testsrc2 then 2 s of SMPTE bars: exactly one hard cut at t=2.0."""
    graph = (f"testsrc2=size={size}:rate={fps}:duration=2,noise=alls=8:allf=t+u[a];"
             f"smptebars=size={size}:rate={fps}:duration=2,noise=alls=8:allf=t+u[b];[a][b]concat=n=2:v=1:a=0[out]")
    _run(["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
          "-pix_fmt", "yuv420p", str(path)])
    return path


def audio_only(path: Path, seconds: float = 1) -> Path:
    _run(["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", str(path)])
    return path

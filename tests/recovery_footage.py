"""Footage for the power-loss recovery tests: clips from one "camera", damaged the ways batteries do it.

A camera is a fixed set of encoder settings; two recordings differ in content (noise seed, tone), so the
reference shares the damaged file's codec configuration but none of its samples. ffmpeg writes moov last
(no +faststart), so keeping a prefix of the file drops moov exactly as a power cut does. Everything goes
to a caller-supplied directory, never into the repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av

FFMPEG = "ffmpeg"


def _run(args: list[str]) -> None:
    proc = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(args)}\n{proc.stderr}")


def record(path: Path, *, codec: str = "h264", audio: bool = True, seconds: float = 8, seed: int = 1,
           size: str = "640x360", fps: int = 25, gop_s: float = 1.0, inband: bool = False,
           bframes: int = 0, channels: int = 1) -> Path:
    """One recording by the test camera: testsrc2 + noise, no B-frames unless asked, optional sine AAC."""
    gop = round(fps * gop_s)
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds},"
            f"noise=alls=12:allf=t+u:all_seed={seed}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency={220 + 40 * seed}:duration={seconds}:sample_rate=48000"]
    if codec == "h264":
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}" + (":repeat-headers=1" if inband else "")
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-x264-params", params]
    else:
        params = (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:log-level=error"
                  + (":repeat-headers=1" if inband else ""))
        args += ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", params, "-tag:v", "hvc1"]
    args += ["-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k", "-ac", str(channels)]
    _run([*args, str(path)])
    return path


def cut(full: Path, path: Path, keep: float, *, unfinalised: bool = False) -> Path:
    """The first `keep` fraction of `full`, streamed: what a camera that lost power leaves behind.

    `unfinalised` also zeroes the mdat's size field ("to end of file"), as a camera that never got to
    patch it leaves it; otherwise the size is the finished file's, larger than what remains.
    """
    n = int(full.stat().st_size * keep)
    with full.open("rb") as src, path.open("wb") as dst:
        while n > 0:
            chunk = src.read(min(n, 1 << 20))
            dst.write(chunk)
            n -= len(chunk)
    if unfinalised:
        with path.open("r+b") as f:
            pos = 0
            while head := f.read(8):
                size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if kind == b"mdat":
                    f.seek(pos)
                    f.write(bytes(4))
                    break
                pos += size
                f.seek(pos)
    return path


def corrupt(path: Path, start: int, nbytes: int, seed: int = 7) -> tuple[int, int]:
    """Overwrite `nbytes` at byte `start` with pseudo-random bytes; return the range hit."""
    noise = hashlib.shake_256(seed.to_bytes(4, "big")).digest(nbytes)
    with path.open("r+b") as f:
        f.seek(start)
        f.write(noise)
    return start, start + nbytes


@dataclass(frozen=True)
class Sample:
    kind: str  # 'video' | 'audio'
    pos: int
    size: int
    key: bool


def sample_table(path: Path) -> list[Sample]:
    """The healthy file's own index (moov): where every sample is, in file order."""
    with av.open(str(path)) as c:
        rows = [Sample(p.stream.type, p.pos, p.size, p.is_keyframe) for p in c.demux() if p.size]
    return sorted(rows, key=lambda s: s.pos)


def _pixels(frame: av.VideoFrame) -> str:
    """SHA-256 of the decoded YUV planes (no line padding, no colour conversion)."""
    return hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()


def frame_hashes_with_pts(path: Path) -> list[tuple[float, str]]:
    """(presentation time in seconds, pixel hash) of every decoded frame, in output order."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        tb = stream.time_base
        return [(float(f.pts * tb), _pixels(f)) for f in c.decode(stream)]


def frame_hashes(path: Path) -> list[str]:
    return [h for _, h in frame_hashes_with_pts(path)]


def presentation_order(path: Path) -> list[int]:
    """Byte offsets of the video samples in presentation order (differs from file order with B-frames)."""
    with av.open(str(path)) as c:
        rows = [(p.pts, p.pos) for p in c.demux(video=0) if p.size]
    return [pos for _, pos in sorted(rows)]


def packet_hashes(path: Path, kind: str) -> list[str]:
    with av.open(str(path)) as c:
        streams = c.streams.audio if kind == "audio" else c.streams.video
        if not streams:
            return []
        return [hashlib.sha256(bytes(p)).hexdigest() for p in c.demux(streams[0]) if p.size]


def repeat_mdat(src: Path, path: Path, times: int) -> Path:
    """A long damaged recording made cheaply: ftyp + one mdat whose payload is src's mdat `times` over.

    Every copy starts with a keyframe, so the result walks and decodes like one long recording; the mdat
    size field is 0 ("to end of file") as a camera that never finalised would leave it.
    """
    with src.open("rb") as f:
        data = f.read(64 << 20)
    pos, ftyp, payload = 0, b"", b""
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"ftyp":
            ftyp = data[pos:pos + size]
        if kind == b"mdat":
            payload = data[pos + 8:pos + size]
        pos += size
    with path.open("wb") as out:
        out.write(ftyp + (0).to_bytes(4, "big") + b"mdat")
        for _ in range(times):
            out.write(payload)
        out.flush()
        os.fsync(out.fileno())
    return path

"""Decode the recovered copy once: which pictures decode, and which the decoder flags as corrupt.

Structure alone cannot see damage inside a sample whose length fields survived; the decoder can. A frame
flagged corrupt (AV_FRAME_FLAG_CORRUPT: concealed errors) and the frames after it up to the next keyframe
are marked unreliable. Only decoding is done, no colour conversion, so this costs one decode of the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error


@dataclass
class Verification:
    decoded: int = 0
    corrupt_pts_s: list[float] = field(default_factory=list)
    error: str | None = None


def decode_check(path: Path) -> Verification:
    v = Verification()
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            for frame in c.decode(stream):
                v.decoded += 1
                if frame.is_corrupt and frame.pts is not None:
                    v.corrupt_pts_s.append(float(frame.pts * tb))
    except av.error.FFmpegError as exc:
        v.error = str(exc)
    return v

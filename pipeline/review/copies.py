"""Review copies: a browser-playable H.264 MP4 working copy of each footage original.

Chromium plays H.264 (4:2:0, 8-bit) in MP4, not MPEG-TS, HEVC or MJPEG-AVI. H.264 that qualifies is
stream-copied (`-c copy`: the same compressed pictures, only re-wrapped; ~0.1 s for a minute of 1080p);
anything else is transcoded with libx264 at fixed, recorded settings, every frame kept with its own
timestamp (`-fps_mode passthrough`) so copy time maps to the original frame by frame. The copy is a
derived object labelled WORKING COPY, recorded with its exact command, tool versions and the facts
that map its time onto the original (`first_frame_time`); the original is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.review.tools import StreamFacts, ffmpeg_version, run_ffmpeg, stream_facts

ACTION = "review_copy_made"
KIND = "review_copy"
LABEL = "WORKING COPY for review in a browser; not the original (see `source` for the original)"
BROWSER_PIX_FMTS = ("yuv420p", "yuvj420p")
BROWSER_AUDIO = ("aac", "mp3", "opus")
BROWSER_H264_PROFILES = ("Constrained Baseline", "Baseline", "Main", "High", "Extended")
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-profile:v", "high",
        "-fps_mode", "passthrough"]
AAC = ["-c:a", "aac", "-b:a", "128k"]


@dataclass(frozen=True)
class CopyPlan:
    mode: str  # stream_copy | transcode
    args: list[str]
    reason: str


def plan_copy(facts: StreamFacts) -> CopyPlan:
    """Stream copy when the browser can decode the pictures as they are; otherwise a libx264 transcode."""
    maps = ["-map", "0:v:0", "-map", "0:a:0?", "-dn", "-sn"]
    tail = ["-movflags", "+faststart", "-f", "mp4", "{output}"]
    if facts.audio_codec is None:
        audio: list[str] = []
    elif facts.audio_codec in BROWSER_AUDIO:
        audio = ["-c:a", "copy"]
    else:
        audio = AAC
    playable = (facts.video_codec == "h264" and (facts.pix_fmt or "") in BROWSER_PIX_FMTS
                and (facts.profile or "") in BROWSER_H264_PROFILES)
    if playable:
        why = f"H.264 {facts.profile} {facts.pix_fmt}: playable as is, pictures copied bit for bit"
        if audio == AAC:
            why += f"; audio {facts.audio_codec} transcoded to AAC (browsers do not play it)"
        return CopyPlan("stream_copy", ["-i", "{source}", *maps, "-c:v", "copy", *audio, *tail], why)
    why = (f"{facts.video_codec} {facts.profile or ''} {facts.pix_fmt or ''}".replace("  ", " ").strip()
           + " is not playable in a browser: transcoded to H.264 4:2:0 with libx264")
    return CopyPlan("transcode", ["-i", "{source}", *maps, *X264, *(audio or []), *tail], why)


def make_copy(source: Path, out: Path) -> tuple[CopyPlan, list[str], StreamFacts, StreamFacts]:
    """Write the review copy of `source` to `out`: (plan, command as recorded, source facts, copy facts)."""
    src = stream_facts(source)
    plan = plan_copy(src)
    command = run_ffmpeg(plan.args, source, out)
    return plan, command, src, stream_facts(out)


def copy_info(plan: CopyPlan, src: StreamFacts, copy: StreamFacts) -> dict[str, Any]:
    """What the custody record and the player need to know about a copy."""
    return {"label": LABEL, "working_copy": True, "mode": plan.mode, "reason": plan.reason,
            "content_type": "video/mp4", "first_frame_time": round(copy.first_time, 6),
            "frame_duration": round(1 / copy.fps, 6) if copy.fps else None, "fps": round(copy.fps, 6),
            "frames": copy.frames, "source_frames": src.frames, "frames_match": copy.frames == src.frames,
            "duration": round(copy.duration, 6), "width": copy.width, "height": copy.height,
            "source_codec": src.video_codec, "codec": copy.video_codec}


def tools() -> dict[str, str]:
    import av

    return {"ffmpeg": ffmpeg_version(), "pyav": av.__version__, "libav": av.ffmpeg_version_info}

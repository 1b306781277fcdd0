"""Codec configuration for recovery, taken from a healthy reference file from the same camera.

What the damaged file lost with its `moov` is exactly what a healthy file from the same camera (same
settings) still has: avcC/hvcC (parameter sets and NAL length size), the AAC AudioSpecificConfig, the
timescales and sample durations, the track layout, and typical sample sizes. libavformat reads it for us;
only the first packets are demuxed, so a long reference costs little.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error

from pipeline.errors import UsageError
from pipeline.recovery import h264, h265
from pipeline.recovery.nal import Syntax

REFERENCE_PACKETS = 2000  # packets demuxed for durations, sizes and interleaving
_HASH_CHUNK = 1 << 20


class ReferenceUnusable(UsageError):
    """The reference is not a healthy MP4 with an H.264/H.265 track."""


@dataclass
class VideoConfig:
    codec: str  # 'h264' | 'hevc'
    extradata: bytes  # avcC / hvcC, exactly as muxed
    length_size: int
    param_sets: list[bytes]
    time_base: Fraction
    frame_duration: int  # in time_base units
    reorders: bool = False  # the reference presents frames in another order than it decodes them (B-frames)
    max_sample: int | None = None
    width: int = 0
    height: int = 0
    frame_rate_source: str = "reference"

    def syntax(self) -> Syntax:
        syn: Syntax = h264.H264() if self.codec == "h264" else h265.H265()
        for unit in self.param_sets:
            syn.learn(unit)
        return syn

    def as_dict(self) -> dict:
        return {"codec": self.codec, "config_record": self.extradata.hex(), "nal_length_size": self.length_size,
                "time_base": str(self.time_base), "frame_duration": self.frame_duration,
                "fps": float(1 / (self.time_base * self.frame_duration)), "frame_rate_source": self.frame_rate_source,
                "width": self.width, "height": self.height, "b_frames_in_reference": self.reorders}


@dataclass
class AudioConfig:
    codec: str  # 'aac'
    extradata: bytes  # AudioSpecificConfig
    sample_rate: int
    channels: int
    time_base: Fraction
    frame_duration: int
    start_offset: Fraction = Fraction(0)  # first audio pts minus first video pts, in seconds (AAC priming)

    def as_dict(self) -> dict:
        return {"codec": self.codec, "audio_specific_config": self.extradata.hex(), "sample_rate": self.sample_rate,
                "channels": self.channels, "time_base": str(self.time_base), "frame_duration": self.frame_duration,
                "start_offset_s": float(self.start_offset)}


@dataclass
class Reference:
    path: Path
    sha256: str
    size: int
    video: VideoConfig
    audio: AudioConfig | None
    tracks: list[str] = field(default_factory=list)  # e.g. ['video:h264', 'audio:aac', 'data:tmcd']
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.path.name, "sha256": self.sha256, "size": self.size, "tracks": self.tracks}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mode(values: list[int], default: int) -> int:
    return Counter(values).most_common(1)[0][0] if values else default


def read_reference(path: Path) -> Reference:
    """Codec configuration and timing of a healthy file; ReferenceUnusable says why one cannot serve."""
    if not path.is_file():
        raise ReferenceUnusable(f"reference file {path} does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ReferenceUnusable(f"reference {path.name} is not a readable media file ({exc}); supply a healthy "
                                "MP4 recorded by the same camera") from exc
    with container:
        if not container.streams.video:
            raise ReferenceUnusable(f"reference {path.name} has no video track")
        vs = container.streams.video[0]
        codec = vs.codec_context.name
        if codec not in ("h264", "hevc"):
            raise ReferenceUnusable(f"reference {path.name} is {codec} video; recovery handles H.264 and H.265")
        extradata = bytes(vs.codec_context.extradata or b"")
        try:
            length_size, units = (h264.parse_avcc if codec == "h264" else h265.parse_hvcc)(extradata)
        except (ValueError, IndexError) as exc:
            raise ReferenceUnusable(f"reference {path.name} carries no usable {codec} configuration record "
                                    f"({exc}); is it an MP4/MOV?") from exc
        aud = container.streams.audio[0] if container.streams.audio else None
        tracks = [f"{s.type}:{s.codec_context.name if s.codec_context else s.codec_tag}" for s in container.streams]
        v_dur, v_size, v_pts, a_dur, a_pts = [], [], [], [], []
        reorders = False
        streams = [vs] + ([aud] if aud is not None and aud.codec_context.name == "aac" else [])
        for n, pkt in enumerate(container.demux(*streams)):
            if n >= REFERENCE_PACKETS:
                break
            if pkt.size == 0 or pkt.pts is None:
                continue
            if pkt.stream is vs:
                if v_pts and pkt.pts < max(v_pts):
                    reorders = True
                v_pts.append(pkt.pts)
                v_size.append(pkt.size)
                if pkt.duration:
                    v_dur.append(pkt.duration)
            else:
                a_pts.append(pkt.pts)
                if pkt.duration:
                    a_dur.append(pkt.duration)
        if not v_pts:
            raise ReferenceUnusable(f"reference {path.name} has no video samples")
        notes = []
        audio = None
        if aud is not None and aud.codec_context.name == "aac" and a_pts:
            ac = aud.codec_context
            audio = AudioConfig("aac", bytes(ac.extradata or b""), ac.sample_rate, ac.layout.nb_channels,
                                aud.time_base, _mode(a_dur, 1024),
                                min(a_pts) * aud.time_base - min(v_pts) * vs.time_base)
        elif aud is not None:
            notes.append(f"the reference's audio is {aud.codec_context.name}; only AAC audio is recovered, other "
                         "audio bytes are reported as skipped")
        video = VideoConfig(codec, extradata, length_size, units, vs.time_base,
                            _mode(v_dur, max(1, round(1 / (vs.time_base * (vs.average_rate or 25))))),
                            reorders, max(v_size), vs.codec_context.width, vs.codec_context.height)
    return Reference(path, sha256_file(path), path.stat().st_size, video, audio, tracks, notes)

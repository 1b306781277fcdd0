"""Write the recovered samples into a new MP4 with libavformat (PyAV): a fresh moov, the bytes unchanged.

No sample is re-encoded: each recovered access unit / AAC frame becomes one packet, so its decoded pixels
are those of the same frame in the uncut recording. PyAV streams need a template to carry codec parameters
without opening an encoder; with a reference that is the reference's own track, otherwise a one-frame
Annex B stream built from the in-band parameter sets and the first keyframe.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from pipeline.errors import CustodyError
from pipeline.recovery.config import AudioConfig, VideoConfig

_START = b"\x00\x00\x00\x01"


class ConfigMismatch(CustodyError):
    """The codec configuration does not decode the file's first keyframe."""


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    pix_fmt: str
    fps: Fraction | None  # from the SPS/VPS timing information, when the camera wrote it
    reorder: int  # pictures the SPS lets the decoder hold back for reordering (B-frames): 0 without


def split_units(sample: bytes, length_size: int) -> list[bytes]:
    units, p = [], 0
    while p + length_size <= len(sample):
        n = int.from_bytes(sample[p:p + length_size], "big")
        units.append(sample[p + length_size:p + length_size + n])
        p += length_size + n
    return units


def probe_keyframe(video: VideoConfig, sample: bytes) -> Probe:
    """Decode the first keyframe with the configuration: proves the configuration fits this file."""
    dec = av.CodecContext.create(video.codec, "r")
    dec.extradata = video.extradata
    try:
        frames = dec.decode(av.Packet(sample)) + dec.decode(None)
    except av.error.FFmpegError as exc:
        raise ConfigMismatch(f"the {video.codec} configuration does not decode the first keyframe ({exc})") from exc
    if not frames:
        raise ConfigMismatch(f"the {video.codec} configuration decodes no picture from the first keyframe")
    if frames[0].is_corrupt:
        raise ConfigMismatch(f"the first keyframe decodes with errors under the {video.codec} configuration")
    rate = dec.framerate
    fps = Fraction(rate) if rate and rate > 0 else None
    return Probe(frames[0].width, frames[0].height, frames[0].format.name, fps, dec.reorder_depth)


class Muxer:
    def __init__(self, out: Path, video: VideoConfig, audio: AudioConfig | None, reference: Path | None,
                 first_key: bytes) -> None:
        self._templates: list[av.container.InputContainer] = []
        if reference is not None:
            tpl = av.open(str(reference))
            self._templates.append(tpl)
            vtpl = tpl.streams.video[0]
            atpl = tpl.streams.audio[0] if audio is not None and tpl.streams.audio else None
        else:
            units = [*video.param_sets, *split_units(first_key, video.length_size)]
            tpl = av.open(io.BytesIO(b"".join(_START + u for u in units)), format=video.codec)
            self._templates.append(tpl)
            vtpl, atpl = tpl.streams.video[0], None
        self._out = av.open(str(out), "w", format="mp4")
        self._vs = self._out.add_stream_from_template(vtpl, opaque=True)
        self._vs.codec_context.extradata = video.extradata
        self._vs.codec_context.width, self._vs.codec_context.height = video.width, video.height
        self._vs.time_base = video.time_base
        self._vtb = video.time_base
        self._as = None
        if atpl is not None and audio is not None:
            self._as = self._out.add_stream_from_template(atpl, opaque=True)
            self._as.time_base = audio.time_base
            self._atb = audio.time_base

    def video(self, data: bytes, pts: int, dts: int, duration: int, key: bool) -> None:
        self._write(self._vs, self._vtb, data, pts, dts, duration, key)

    def audio(self, data: bytes, pts: int, duration: int) -> None:
        if self._as is not None:
            self._write(self._as, self._atb, data, pts, pts, duration, True)

    def _write(self, stream: av.stream.Stream, tb: Fraction, data: bytes, pts: int, dts: int, duration: int,
               key: bool) -> None:
        pkt = av.Packet(data)
        pkt.stream = stream
        pkt.time_base = tb
        pkt.pts, pkt.dts, pkt.duration = pts, dts, duration
        pkt.is_keyframe = key
        self._out.mux(pkt)

    def close(self) -> None:
        try:
            self._out.close()
        finally:
            for t in self._templates:
                t.close()

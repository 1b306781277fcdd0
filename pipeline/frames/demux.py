"""Where decoding starts: opening a source and seeking to a keyframe, and the times of the frames decoded.

Containers differ in what a seek lands on and in how they stamp packets, and a frame picked by a wrong time is
a wrong still under a right label, so the rules sit here apart from what is decoded: MPEG-TS seeks by decode
timestamps (`_demux_from`), MPEG-PS flags keyframes unreliably after a seek, and AVI stamps H.264 packets in
decode order (`Stamps`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.logging

from pipeline.frames.probe import VideoInfo, presentation_ts


@dataclass(frozen=True)
class Source:
    path: str
    stream_index: int
    codec: str
    reorder_depth: int = 0  # from the probe's full stream analysis; a quick open must find the same
    skip_unreferenced: bool = False  # VideoInfo.skip_unreferenced: no frame refers to an unreferenced one
    key_lead: int = 0  # VideoInfo.key_lead: how far below its pts a keyframe's dts may be
    stamps_in_decode_order: bool = False  # VideoInfo.stamps_in_decode_order (see Stamps)

    @classmethod
    def of(cls, info: VideoInfo) -> Source:
        """What a decoder needs of the probe. Frames are stamped in output order (Stamps) only when every sent
        packet gives a frame, so no unreferenced frame is skipped then."""
        in_decode_order = info.stamps_in_decode_order
        return cls(path=info.path, stream_index=info.stream_index, codec=info.codec,
                   reorder_depth=info.reorder_depth, skip_unreferenced=info.skip_unreferenced and not in_decode_order,
                   key_lead=info.key_lead, stamps_in_decode_order=in_decode_order)


class Stamps:
    """The presentation time of each decoded frame. Normally its own pts. When the container stamps packets in
    decode order though the codec reorders (H.264 with B-frames in AVI, whose demuxer makes up monotonic pts),
    a frame carries the stamp of its packet in decode order, so a still 1 s into a GOP showed the frame 80 ms
    later (measured); the decoder outputs frames in presentation order, so each takes the smallest stamp of
    the packets sent since the seek instead."""

    def __init__(self, src: Source) -> None:
        self.reorder = src.stamps_in_decode_order
        self.sent: list[int] = []

    def sent_packet(self, pkt: av.Packet) -> None:
        if self.reorder and pkt.size and (ts := presentation_ts(pkt)) is not None:
            heapq.heappush(self.sent, ts)

    def of(self, frame: av.VideoFrame) -> int | None:
        if not self.reorder:
            return presentation_ts(frame)
        return heapq.heappop(self.sent) if self.sent else None


class Input:
    """One opened container; reopened when a chunk must decode from the very start."""

    def __init__(self, src: Source, liveness_only: bool = False) -> None:
        self.src = src
        self.liveness_only = liveness_only
        self.container: av.container.InputContainer | None = None
        self.touched = False

    def stream(self, from_start: bool) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        if self.container is None or (from_start and self.touched):
            self.close()
            self.container = self._open()
            self.touched = False
        return self.container, self.container.streams[self.src.stream_index]

    def _open(self) -> av.container.InputContainer:
        """Open without stream analysis decoding frames (~13 ms for 1080p MP4, ~30 ms for MPEG-TS) when that
        loses nothing: the probe already analysed the stream, and the one fact our decoder takes from the
        analysis, its reordering depth, must come out the same; otherwise open with the full analysis.
        The opens' log lines are the probe's again (already reported), plus 'could not find codec
        parameters' for the skipped analysis, so they are not the chunk's problems."""
        with av.logging.Capture(local=True):
            quick = av.open(self.src.path, options={"skip_frame": "all"})  # applies to the analysis decoder only
            if quick.streams[self.src.stream_index].codec_context.reorder_depth == self.src.reorder_depth:
                container = quick
            else:
                quick.close()
                container = av.open(self.src.path)
        cc = container.streams[self.src.stream_index].codec_context
        cc.thread_count = 1  # parallelism comes from chunks side by side, and logs stay with their chunk
        if self.liveness_only:
            cc.options = {"skip_loop_filter": "all"}
        return container

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def frames_from(inp: Input, seek_pts: int | None, problems: list[str]) -> Iterator[tuple[av.Packet, av.CodecContext]]:
    """Packets from the keyframe at `seek_pts` on; never hands over a packet from before the first keyframe,
    which would decode into garbage from missing references. Demux errors end the stream (truncation)."""
    container, stream = inp.stream(from_start=seek_pts is None)
    cc = stream.codec_context
    inp.touched = True
    demux = _demux_from(container, stream, seek_pts, inp.src.key_lead)
    cc.flush_buffers()
    started = False
    while True:
        try:
            pkt = next(demux)
        except StopIteration:
            return
        except av.FFmpegError as e:
            problems.append(f"[demux] [error] {e}")
            return
        if not started:
            if pkt.size == 0:
                yield pkt, cc
                return
            if not pkt.is_keyframe:
                continue
            started = True
        yield pkt, cc


def _demux_from(container: av.container.InputContainer, stream: av.video.stream.VideoStream, seek_pts: int | None,
                key_lead: int) -> Iterator[av.Packet]:
    """The stream's packets from a seek to the keyframe at `seek_pts` (None: from the start).

    MPEG-TS seeks by decode timestamps: with B-frames a keyframe's dts is below its pts, so a seek to its pts
    lands on a later packet and the first keyframe is the next GOP's (measured: every seek of an HEVC TS, each
    chunk then decoded again from the start, 6x slower than the same stream in MP4). So when the first keyframe
    is past `seek_pts`, the seek is made again `key_lead` earlier; that is kept only when its first keyframe is
    the one asked for. Otherwise it is as before (MPEG-PS, which after such a seek flagged a P-frame as a
    keyframe and the keyframe as none: starting there gave a wrong frame under a right time)."""
    if seek_pts is None:
        return container.demux(stream)
    container.seek(seek_pts, stream=stream)
    if key_lead <= 0:
        return container.demux(stream)
    demux = container.demux(stream)
    key = _first_keyframe(demux)
    if key is not None and (presentation_ts(key) or 0) <= seek_pts:
        return itertools.chain([key], demux)
    container.seek(seek_pts - key_lead, stream=stream)
    demux = container.demux(stream)
    key = _first_keyframe(demux)
    if key is not None and presentation_ts(key) == seek_pts:
        return itertools.chain([key], demux)
    container.seek(seek_pts, stream=stream)
    return container.demux(stream)


def _first_keyframe(demux: Iterator[av.Packet]) -> av.Packet | None:
    """Read on to the first packet flagged a keyframe; None at the end or a demux error (the caller seeks again,
    and the packet loop meets the error itself if it stays)."""
    try:
        for pkt in demux:
            if not pkt.size:
                return None
            if pkt.is_keyframe:
                return pkt
    except av.FFmpegError:
        return None
    return None

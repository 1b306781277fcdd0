"""Decoding in-process with libavcodec (through PyAV): seek to a GOP's keyframe, decode only what the plan keeps.

Why in-process rather than an ffmpeg process per GOP: starting ffmpeg costs ~0.1 s here (dynamic linking plus
opening the container), as much as decoding 25 frames of 1080p, and a 1 PNG/s plan needs a decoder run per
2-second GOP. One opened container now serves a batch of chunks; each chunk is a seek (an index lookup)
plus a decoder flush, so every chunk starts from the same clean decoder state whatever ran before it.
(cv2.VideoCapture cannot do this: OpenCV 5 seeks by frame numbers derived from the *average* fps, wrong
for VFR, and lands 16 frames early.)

Decoding no more than the kept frames need:
- Frames that no other frame references are skipped (skip_frame=NONREF) unless we keep them: in H.264
  those with nal_ref_idc 0 (most B-frames), in HEVC the sub-layer non-reference pictures when the probe
  found them all in the stream's top temporal sub-layer (otherwise a higher layer may still refer to
  them: see nal.py). By definition no kept frame depends on them, so kept pixels are bit-identical to a
  full sequential decode (tested). Other codecs decode every frame.
- Keyframe-only chunks send the decoder nothing but the wanted keyframes' packets.
- Colour conversion (swscale to bgr24, which gives the same bytes as the ffmpeg CLI's `-pix_fmt bgr24`)
  runs only for kept frames.
Rotation is applied by us (never by the decoder), per frame from its display matrix, and recorded per still.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import av.logging
import numpy as np

from pipeline.frames import decode_log
from pipeline.frames.allocator import keep_frame_buffers_in_heap
from pipeline.frames.pixels import Scaler, Scalers, rotation_cw, thumbnail
from pipeline.frames.png import rotate_upright
from pipeline.frames.probe import VideoInfo, presentation_ts
from pipeline.frames.stills import StillOut, encode_pool, write_still

EOF_WINDOW = 24  # > H.264's maximum reorder depth (16), so the frame shown last is always decoded


@dataclass(frozen=True)
class Source:
    path: str
    stream_index: int
    codec: str
    reorder_depth: int = 0  # from the probe's full stream analysis; a quick open must find the same
    skip_unreferenced: bool = False  # VideoInfo.skip_unreferenced: no frame refers to an unreferenced one
    key_lead: int = 0  # VideoInfo.key_lead: how far below its pts a keyframe's dts may be
    stamps_in_decode_order: bool = False  # VideoInfo.stamps_in_decode_order (see _Stamps)

    @classmethod
    def of(cls, info: VideoInfo) -> Source:
        """What a decoder needs of the probe. Frames are stamped in output order (_Stamps) only when every sent
        packet gives a frame, so no unreferenced frame is skipped then."""
        return cls(path=info.path, stream_index=info.stream_index, codec=info.codec,
                   reorder_depth=info.reorder_depth,
                   skip_unreferenced=info.skip_unreferenced and not info.stamps_in_decode_order,
                   key_lead=info.key_lead, stamps_in_decode_order=info.stamps_in_decode_order)


class _Stamps:
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


@dataclass(frozen=True)
class ChunkSpec:
    """Seek to keyframe `seek_pts` (None: decode from the start) and keep the frames whose pts are `wanted`.

    `to_eof` keeps decoding past the last wanted frame to the end of the file, to learn the last pts that
    really decodes (the truncation check). Only the last EOF_WINDOW of the `packets_to_eof` packets are
    decoded whatever their kind: damage from a cut-off write sits at the end, and an unreferenced frame
    earlier on cannot change whether later frames decode.
    """

    chunk_id: int
    seek_pts: int | None
    wanted: tuple[tuple[int, str], ...]  # (pts, file stem)
    keys_only: bool
    to_eof: bool = False
    packets_to_eof: int | None = None  # packets from the seek keyframe to the end, from the probe


@dataclass(frozen=True)
class DecodeTask:
    """A batch of chunks for one worker: the container is opened once for all of them."""

    source: Source
    chunks: tuple[ChunkSpec, ...]
    out_dir: str
    png_level: int
    png_encoder: str
    thumb_width: int
    liveness_only: bool = False  # no stills, only "what decodes": the deblocking filter can be skipped (~20 %)
    encode_slots: int = 1  # stills of this batch being encoded at once (memory bound), see stills.py
    in_memory: bool = False  # hand PNGs back in memory (same process only), see stills.write_still


@dataclass
class DecodeOut:
    chunk_id: int
    stills: list[StillOut] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    last_pts: int | None = None  # highest pts decoded (meaningful for to_eof chunks)
    concealed: list[int] = field(default_factory=list)  # pts of decoded frames the decoder flagged corrupt (the
    # frame of a still among them: its `decoder_concealed`)


class _Input:
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


def _frames(inp: _Input, seek_pts: int | None, problems: list[str]) -> Iterator[tuple[av.Packet, av.CodecContext]]:
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


def _decode(cc: av.CodecContext, pkt: av.Packet | None, problems: list[str]) -> list[av.VideoFrame]:
    try:
        return list(cc.decode(pkt))
    except av.FFmpegError as e:
        problems.append(f"[decoder] [error] {e}")
        return []


def _hand_over(frame: av.VideoFrame, pts: int, stem: str, task: DecodeTask, scalers: Scalers,
               sem: threading.Semaphore) -> Future[StillOut]:
    """Convert a kept frame to upright BGR and its thumbnail here (they need the decoded planes), then
    leave compression, hashing and writing to the encode pool."""
    rotation = rotation_cw(frame)
    img = rotate_upright(scalers.full(frame), rotation)
    thumb = thumbnail(frame, img, rotation, task.thumb_width, scalers.thumb)
    out_dir, level, encoder, mem = Path(task.out_dir), task.png_level, task.png_encoder, task.in_memory
    woven = bool(frame.interlaced_frame)
    return encode_pool().submit(sem, lambda: write_still(img, thumb, pts, stem, rotation, out_dir, level, encoder,
                                                         mem, woven))


def _decode_chunk(inp: _Input, task: DecodeTask, spec: ChunkSpec, scalers: Scalers,
                  sem: threading.Semaphore) -> DecodeOut:
    out = DecodeOut(chunk_id=spec.chunk_id)
    pending: list[Future[StillOut]] = []
    stems = dict(spec.wanted)
    remaining = set(stems)
    unsent = set(stems)
    hi = max(stems) if stems else None
    skip_nonref = task.source.skip_unreferenced
    problems: list[str] = []
    noise: set[int] = set()  # log lines the seek caused (see decode_log.seek_noise)
    stamps = _Stamps(task.source)

    def take(frames: list[av.VideoFrame]) -> bool:
        """Keep wanted frames; True once nothing more is needed from this chunk."""
        for fr in frames:
            p = stamps.of(fr)
            if p is None:
                continue
            out.last_pts = p if out.last_pts is None else max(out.last_pts, p)
            # damaged data the decoder papered over (CABAC logs nothing); not a leading picture's (see there)
            if fr.is_corrupt and not decode_log.leading(spec.seek_pts, p):
                out.concealed.append(p)
            if p in remaining:
                remaining.discard(p)
                pending.append(_hand_over(fr, p, stems[p], task, scalers, sem))
            if spec.to_eof:
                continue
            if not remaining or (hi is not None and p > hi):  # output is in pts order: nothing wanted is left
                return True
        return False

    with av.logging.Capture(local=True) as logs:
        done = flushed = False
        n_pkt = 0
        cc: av.CodecContext | None = None
        for pkt, cc in _frames(inp, spec.seek_pts, problems):
            k = presentation_ts(pkt)
            if not pkt.size:  # end of file: drain what the decoder holds back
                cc.skip_frame = "DEFAULT"
                flushed = True
                done = take(_decode(cc, None, problems))
                break
            if spec.keys_only:
                if not pkt.is_keyframe or k not in remaining:
                    if pkt.is_keyframe and hi is not None and k is not None and k > hi:
                        break
                    continue
                if n_pkt:  # each keyframe to a clean decoder, as after a seek: fed one after another, a
                    # non-IDR keyframe (open GOP) after the gap in frame numbers may never come out
                    if take(_decode(cc, None, problems)):
                        done = True
                        break
                    cc.flush_buffers()
            elif skip_nonref:
                full = k in stems or (spec.to_eof and (spec.packets_to_eof is None
                                                       or n_pkt >= spec.packets_to_eof - EOF_WINDOW))
                cc.skip_frame = "DEFAULT" if full else "NONREF"
            n_pkt += 1
            logged = len(logs)
            stamps.sent_packet(pkt)
            taken = take(_decode(cc, pkt, problems))
            noise.update(decode_log.seek_noise(logs, logged, spec.seek_pts, k))
            if taken:
                done = True
                break
            unsent.discard(k)
            # every kept frame is in the decoder: drain, decode no further (packet stamps in decode order do not
            # say which frame is which, so then decoding goes on until `take` has them all)
            if not unsent and not spec.to_eof and not stamps.reorder:
                break
        if cc is not None:
            cc.skip_frame = "DEFAULT"
            if not done and not flushed:  # stopped early (keyframes passed, demux error): drain held frames
                take(_decode(cc, None, problems))
    out.stills = [f.result() for f in pending]  # the chunk is done once its files are written
    out.problems = decode_log.summarise(logs, noise) + sorted(set(problems))
    out.missing = sorted(remaining)
    return out


#: called with each chunk's result as soon as its stills are written (threads and inline runs only)
OnChunk = Callable[[DecodeOut], None]


def decode_batch(task: DecodeTask, on_chunk: OnChunk | None = None) -> list[DecodeOut]:
    """Decode a batch of chunks, writing each wanted frame as PNG + JPEG thumbnail through the encode pool;
    at most `task.encode_slots` stills of this batch are in memory at once."""
    import cv2

    cv2.setNumThreads(1)
    keep_frame_buffers_in_heap()
    inp = _Input(task.source, task.liveness_only)
    scalers = Scalers()
    sem = threading.Semaphore(max(1, task.encode_slots))
    outs: list[DecodeOut] = []
    try:
        for spec in task.chunks:
            outs.append(_decode_chunk(inp, task, spec, scalers, sem))
            if on_chunk is not None:
                on_chunk(outs[-1])
        return outs
    finally:
        inp.close()


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


@dataclass
class SceneOut:
    chunk_id: int
    pts: np.ndarray
    diffs: np.ndarray  # diffs[i] = mean |frame i - frame i-1|; diffs[0] is NaN (needs the previous chunk)
    first: np.ndarray | None
    last: np.ndarray | None
    problems: list[str]


def scene_chunk(task: SceneTask) -> SceneOut:
    """Decode every frame of a range into tiny grey images and score consecutive differences.

    Rotation does not change a mean absolute difference, so scenes are scored on stored pixels.
    """
    pts: list[int] = []
    diffs: list[float] = []
    prev: np.ndarray | None = None
    first: np.ndarray | None = None
    problems: list[str] = []
    noise: set[int] = set()  # log lines the seek caused (see decode_log.seek_noise)
    inp = _Input(task.source)
    small = Scaler("gray", "AREA")
    stamps = _Stamps(task.source)

    def take(frames: list[av.VideoFrame]) -> bool:
        nonlocal prev, first
        for fr in frames:
            p = stamps.of(fr)
            if p is None or (task.lo is not None and p < task.lo):
                continue
            if task.hi is not None and p >= task.hi:
                return True
            cur = small(fr, task.small_w, task.small_h).astype(np.int16)
            diffs.append(float(np.abs(cur - prev).mean()) if prev is not None else float("nan"))
            if first is None:
                first = cur.copy()
            prev = cur
            pts.append(p)
        return False

    try:
        with av.logging.Capture(local=True) as logs:
            for pkt, cc in _frames(inp, task.seek_pts, problems):
                logged = len(logs)
                stamps.sent_packet(pkt)
                stop = take(_decode(cc, pkt if pkt.size else None, problems))
                noise.update(decode_log.seek_noise(logs, logged, task.seek_pts, presentation_ts(pkt)))
                if stop:
                    break
    finally:
        inp.close()
    return SceneOut(chunk_id=task.chunk_id, pts=np.asarray(pts, np.int64), diffs=np.asarray(diffs, np.float64),
                    first=first, last=prev, problems=decode_log.summarise(logs, noise) + sorted(set(problems)))


def stitch_scenes(tasks: list[SceneTask], outs: dict[int, SceneOut], label: str
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Join ranges scored side by side into one (pts, diffs, warnings) that does not depend on the split.

    A range whose seek overshot its start is scored again from the file's start (its first diff would be
    skewed), and each seam is re-scored from the edge frames of the two ranges. diffs[0] is NaN.
    """
    warnings: list[str] = []
    all_pts, all_diffs = [], []
    prev_last: np.ndarray | None = None
    for t in tasks:
        o = outs[t.chunk_id]
        if t.lo is not None and t.seek_pts is not None and (len(o.pts) == 0 or int(o.pts[0]) != t.lo):
            o = scene_chunk(replace(t, seek_pts=None))
        warnings += o.problems[:3]
        if len(o.pts) < t.expected:
            warnings.append(f"{label}: range {t.chunk_id} decoded {len(o.pts)} of {t.expected} frames")
        d = o.diffs.copy()
        if len(d) and prev_last is not None and o.first is not None:
            d[0] = float(np.abs(o.first - prev_last).mean())
        prev_last = o.last if o.last is not None else prev_last
        all_pts.append(o.pts)
        all_diffs.append(d)
    pts = np.concatenate(all_pts) if all_pts else np.zeros(0, np.int64)
    return pts, (np.concatenate(all_diffs) if all_diffs else np.zeros(0)), warnings


def run_task(task: DecodeTask | SceneTask, on_chunk: OnChunk | None = None) -> list[DecodeOut] | SceneOut:
    """Single entry point for executors, so decode batches and scene scans share one pool."""
    if isinstance(task, DecodeTask):
        return decode_batch(task, on_chunk)
    return scene_chunk(task)

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
Opening, seeking and the times of decoded frames are in demux.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import av.logging
import numpy as np

from pipeline.frames import decode_log
from pipeline.frames.allocator import keep_frame_buffers_in_heap
from pipeline.frames.demux import Input, Source, Stamps, frames_from
from pipeline.frames.pixels import Scaler, Scalers, rotation_cw, thumbnail
from pipeline.frames.png import rotate_upright
from pipeline.frames.probe import presentation_ts
from pipeline.frames.stills import StillOut, encode_pool, write_still

EOF_WINDOW = 24  # > H.264's maximum reorder depth (16), so the frame shown last is always decoded


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


def _decode_chunk(inp: Input, task: DecodeTask, spec: ChunkSpec, scalers: Scalers,
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
    stamps = Stamps(task.source)

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
        for pkt, cc in frames_from(inp, spec.seek_pts, problems):
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
    inp = Input(task.source, task.liveness_only)
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
    inp = Input(task.source)
    small = Scaler("gray", "AREA")
    stamps = Stamps(task.source)

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
            for pkt, cc in frames_from(inp, task.seek_pts, problems):
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

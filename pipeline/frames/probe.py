"""Probe the container once, in-process: stream facts plus every video packet's pts and key flag.

The packet listing is demux-only (no decoding), so it is cheap even for an hour of footage, and it gives
the exact presentation timestamps we later select frames by. It uses the same libavformat (PyAV's) as the
decoders, so the pts we plan with are exactly the pts the decoders report; and no ffprobe process is
started (~0.1 s of dynamic linking each time here).
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import av.logging
import numpy as np

from pipeline.frames.bitstream import PacketSyntax, Taint
from pipeline.frames.errors import ExtractionError, NotVideoError
from pipeline.frames.nal import HevcLayers
from pipeline.frames.refresh import UNKNOWN, refresh_frames

_TRUNCATION_HINTS = ("moov atom not found",)
_ADDR = re.compile(r" @ 0x[0-9a-f]+")
_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC: cover art, not footage
RAW_STREAMS = frozenset({"h264", "hevc"})  # libavformat's demuxers for Annex B files with no container


def clean_log_line(line: str) -> str:
    """Drop heap addresses from libav log lines so recorded warnings are identical run to run."""
    return _ADDR.sub("", line).strip()


def presentation_ts(item: av.Packet | av.VideoFrame) -> int | None:
    """The pts frames are planned and selected by; the dts when the container gives no pts."""
    return item.pts if item.pts is not None else item.dts


CONCEALED_SPAN = "the decoder concealed errors in them, or in a picture they are predicted from"


@dataclass(frozen=True)
class VideoInfo:
    """What the planner and decoders need to know about one video stream."""

    path: str
    stream_index: int
    codec: str
    container: str
    width: int
    height: int
    time_base: Fraction
    avg_fps: float
    frame_pts: np.ndarray  # int64, sorted presentation order, readable frames only
    key_pts: np.ndarray  # int64, sorted, subset of frame_pts
    frames_in_index: int
    warnings: tuple[str, ...] = field(default_factory=tuple)
    moov_missing: bool = False
    reorder_depth: int = 0  # frames the decoder holds back for reordering, as a full stream probe finds it
    # no frame refers to an unreferenced one, so the decoders may skip those they do not keep: H.264 always
    # (nal_ref_idc 0), HEVC when the packet listing found them all in the top temporal sub-layer (nal.py)
    skip_unreferenced: bool = False
    pix_fmt: str = ""  # the decoder's pixel format (e.g. yuv420p, yuv420p10le): stills are 8-bit RGB whatever it is
    # packets whose coded data breaks the codec's syntax (pts, what is wrong), and the pictures decoded from them
    bitstream_damage: tuple[tuple[int | None, str], ...] = ()  # the first bitstream.NAMED of them
    damaged_pts: frozenset[int] = frozenset()
    damaged_packets: int = 0  # all of them
    # pts of the shown pictures in decode order (the packet listing's order): how damage reaches later pictures
    decode_order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # the most a keyframe's pts exceeds its dts (B-frames): MPEG-TS/PS seek by dts, so a seek to a keyframe's
    # pts lands past it; a seek is made again this much earlier (demux._demux_from)
    key_lead: int = 0
    # keyframes that are gradual refresh points (refresh.py): (pts, pictures the refresh takes or refresh.UNKNOWN,
    # clean point: the first pts a decode from it gets right, None: not before the end)
    refresh_points: tuple[tuple[int, int, int | None], ...] = ()

    def seek_key(self, pts: int) -> int | None:
        """The keyframe to decode from to get the frame at `pts` right (None: from the start): the last one at or
        before it, or for refresh points the last whose refresh is complete by then."""
        clean = {k: c for k, _, c in self.refresh_points}
        for k in self.key_pts[:int(np.searchsorted(self.key_pts, pts, side="right"))][::-1]:
            c = clean.get(int(k), int(k))
            if c is not None and c <= pts:
                return int(k)
        return None

    @property
    def stamps_in_decode_order(self) -> bool:
        """The container stamps packets in decode order although the codec reorders frames (H.264 with B-frames in
        AVI): a decoded frame's own stamp is then not its presentation time (demux.Stamps)."""
        order = self.decode_order
        return bool(self.reorder_depth > 0 and len(order) > 1 and np.all(np.diff(order) > 0))

    @property
    def first_pts(self) -> int:
        return int(self.frame_pts[0]) if len(self.frame_pts) else 0

    def offset_of(self, pts: int) -> float:
        return float((pts - self.first_pts) * self.time_base)

    def pts_time(self, pts: int) -> float:
        return float(pts * self.time_base)

    def summary(self, concealed: frozenset[int] = frozenset()) -> dict:
        """The record of the probe; `concealed` as for `damaged_spans`."""
        return {"codec": self.codec, "container": self.container, "width": self.width, "height": self.height,
                "time_base": f"{self.time_base.numerator}/{self.time_base.denominator}",
                "avg_fps": self.avg_fps, "stream_index": self.stream_index, "keyframes": int(len(self.key_pts)),
                "first_pts": self.first_pts, "pix_fmt": self.pix_fmt,
                "damaged_packets": self.damaged_packets, "damaged_spans": self.damaged_spans(concealed=concealed),
                **({"refresh_keyframes": len(self.refresh_points)} if self.refresh_points else {})}

    def damaged_spans(self, limit: int = 500, concealed: frozenset[int] = frozenset()) -> list[dict]:
        """Runs of consecutive pictures decoded from damaged data, as offsets (s) from the first frame to the end
        of the run's last picture: the time the footage shows something other than what was recorded. The
        timeline puts them on the clock; `limit` keeps a badly damaged file's record small (the count stays).
        `concealed`: pictures a decoding found damaged (the decoder concealed errors in them or in one they are
        predicted from), which the coded data's syntax may not show."""
        marked = self.damaged_pts | concealed
        if not marked or not len(self.frame_pts):
            return []
        pts = np.fromiter(sorted(marked), np.int64)
        idx = np.searchsorted(self.frame_pts, pts)
        ok = idx < len(self.frame_pts)
        idx = idx[ok][self.frame_pts[idx[ok]] == pts[ok]]  # pictures someone sees (not dropped by an edit list)
        if not idx.size:
            return []
        breaks = np.flatnonzero(np.diff(idx) != 1)
        starts, ends = np.concatenate(([0], breaks + 1)), np.concatenate((breaks, [idx.size - 1]))
        frame = 1 / self.avg_fps if self.avg_fps > 0 else 0.0
        out = []
        for a, b in zip(idx[starts][:limit], idx[ends][:limit], strict=True):
            first, last = int(self.frame_pts[a]), int(self.frame_pts[b])
            end = self.offset_of(int(self.frame_pts[b + 1])) if b + 1 < len(self.frame_pts) else \
                self.offset_of(last) + frame
            problem = next((why for p, why in self.bitstream_damage if p is not None and first <= p <= last), None)
            if problem is None:
                problem = CONCEALED_SPAN if any(first <= p <= last for p in concealed) else \
                    self.bitstream_damage[0][1] if self.bitstream_damage else ""
            out.append({"start": round(self.offset_of(first), 6), "end": round(end, 6), "pictures": int(b - a + 1),
                        "problem": problem})
        return out

    def damage_warnings(self) -> list[str]:
        """What the packet listing found broken in the coded data (bitstream.py), in words an examiner can act
        on: where, what, and which pictures carry it."""
        if not self.bitstream_damage:
            return []
        times = [f"{self.offset_of(p):.3f}s" for p, _ in self.bitstream_damage if p is not None]
        first = self.bitstream_damage[0][1]
        shown = ", ".join(times[:8]) + (f" and {self.damaged_packets - 8} more" if self.damaged_packets > 8 else "")
        return [f"the coded data of {self.damaged_packets} packet(s) is damaged (bytes zeroed, cut or missing, "
                f"as bad sectors and cut-off copies leave them) at {shown or 'untimed packets'} "
                f"(first: {first}); {len(self.damaged_pts)} picture(s) are decoded from damaged data, up to the next "
                "keyframe after each, and do not show what was recorded"]

    def deeper_than_stills(self) -> str | None:
        """A warning when the source holds more than 8 bits a sample: the stills' 8-bit RGB rounds them."""
        try:
            depth = max(c.bits for c in av.VideoFormat(self.pix_fmt).components) if self.pix_fmt else 8
        except (ValueError, TypeError):
            return None
        if depth <= 8:
            return None
        return (f"the source's pixels are {depth}-bit ({self.pix_fmt}); stills are 8-bit RGB, so swscale rounds "
                "each sample: a still is faithful to the frame as an 8-bit picture, not to every bit of the source")


def _log_lines(logs: list[tuple[int, str, str]]) -> list[str]:
    return [clean_log_line(f"[{name}] {msg}") for level, name, msg in logs if level <= av.logging.WARNING]


def probe(source: Path) -> VideoInfo:
    """Probe `source`; raises NotVideoError when there is no video stream to decode.

    Two opens run side by side: this thread's full open (stream analysis, errors, stream facts) and a
    quick open that lists every packet; every extraction waits on the probe before anything else runs in
    parallel. Rotation is not probed: each decoded frame carries its own display matrix.
    """
    source = Path(source)
    if not source.is_file():
        raise ExtractionError(f"{source}: no such file; check the exhibit path")
    with ThreadPoolExecutor(1, thread_name_prefix="probe") as pool:
        listing = pool.submit(_list_on_quick_open, source, None)
        with av.logging.Capture(local=True) as logs:
            try:
                container = av.open(str(source))
            except av.FFmpegError as e:
                lines = _log_lines(list(logs))
                if any(h in line for line in lines for h in _TRUNCATION_HINTS) and _looks_like_mp4(source):
                    return _moov_missing(source, "; ".join(lines))
                last = lines[-1] if lines else str(e)
                raise NotVideoError(f"{source}: cannot be read as media ({last}); is this really a video file?") from e
            with container:
                st = _video_stream(container, source)
                if st.time_base is None or st.time_base <= 0:
                    raise ExtractionError(f"{source}: video stream has no usable time base")
                info = dict(path=str(source), stream_index=st.index, codec=st.codec_context.name,
                            container=container.format.name, width=st.codec_context.width,
                            height=st.codec_context.height, time_base=Fraction(st.time_base),
                            avg_fps=float(st.average_rate or st.guessed_rate or 0), frames_in_index=int(st.frames or 0),
                            reorder_depth=int(st.codec_context.reorder_depth),
                            pix_fmt=str(st.codec_context.pix_fmt or ""))
        found, list_logs = _agreed(listing, source, info["stream_index"])
    lines = dict.fromkeys(_log_lines(list(logs)) + list_logs)
    warnings = [f"probe: {line}" for line in lines] + found.warnings
    if len(found.frame_pts) == 0:
        if info["container"] in RAW_STREAMS and found.untimed:
            raise NotVideoError(
                f"{source}: a raw {info['codec'].upper()} elementary stream (no container, so no timestamps): its "
                "frames cannot be placed in time, so no still can say when it was recorded. Wrap it without "
                "re-encoding at the camera's frame rate (e.g. `ffmpeg -framerate 25 -i <file> -c copy out.mp4`), "
                "on a copy, and ingest the result as a derived exhibit that names this one")
        raise NotVideoError(f"{source}: the video stream has no readable frames")
    info["frames_in_index"] = info["frames_in_index"] or len(found.frame_pts)
    if info["container"] == "avi" and len(found.frame_pts) > 1:
        # AVI's stream length counts ticks of its time base, which ffmpeg's muxer makes a half frame with B-frames
        step = int(np.median(np.diff(found.frame_pts)))
        if step > 1 and info["frames_in_index"] > len(found.frame_pts):
            info["frames_in_index"] = -(-info["frames_in_index"] // step)
    return VideoInfo(**info, frame_pts=found.frame_pts, key_pts=found.key_pts,
                     warnings=tuple(dict.fromkeys(warnings)),
                     skip_unreferenced=info["codec"] == "h264" or found.hevc_skippable,
                     bitstream_damage=found.damaged, damaged_pts=found.affected, damaged_packets=found.damaged_count,
                     decode_order=found.decode_order, key_lead=found.key_lead, refresh_points=found.refresh_points)


class _Listing(NamedTuple):
    """What one demux pass over the video packets finds."""

    frame_pts: np.ndarray
    key_pts: np.ndarray
    warnings: list[str]
    hevc_skippable: bool  # nal.HevcLayers' answer (False for other codecs)
    untimed: int  # packets with neither pts nor dts (all of them in a raw elementary stream)
    damaged: tuple[tuple[int | None, str], ...] = ()  # bitstream.Taint: packets whose coded data is damaged
    affected: frozenset[int] = frozenset()  # pts of the pictures decoded from them
    damaged_count: int = 0  # all damaged packets (`damaged` names the first bitstream.NAMED)
    decode_order: np.ndarray = np.zeros(0, np.int64)  # shown pictures' pts as demuxed
    key_lead: int = 0  # max (pts - dts) over keyframes
    refresh_points: tuple[tuple[int, int, int | None], ...] = ()  # VideoInfo.refresh_points


def _list_on_quick_open(source: Path, stream_index: int | None) -> tuple[int, _Listing, list[str]]:
    """List the video packets on a container opened without analysis decoding (the listing needs none).
    The open's own log lines repeat the full open's, plus 'could not find codec parameters' for the
    skipped analysis, so only the demux pass's lines are kept."""
    with av.logging.Capture(local=True):
        container = av.open(str(source), options={"skip_frame": "all"})
    with container, av.logging.Capture(local=True) as logs:
        stream = container.streams[stream_index] if stream_index is not None else _video_stream(container, source)
        index = stream.index  # read while open: a closed container's streams are freed memory
        listing = _packets(container, stream)
    return index, listing, _log_lines(list(logs))


def _agreed(future: Future[tuple[int, _Listing, list[str]]], source: Path, stream_index: int
            ) -> tuple[_Listing, list[str]]:
    """The side listing when it chose the full open's stream; otherwise (or when its open failed) list
    that stream again."""
    try:
        index, listing, lines = future.result()
        if index == stream_index:
            return listing, lines
    except (av.FFmpegError, NotVideoError, IndexError):
        pass
    try:
        _, listing, lines = _list_on_quick_open(source, stream_index)
    except (av.FFmpegError, IndexError) as e:
        raise ExtractionError(f"{source}: video stream {stream_index} cannot be read on its own ({e})") from e
    return listing, lines


def _video_stream(container: av.container.InputContainer, source: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & _ATTACHED_PIC]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise NotVideoError(f"{source}: no video stream (streams: {', '.join(kinds)}); nothing to extract "
                            "frames from")
    return streams[0]


def _shown(pkt: av.Packet) -> bool:
    """A packet that becomes a frame someone sees: not the flush marker, not dropped by the edit list."""
    return bool(pkt.size) and not pkt.is_discard


def _looks_like_mp4(source: Path) -> bool:
    """An ISO-BMFF file starts with a box header; text renamed to .mp4 also makes libav say 'moov not found'."""
    with open(source, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[4:8] in (b"ftyp", b"mdat", b"free", b"wide", b"skip", b"moov")


def _moov_missing(source: Path, err: str) -> VideoInfo:
    empty = np.zeros(0, dtype=np.int64)
    msg = (f"{source}: MP4 'moov' index atom is missing (recording was cut off before the camera finalised the "
           "file); no frame can be located without it. Try an index-rebuild tool (e.g. untrunc) with a reference "
           "file from the same camera, on a copy, and ingest the result as a derived exhibit.")
    return VideoInfo(path=str(source), stream_index=-1, codec="?", container="mov,mp4", width=0, height=0,
                     time_base=Fraction(1, 1), avg_fps=0.0, frame_pts=empty, key_pts=empty, frames_in_index=0,
                     warnings=(msg, f"probe: {clean_log_line(err)}"), moov_missing=True)


def _packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> _Listing:
    pts: list[int] = []
    keys: list[int] = []
    no_pts = 0
    key_lead = 0
    warnings: list[str] = []
    cc = stream.codec_context
    layers = HevcLayers(cc.extradata) if cc.name == "hevc" else None
    syntax = PacketSyntax.for_stream(cc.name, cc.extradata)
    taint = Taint()
    gdr_syntax = syntax if cc.name == "h264" else None  # refresh.py reads H.264 keyframes only
    refresh_points: list[tuple[int, int, int]] = []  # (pts, index among shown packets, pictures the refresh takes)
    try:
        for pkt in container.demux(stream):
            gdr = None
            if pkt.size:
                data = memoryview(pkt)
                if layers is not None:
                    layers.packet(data)
                problem = syntax.check(data) if syntax is not None else None
                if pkt.is_corrupt:  # e.g. MPEG-TS continuity errors: container data missing
                    problem = problem or "the demuxer marked it corrupt (data missing from the container)"
                referenced = problem is None or syntax is None or syntax.referenced(data)
                if gdr_syntax is not None and pkt.is_keyframe and problem is None:
                    gdr = refresh_frames(data, gdr_syntax.length_size)
                taint.packet(presentation_ts(pkt), pkt.is_keyframe, problem, referenced, refresh=gdr)
            if not _shown(pkt):
                continue
            v = presentation_ts(pkt)
            if v is None:
                no_pts += 1
                continue
            if pkt.is_keyframe and gdr is not None:
                refresh_points.append((v, len(pts), gdr))
            pts.append(v)
            if pkt.is_keyframe:
                keys.append(v)
                if pkt.dts is not None and pkt.pts is not None:
                    key_lead = max(key_lead, pkt.pts - pkt.dts)
    except av.FFmpegError as e:
        warnings.append(f"demuxing stopped early: {e}")
    if no_pts:
        warnings.append(f"{no_pts} packets carry no timestamp and were ignored")
    frame_pts = _sorted_unique(pts)
    if len(frame_pts) != len(pts):
        warnings.append(f"{len(pts) - len(frame_pts)} packets share a pts with another; kept one frame per pts")
    key_pts = _sorted_unique(keys)
    return _Listing(frame_pts, key_pts, warnings, layers is not None and layers.nonref_skippable, no_pts,
                    tuple(taint.damaged), frozenset(taint.affected), taint.count, np.asarray(pts, dtype=np.int64),
                    key_lead, _clean_points(refresh_points, pts))


def _clean_points(points: list[tuple[int, int, int]], pts: list[int]) -> tuple[tuple[int, int, int | None], ...]:
    """VideoInfo.refresh_points from (refresh keyframe pts, its index among shown packets, pictures the refresh
    takes): the clean point is the last pts of those pictures, or the next keyframe when the count is unknown."""
    keys = sorted(p for p, _, _ in points)
    out = []
    for p, i, frames in points:
        if frames == UNKNOWN:
            later = [k for k in keys if k > p]
            clean = later[0] if later else None
        else:
            clean = max(pts[i:i + frames + 1]) if i + frames < len(pts) else None
        out.append((p, frames, clean))
    return tuple(out)


def _sorted_unique(values: list[int]) -> np.ndarray:
    """`np.unique` of int64 timestamps without its first-call import of numpy.ma (~20 ms of every command)."""
    a = np.sort(np.asarray(values, dtype=np.int64))
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if a.size else a

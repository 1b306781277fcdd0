"""Turn the walker's events into muxed packets, a rebuilt timeline, and the result's bookkeeping.

A skipped range is only judged once the next video sample arrives: if that sample continues the same coded
video sequence (frame_num / picture order count one step on), no picture was lost and the range was some
other track (audio we have no configuration for, timecode, GPS); otherwise the count of lost pictures
(exact from frame_num/POC within a sequence, estimated from bytes across a keyframe) moves the timeline on,
and the pictures until the next keyframe are marked unreliable: they reference pictures that are gone.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from pipeline.recovery.config import AudioConfig, VideoConfig
from pipeline.recovery.mux import Muxer, probe_keyframe
from pipeline.recovery.nal import NalInfo, Syntax
from pipeline.recovery.result import RecoveryResult, SkippedRange
from pipeline.recovery.timing import VideoClock
from pipeline.recovery.walker import AudioSample, Event, Skipped, VideoSample
from pipeline.recovery.window import Window

Progress = Callable[[int, int], None]
_PROGRESS_EVERY = 8 << 20
_PENDING_AUDIO = 1024
_DEFAULT_FPS = Fraction(25)

LOST = "damaged: video frames lost"
AUDIO_DAMAGE = "not recognised as video or AAC (damaged audio, or a track the reference does not have)"
OTHER_TRACK = "not video: audio or another track, with no configuration to recover it"
TAIL = "incomplete sample at the end of the data"
TAIL_GARBAGE = "unparseable data at the end (damaged, or a track the reference does not have)"
ZEROS = "zero bytes (space reserved by the camera, never written)"
BEFORE_KEY = "video before the first keyframe (cannot be decoded)"
DAMAGE = (LOST, AUDIO_DAMAGE, TAIL_GARBAGE)


class Session:
    def __init__(self, out: Path, video: VideoConfig, audio: AudioConfig | None, reference: Path | None,
                 syntax: Syntax, res: RecoveryResult, progress: Progress | None, total: int, max_sample: int,
                 other_tracks: bool) -> None:
        self.out, self.video, self.audio, self.reference, self.res = out, video, audio, reference, res
        self.syntax = syntax  # shared with the walker: holds in-band parameter sets as they are met
        self.progress, self.total, self.done, self._reported = progress, total, 0, 0
        self.max_sample, self.other_tracks = max_sample, other_tracks
        self.mux: Muxer | None = None
        self.clock: VideoClock | None = None
        self.pending_audio: list[bytes] = []
        self.pending_skips: list[Skipped] = []
        self.audio_n = 0
        self.after_gap = False
        self.last_ref_fn: int | None = None
        self.last_poc: int | None = None
        self.poc_step = 1  # POC distance between consecutive pictures, as last seen without a gap
        self.deferred_audio: list[bytes] = []  # AAC frames after a skipped range, placed once its gap is known
        self.keyframe_index: list[int] = []
        self.segments: list[dict] = []
        self.frame_s = Fraction(0)
        self.sps: dict | None = None

    # ---- events ----------------------------------------------------------------------------------------
    def handle(self, ev: Event, win: Window) -> None:
        if isinstance(ev, VideoSample):
            self._video(ev, win)
            start, end = ev.offset, ev.offset + ev.size
        elif isinstance(ev, AudioSample):
            data = win.get(ev.offset, ev.size)
            if self.pending_skips and len(self.deferred_audio) < _PENDING_AUDIO:
                self.deferred_audio.append(data)
            else:
                self._audio(data)
            self.res.audio_frames += 1
            start, end = ev.offset, ev.offset + ev.size
            self.res.bytes_used.add(start, end)
        else:
            self.pending_skips.append(ev)
            start, end = ev.start, ev.end
        self.done += end - start
        if self.progress and self.done - self._reported >= _PROGRESS_EVERY:
            self._reported = self.done
            self.progress(self.done, self.total)

    def _video(self, ev: VideoSample, win: Window) -> None:
        data = win.get(ev.offset, ev.size)
        if self.mux is None:
            if not ev.key:
                self._flush_skips(0)
                self._record_skip(ev.offset, ev.offset + ev.size, BEFORE_KEY)
                return
            self._open(data)
        assert self.mux is not None and self.clock is not None
        lost = self._frames_lost(ev.first) if self.pending_skips else 0
        if self.pending_skips:
            self._flush_skips(lost)
        if lost or not self.segments:
            self.segments.append({"first_frame": self.res.frames, "offset": ev.offset,
                                  "start_s": None, "frames": 0})
        pts, dts = self.clock.next(ev.first)
        d = self.video.frame_duration
        self.mux.video(data, pts * d, dts * d, d, ev.key)
        seg = self.segments[-1]
        if seg["start_s"] is None:
            seg["start_s"] = float(pts * self.frame_s)
        seg["frames"] += 1
        n = self.res.frames
        self.res.frames += 1
        self.res.bytes_used.add(ev.offset, ev.offset + ev.size)
        self._continuity(ev.first, adjacent=not lost)
        self._flush_deferred_audio()
        if ev.key:
            self.res.keyframes += 1
            self.keyframe_index.append(n)
            self.after_gap = False
        elif self.after_gap:
            self._mark_unreliable(n)

    def _open(self, first_key: bytes) -> None:
        probe = probe_keyframe(self.video, first_key)
        v = self.video
        v.width, v.height = probe.width, probe.height
        if v.frame_rate_source == "assumed":
            fps = probe.fps or _DEFAULT_FPS
            v.time_base, v.frame_duration = 1 / fps, 1
            v.frame_rate_source = "stream timing information" if probe.fps else "assumed (25 fps)"
            if not probe.fps:
                self.res.warnings.append("the stream carries no frame rate: 25 fps assumed, timestamps may be off")
        self.frame_s = v.time_base * v.frame_duration
        self.sps = self.syntax.sps.get(0) or next(iter(self.syntax.sps.values()), None)
        poc_bits, step = _poc_shape(v.codec, self.sps)
        self.clock = VideoClock(probe.reorder, poc_bits, step)
        if probe.reorder and not self.clock.reorders:
            self.res.warnings.append("the SPS allows reordered pictures but carries no picture order count to "
                                     "order them by: frames are presented in decode order")
        self.mux = Muxer(self.out, v, self.audio, self.reference, first_key)
        for data in self.pending_audio:
            self._audio(data)
        self.pending_audio = []

    def _audio(self, data: bytes) -> None:
        a = self.audio
        if a is None:
            return
        if self.mux is None:
            if len(self.pending_audio) < _PENDING_AUDIO:
                self.pending_audio.append(data)
            return
        start = round(a.start_offset / a.time_base)
        self.mux.audio(data, start + self.audio_n * a.frame_duration, a.frame_duration)
        self.audio_n += 1

    # ---- continuity and skipped ranges -----------------------------------------------------------------
    def _continuity(self, first: NalInfo, adjacent: bool) -> None:
        if first.frame_num is not None and first.ref:
            self.last_ref_fn = first.frame_num
        if self.video.codec == "hevc":
            poc = 0 if first.poc_reset and first.poc_lsb is None else first.poc_lsb
            if adjacent and poc is not None and self.last_poc is not None and not first.poc_reset and self.sps:
                self.poc_step = (poc - self.last_poc) % (1 << self.sps["log2_max_poc_lsb"]) or self.poc_step
            self.last_poc = poc

    def _frames_lost(self, first: NalInfo) -> int:
        """Pictures missing between the last recovered picture and this one."""
        if self.res.frames == 0:
            return 0
        sps = self.sps
        if not first.poc_reset and self.clock is not None and not self.clock.reorders:
            if self.video.codec == "h264" and sps and first.frame_num is not None and self.last_ref_fn is not None:
                modulo = 1 << sps["log2_max_frame_num"]
                return (first.frame_num - self.last_ref_fn - 1) % modulo
            if self.video.codec == "hevc" and sps and first.poc_lsb is not None and self.last_poc is not None:
                delta = (first.poc_lsb - self.last_poc) % (1 << sps["log2_max_poc_lsb"])
                return max(0, round(delta / self.poc_step) - 1)
        per_frame = self.res.bytes_used.total / self.res.frames  # audio included: bytes per frame period
        return round(sum(s.end - s.start for s in self.pending_skips) / per_frame)

    def _flush_skips(self, lost: int) -> None:
        if lost:
            reason = LOST
        elif self.audio is not None and not self.other_tracks and self.res.frames:
            reason = AUDIO_DAMAGE
        else:
            reason = OTHER_TRACK
        for i, s in enumerate(self.pending_skips):
            self._record_skip(s.start, s.end, ZEROS if s.zeros and not lost else reason, lost if i == 0 else 0)
        self.pending_skips = []
        if lost and self.clock is not None:
            self.clock.gap(lost)
            if self.audio is not None:
                self.audio_n += round(lost * self.frame_s / (self.audio.time_base * self.audio.frame_duration))
            self.after_gap = True

    def _record_skip(self, start: int, end: int, reason: str, lost: int = 0) -> None:
        skipped = self.res.bytes_skipped
        if skipped and skipped[-1].end == start and skipped[-1].reason == reason:
            skipped[-1].end = end
            skipped[-1].estimated_frames_lost += lost
        else:
            skipped.append(SkippedRange(start, end, reason, lost))

    def _mark_unreliable(self, n: int) -> None:
        runs = self.res.unreliable_frames
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])

    def mark_corrupt(self, frame: int) -> None:
        """A picture the verification decode flagged: it and the pictures after it, up to a keyframe."""
        nxt = next((k for k in self.keyframe_index if k > frame), self.res.frames)
        for n in range(frame, nxt):
            if not any(a <= n <= b for a, b in self.res.unreliable_frames):
                self._mark_unreliable(n)
        self.res.unreliable_frames.sort()

    def _flush_deferred_audio(self) -> None:
        for data in self.deferred_audio:
            self._audio(data)
        self.deferred_audio = []

    def finish_walk(self) -> None:
        """End of one mdat: place leftover audio, judge trailing skipped ranges, report progress."""
        self._flush_deferred_audio()
        for s in self.pending_skips:
            big = s.end - s.start > self.max_sample
            self._record_skip(s.start, s.end, ZEROS if s.zeros else TAIL_GARBAGE if big else TAIL)
        self.pending_skips = []
        if self.progress:
            self.progress(self.done, self.total)

    def frame_at(self, pts_s: float) -> int | None:
        """Recovered frame index (decode order) shown at `pts_s` on the output timeline."""
        for seg in reversed(self.segments):
            if seg["start_s"] is not None and pts_s >= seg["start_s"] - 1e-6:
                k = round((pts_s - seg["start_s"]) / float(self.frame_s))
                return seg["first_frame"] + k if k < seg["frames"] else None
        return None

    def close(self) -> None:
        if self.mux is not None:
            self.mux.close()

    def abort(self) -> None:
        self.close()
        self.out.unlink(missing_ok=True)


def _poc_shape(codec: str, sps: dict | None) -> tuple[int | None, int]:
    """(POC lsb bits, POC step between consecutive pictures): what the clock needs to order B-frames."""
    if sps is None:
        return None, 1
    if codec == "h264":
        return (sps["log2_max_poc_lsb"] if sps["poc_type"] == 0 else None), 2
    return sps["log2_max_poc_lsb"], 1

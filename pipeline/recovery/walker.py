"""Walk an mdat sample by sample: video access units, AAC frames between them, and what is neither.

At each position the walker tries, in order: a video access unit (length-prefixed NAL units that parse, with
a slice naming a known parameter set), then an AAC frame (when the reference gave an audio configuration).
Either is only believed if what follows it is also believable (another access unit, an AAC frame, or the
end), so a sample whose tail was overwritten is not kept. When nothing fits, the walker resynchronises: a
regex finds candidate NAL headers in C, and the first candidate that passes the same checks is where
walking resumes; the bytes in between are reported as skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.recovery.audio import AacSplitter
from pipeline.recovery.nal import INSPECT_BYTES, NalInfo, Syntax
from pipeline.recovery.window import Window

_SCAN_BLOCK = 1 << 20
_MAX_PARAM_SET = 4096


@dataclass(frozen=True)
class VideoSample:
    offset: int
    size: int
    key: bool
    slices: int
    first: NalInfo  # the first slice: slice type, POC lsb, frame_num
    param_sets: int  # SPS/PPS/VPS units carried in-band in this access unit


@dataclass(frozen=True)
class AudioSample:
    offset: int
    size: int


@dataclass(frozen=True)
class Skipped:
    start: int
    end: int
    zeros: bool  # every byte is zero: space a camera reserved but never filled, not damage


Event = VideoSample | AudioSample | Skipped


@dataclass(frozen=True)
class _AU:
    size: int
    key: bool
    slices: int
    first: NalInfo
    stop: str  # 'next' (a new access unit follows), 'end', 'cut' (the next NAL unit runs past the end), 'other'
    next_info: NalInfo | None
    param_sets: int


class Walker:
    def __init__(self, window: Window, syntax: Syntax, length_size: int, max_sample: int,
                 audio: AacSplitter | None = None, data_cut: bool = True) -> None:
        self._win = window
        self._syn = syntax
        self._ls = length_size
        self._max = max_sample
        self._audio = audio
        self._cut = data_cut  # the data ends where the file was cut, not where the camera finished a sample
        self._typical_slices = 1
        self._candidates = _candidate_regex(syntax, length_size)
        self.end = window.end

    # ---- one access unit -------------------------------------------------------------------------------
    def _nal_at(self, p: int) -> tuple[int, NalInfo | None]:
        """(payload length, judgement) of the NAL unit whose length prefix is at `p`; -1 if the data ends first."""
        head = self._win.get(p, self._ls + INSPECT_BYTES)
        if len(head) < self._ls + self._syn.header_len:
            return -1, None
        n = int.from_bytes(head[:self._ls], "big")
        if n < self._syn.header_len + 1 or n > self._max:
            return n, None
        return n, self._syn.inspect(head[self._ls:self._ls + n])

    def _access_unit(self, pos: int) -> _AU | None:
        p, slices, key, first, param_sets = pos, 0, False, None, 0
        stop, next_info = "other", None
        while True:
            if p >= self.end:
                stop = "end"
                break
            n, info = self._nal_at(p)
            if info is None:
                if n < 0 and first is not None:
                    stop = "cut"  # the data ends inside the next length prefix
                break
            if first is not None and (info.opens_au or (info.vcl and info.first_in_pic)):
                stop, next_info = "next", info
                break
            if info.vcl and first is None and not info.first_in_pic:
                return None  # starts in the middle of a picture
            if p + self._ls + n > self.end:
                stop, next_info = "cut", info
                break
            if info.param_set:
                if n > _MAX_PARAM_SET or self._syn.learn(self._win.get(p + self._ls, n)) is None:
                    break
                param_sets += 1
            if info.vcl:
                slices += 1
                key = key or info.key
                first = first or info
            p += self._ls + n
            if p - pos > self._max:
                return None
        if first is None:
            return None
        return _AU(p - pos, key, slices, first, stop, next_info, param_sets)

    def _follows(self, pos: int) -> bool:
        """Is what starts at `pos` believable: the end, a NAL unit that opens an access unit, or AAC?"""
        if pos >= self.end:
            return True
        _, info = self._nal_at(pos)
        if info is not None and (info.opens_au or (info.vcl and info.first_in_pic)):
            return True
        return self._audio is not None and self._audio.starts_frame(pos)

    def video_at(self, pos: int) -> VideoSample | None:
        snapshot = self._syn.snapshot()
        au = self._access_unit(pos)
        ok = au is not None and self._complete(pos, au)
        if not ok:
            self._syn.restore(snapshot)
            return None
        assert au is not None
        self._typical_slices = au.slices
        return VideoSample(pos, au.size, au.key, au.slices, au.first, au.param_sets)

    def _complete(self, pos: int, au: _AU) -> bool:
        if au.stop == "next":
            return True
        if au.stop == "other":
            # Not followed by a NAL unit: believable if AAC follows, or if we have no audio to check against.
            return self._audio is None or self._audio.starts_frame(pos + au.size)
        # At the end of the data: a later slice of this picture may be missing.
        if au.stop == "cut" and au.next_info is not None and au.next_info.vcl and not au.next_info.first_in_pic:
            return False
        return not self._cut or au.slices >= self._typical_slices

    def audio_at(self, pos: int) -> AudioSample | None:
        if self._audio is None:
            return None
        n = self._audio.frame_length(pos)
        if n is None or not self._follows(pos + n):
            return None
        return AudioSample(pos, n)

    # ---- resynchronisation -----------------------------------------------------------------------------
    def resync(self, pos: int) -> tuple[int, int | None]:
        """(First position at or after `pos` where a believable access unit starts, or the end; the end of the
        last non-zero byte before it, None if all are zero, so that a trailing run of zeros can be told apart)."""
        overlap = self._ls + 2
        q, nonzero_end = pos, None
        while q < self.end:
            block = self._win.get(q, _SCAN_BLOCK)
            for m in self._candidates.finditer(block):
                c = q + m.start()
                if self.video_at(c) is not None:
                    tail = block[:m.start()].rstrip(b"\x00")
                    return c, q + len(tail) if tail else nonzero_end
            tail = block.rstrip(b"\x00")
            nonzero_end = q + len(tail) if tail else nonzero_end
            if q + len(block) >= self.end:
                break
            q += max(1, len(block) - overlap)
        return self.end, nonzero_end

    # ---- the walk --------------------------------------------------------------------------------------
    def walk(self, start: int) -> Iterator[Event]:
        pos = start
        while pos < self.end:
            v = self.video_at(pos)
            if v is not None:
                yield v
                pos += v.size
                continue
            a = self.audio_at(pos)
            if a is not None:
                yield a
                pos += a.size
                continue
            nxt, nonzero_end = self.resync(pos + 1)
            if nonzero_end is None:
                nonzero_end = pos if self._win.get(pos, 1) == b"\x00" else pos + 1
            if nonzero_end > pos:
                yield Skipped(pos, nonzero_end, zeros=False)
            if nxt > nonzero_end:
                yield Skipped(nonzero_end, nxt, zeros=True)
            pos = nxt


def _candidate_regex(syntax: Syntax, length_size: int) -> re.Pattern[bytes]:
    """Positions whose bytes could be the length prefix and header of a NAL unit that opens an access unit."""
    cls = b"[" + b"".join(re.escape(bytes([b])) for b in syntax.opening_bytes()) + b"]"
    # A 4-byte length of a NAL unit under 16 MB starts with a zero byte; shorter prefixes can be anything.
    prefix = b"\x00" + b"." * (length_size - 1) if length_size == 4 else b"." * length_size
    second = b"[\x01-\x07]" if syntax.header_len == 2 else b""  # H.265: layer 0, TemporalId+1 in 1..7
    return re.compile(b"(?=" + prefix + cls + second + b")", re.DOTALL)

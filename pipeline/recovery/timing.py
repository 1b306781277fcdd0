"""Timestamps for recovered samples: the moov that held them is gone, so they are rebuilt.

Video samples get one frame duration each, in decode order. When the stream reorders pictures (B-frames),
presentation order follows the picture order count in each slice header: within a coded video sequence
(IDR to IDR) a picture is shown at the sequence's start plus its POC rank, and the decode timestamps are
shifted back by the reorder depth the SPS declares (as the encoder had them), so that no picture is decoded
after it is shown and the first picture is still shown at 0. Audio frames follow
each other at their fixed duration, starting where the reference's audio starts relative to its video.
"""

from __future__ import annotations

from pipeline.recovery.nal import NalInfo


class VideoClock:
    """(pts, dts) in frames for each access unit, in decode order."""

    def __init__(self, delay: int, poc_bits: int | None, poc_step: int) -> None:
        self._reorder = delay > 0 and poc_bits is not None
        self._max_lsb = 1 << (poc_bits or 0)
        self._step = max(1, poc_step)
        self._n = 0  # access units so far (decode order), including estimated gaps
        self._seq_base = 0  # display index of the current sequence's POC 0
        self._seq_max = -1  # highest display index used so far
        self._prev_lsb = 0
        self._prev_msb = 0
        self.delay = delay if self._reorder else 0  # dts runs this many frames ahead of pts, as the encoder had it
        self._gap = 0  # lost frames whose place a later IDR must keep (with reordering)
        self.adjusted = 0  # pictures whose POC would have put them before their decode time (bad POC step)

    @property
    def reorders(self) -> bool:
        return self._reorder

    @property
    def span(self) -> int:
        """Frames on the timeline so far, estimated gaps included."""
        return max(self._n, self._seq_max + 1)

    def gap(self, frames: int) -> None:
        """Frames believed lost in a skipped range: the timeline jumps by as many.

        With reordering, a picture that continues its sequence is placed by its POC, which already counts
        the lost ones; only the next IDR needs to keep their place.
        """
        if self._reorder:
            self._gap += frames
        else:
            self._n += frames

    def next(self, first: NalInfo) -> tuple[int, int]:
        n = self._n
        self._n += 1
        if not self._reorder:
            return n, n
        if first.poc_reset:  # IDR/BLA: a new coded video sequence, POC MSB 0
            self._seq_base = self._seq_max + 1 + self._gap
            self._n += self._gap
            n += self._gap
            self._gap = 0
            self._prev_lsb, self._prev_msb = first.poc_lsb or 0, 0
            poc = self._prev_lsb
        else:
            lsb = first.poc_lsb or 0
            msb = self._prev_msb
            if lsb < self._prev_lsb and self._prev_lsb - lsb >= self._max_lsb // 2:
                msb += self._max_lsb
            elif lsb > self._prev_lsb and lsb - self._prev_lsb > self._max_lsb // 2:
                msb -= self._max_lsb
            self._prev_lsb, self._prev_msb = lsb, msb
            poc = msb + lsb
        pts, dts = self._seq_base + poc // self._step, n - self.delay
        if pts < dts:  # the POC step is not what we assumed: keep the file muxable, say so
            self._seq_base += dts - pts
            pts = dts
            self.adjusted += 1
        self._seq_max = max(self._seq_max, pts)
        return pts, dts

"""Finding raw AAC frames between video samples.

Raw AAC in MP4 has no ADTS header and no length field: a frame's length is only known by parsing it to its
END element, which needs the full Huffman machinery. As untrunc does, we let libavcodec's AAC decoder do
the parsing: a prefix shorter than the frame fails to decode, any prefix at least as long decodes its first
frame. That predicate is monotone in the prefix length, so a binary search finds the frame's exact length
in ~11 trial decodes (~10 µs each). The decoder is only a parser here: its output is discarded and the
frame's bytes are muxed unchanged.

Prefixes longer than the frame make the decoder parse the following bytes as further frames, and garbage can
reconfigure it (a stray program config element once turned a mono decoder into a 29-channel one, after
which every real frame "failed"). So the decoder is reopened whenever its configuration drifts from the
reference's.
"""

from __future__ import annotations

import av
import av.error
import av.logging

from pipeline.recovery.window import Window

# ISO/IEC 14496-3 4.5.3.2: at most 6144 bits per channel in a raw_data_block; a little slack for FIL/DSE.
_MAX_BYTES_PER_CHANNEL = 768
_SLACK = 64


class AacSplitter:
    def __init__(self, window: Window, asc: bytes, channels: int, sample_rate: int) -> None:
        self._win = window
        self._asc = asc
        self._channels = channels
        self._rate = sample_rate
        self.max_frame = _MAX_BYTES_PER_CHANNEL * max(1, channels) + _SLACK
        self.trials = 0
        self.resets = 0
        self._dec = self._open()

    def _open(self) -> av.CodecContext:
        dec = av.CodecContext.create("aac", "r")
        dec.extradata = self._asc
        dec.open()
        return dec

    def _check_config(self) -> None:
        dec = self._dec
        if dec.layout.nb_channels != self._channels or dec.sample_rate not in (0, self._rate):
            self._dec = self._open()
            self.resets += 1

    def _first_frame_decodes(self, buf: bytes) -> bool:
        self.trials += 1
        try:
            with av.logging.Capture(local=True):  # failed trials are expected: keep them out of the logs
                frames = self._dec.decode(av.Packet(buf))
        except av.error.FFmpegError as exc:
            # avcodec_send_packet decodes the first frame; a later error is about bytes past it.
            return getattr(exc, "filename", None) != "avcodec_send_packet()"
        finally:
            self._check_config()
        return bool(frames) and frames[0].layout.nb_channels == self._channels

    def starts_frame(self, pos: int) -> bool:
        """Cheap check (one decode): does an AAC frame of the expected layout start at `pos`?"""
        return self._first_frame_decodes(self._win.get(pos, self.max_frame))

    def frame_length(self, pos: int) -> int | None:
        """Exact length of the AAC frame at `pos`, or None when none starts there."""
        buf = self._win.get(pos, self.max_frame)
        if len(buf) < 2 or not self._first_frame_decodes(buf):
            return None
        lo, hi = 1, len(buf)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._first_frame_decodes(buf[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return lo

"""Whether an HEVC stream's unreferenced pictures may be left undecoded without changing any other picture.

libavcodec's HEVC decoder, told to skip non-reference frames, drops every *sub-layer* non-reference
picture (NAL types TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, RSV_VCL_N10/12/14). H.265 only promises that no
picture of the *same* temporal sub-layer refers to one; a picture of a higher sub-layer still may. So
skipping is exact only when every such picture sits in the stream's top sub-layer (always the case for a
single-layer stream, what cameras and x265 write by default). `HevcLayers` watches every packet's first
picture NAL header during the probe's packet listing (a few microseconds a packet) and says so; anything it
cannot read (no picture NAL where one must be, a second layer, unknown framing) makes the answer "no".
"""

from __future__ import annotations

from pipeline.recovery.h265 import H265, sub_layer_non_ref

VCL_TYPES = range(32)  # picture NAL unit types (H.265 Table 7-1); the rest are parameter sets, SEI, AUD...
ANNEXB_WINDOW = 1 << 16  # bytes of an Annex B packet searched for its first picture NAL (SEI comes first)


class HevcLayers:
    """Feed `packet(data)` for every packet in decode order, then read `nonref_skippable`."""

    def __init__(self, extradata: bytes | None) -> None:
        # hvcC (MP4, MKV): NAL units carry a length prefix of lengthSizeMinusOne + 1 bytes; otherwise Annex B
        ex = bytes(extradata or b"")
        self.length_size = (ex[21] & 3) + 1 if len(ex) >= 23 and ex[0] == 1 else 0
        self.readable = True
        self.max_tid = 0
        self.nonref_tids: set[int] = set()

    def packet(self, data: memoryview | bytes) -> None:
        if not self.readable or not len(data):
            return
        header = self._first_vcl_header(data)
        # no picture, or a header recovery's parser calls illegal (a second layer such as MV-HEVC, TemporalId 0
        # unset, a reserved type): do not guess
        if header is None or not H265.header_ok(*header):
            self.readable = False
            return
        h0, h1 = header
        tid = (h1 & 7) - 1
        self.max_tid = max(self.max_tid, tid)
        if sub_layer_non_ref((h0 >> 1) & 0x3F):
            self.nonref_tids.add(tid)

    @property
    def nonref_skippable(self) -> bool:
        """True when no skipped picture could be a reference for a later one."""
        return self.readable and all(t == self.max_tid for t in self.nonref_tids)

    def _first_vcl_header(self, data: memoryview | bytes) -> tuple[int, int] | None:
        return self._length_prefixed(data) if self.length_size else self._annexb(bytes(data[:ANNEXB_WINDOW]))

    def _length_prefixed(self, data: memoryview | bytes) -> tuple[int, int] | None:
        i, n, size = 0, len(data), self.length_size
        while i + size + 2 <= n:
            length = int.from_bytes(data[i:i + size], "big")
            if length < 2 or i + size + length > n:  # a NAL unit longer than its packet: not ours to read
                return None
            h0, h1 = data[i + size], data[i + size + 1]
            if (h0 >> 1) & 0x3F in VCL_TYPES:
                return h0, h1
            i += size + length
        return None

    @staticmethod
    def _annexb(data: bytes) -> tuple[int, int] | None:
        i = data.find(b"\x00\x00\x01")
        while 0 <= i and i + 5 <= len(data):
            h0, h1 = data[i + 3], data[i + 4]
            if (h0 >> 1) & 0x3F in VCL_TYPES:
                return h0, h1
            i = data.find(b"\x00\x00\x01", i + 3)
        return None

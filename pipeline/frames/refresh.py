"""Keyframes that are not intra pictures: H.264 gradual decoding refresh (a camera's "intra refresh").

Low-latency encoders refresh the picture a column at a time instead of sending keyframes; the container
still flags each refresh start (a recovery point SEI on a P picture) as a keyframe. Decoding from such a
"keyframe", libavcodec shows nothing until the refresh has swept the whole picture, `recovery_frame_cnt`
frames later (measured on x264 intra refresh: a seek to the keyframe at frame 50 gives frame 99 first), and
the pictures in between may still be predicted from whatever came before the keyframe, damage included.

So each keyframe gets a clean point: the first picture, in decode order, that decoding from that keyframe
gets exactly right: the keyframe itself for an IDR or I picture, `recovery_frame_cnt` pictures later for a
refresh point (x264 writes it, within one GOP: measured 18 at 320x240, 49 at 720p with keyint 50; the next
keyframe when the SEI cannot be read). Seeks start from a keyframe
whose clean point comes before the frames wanted, and damage stops spreading at clean points, not at
refresh keyframes. Pure: reads one packet's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.frames.bitstream import nal_units

SEI, IDR, NON_IDR = 6, 5, 1
RECOVERY_POINT = 6  # sei payloadType (H.264 D.1.8)
I_SLICES = (2, 4)  # slice_type % 5: I, SI
HEADER_BYTES = 64  # of a slice read for its header (emulation prevention removed)
SEI_BYTES = 4096  # of an SEI unit read for its messages
UNKNOWN = -1  # a refresh point whose recovery_frame_cnt cannot be read


def refresh_frames(data: bytes | memoryview, length_size: int) -> int | None:
    """None when this H.264 keyframe packet is an intra picture (IDR or I/SI slices, or unreadable: nothing is
    claimed); else the frames its refresh takes (the recovery point's recovery_frame_cnt, or UNKNOWN)."""
    count: int | None = None
    for h, body in _units(data, length_size):
        t = h & 0x1F
        if t == IDR:
            return None
        if t == SEI and count is None:
            count = _recovery_count(body)
        if t == NON_IDR:
            slice_type = _slice_type(body)
            if slice_type is None or slice_type % 5 in I_SLICES:
                return None
            return UNKNOWN if count is None else count
    return None


def _units(data: bytes | memoryview, length_size: int) -> Iterator[tuple[int, bytes]]:
    for start, end in nal_units(data, length_size):
        if start < end:
            n = SEI_BYTES if data[start] & 0x1F == SEI else HEADER_BYTES
            yield data[start], _rbsp(bytes(data[start + 1:min(end, start + 1 + n)]))


def _rbsp(raw: bytes) -> bytes:
    """Emulation prevention bytes (00 00 03) removed."""
    return raw.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in raw else raw


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def bit(self) -> int:
        if self.pos >= 8 * len(self.data):
            raise IndexError("out of data")
        b = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("not an Exp-Golomb code")
        value = 0
        for _ in range(zeros):
            value = (value << 1) | self.bit()
        return (1 << zeros) - 1 + value


def _slice_type(rbsp: bytes) -> int | None:
    try:
        bits = _Bits(rbsp)
        bits.ue()  # first_mb_in_slice
        return bits.ue()
    except (IndexError, ValueError):
        return None


def _recovery_count(rbsp: bytes) -> int | None:
    """recovery_frame_cnt of the unit's recovery point message, if it has one."""
    i = 0
    try:
        while i < len(rbsp) and rbsp[i] != 0x80:
            kind = 0
            while rbsp[i] == 0xFF:
                kind, i = kind + 255, i + 1
            kind, i = kind + rbsp[i], i + 1
            size = 0
            while rbsp[i] == 0xFF:
                size, i = size + 255, i + 1
            size, i = size + rbsp[i], i + 1
            if kind == RECOVERY_POINT:
                return _Bits(rbsp[i:i + size]).ue()
            i += size
    except (IndexError, ValueError):
        return None
    return None

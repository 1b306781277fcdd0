"""Without a reference: find parameter sets the camera repeated inside the media data.

Many cameras (and x264/x265 with repeat-headers) put SPS/PPS (and VPS) in front of every keyframe. We scan
the mdat for them, length-prefixed (the MP4 way) or behind Annex B start codes, for both codecs, and take
the first complete set. The scan is a regex in C over a streaming window, so even a file with none costs
one read of the mdat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.recovery import h264, h265
from pipeline.recovery.nal import Syntax
from pipeline.recovery.window import Window

_BLOCK = 4 << 20
_NEAR = 16 << 10  # parameter sets of one access unit sit within this many bytes of each other
_MAX_UNIT = 4096
_LENGTH_SIZE = 4  # MP4 muxers all but always use 4-byte NAL lengths

# Parameter-set NAL headers behind a length prefix (< 64 KiB) or a start code, for each codec.
_CANDIDATES = {
    "h264": re.compile(rb"(?=\x00\x00..[\x27\x47\x67\x28\x48\x68]|\x00\x00\x01[\x27\x47\x67\x28\x48\x68])",
                       re.DOTALL),
    "hevc": re.compile(rb"(?=\x00\x00..[\x40\x42\x44]\x01|\x00\x00\x01[\x40\x42\x44]\x01)", re.DOTALL),
}
_START_CODE = re.compile(rb"\x00\x00\x01")


@dataclass(frozen=True)
class InBand:
    codec: str
    length_size: int
    syntax: Syntax
    offset: int  # where the first parameter set was found
    annex_b: bool  # found behind start codes rather than length prefixes

    def units(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """(VPS, SPS, PPS) raw NAL units, first of each id as seen in the stream."""
        raw = sorted(self.syntax.raw.items())
        return ([u for (k, _), u in raw if k == "vps"], [u for (k, _), u in raw if k == "sps"],
                [u for (k, _), u in raw if k == "pps"])


def _unit_at(buf: bytes, p: int, syn: Syntax) -> tuple[bytes, bool] | None:
    """(NAL unit, behind a start code?) at `p`; a length-prefixed unit must be followed by a legal NAL header."""
    if buf[p:p + 3] == b"\x00\x00\x01":
        end = _START_CODE.search(buf, p + 3, p + 3 + _MAX_UNIT)
        return (buf[p + 3:end.start()].rstrip(b"\x00"), True) if end else None
    n = int.from_bytes(buf[p:p + _LENGTH_SIZE], "big")
    nxt = p + _LENGTH_SIZE + n
    if not 2 <= n <= _MAX_UNIT or nxt + _LENGTH_SIZE + 2 > len(buf):
        return None
    if int.from_bytes(buf[nxt:nxt + _LENGTH_SIZE], "big") < 2 or not syn.legal_header(buf[nxt + _LENGTH_SIZE:]):
        return None
    return buf[p + _LENGTH_SIZE:nxt], False


def _scan_block(buf: bytes, codec: str) -> tuple[int, Syntax, bool] | None:
    syn: Syntax = h264.H264() if codec == "h264" else h265.H265()
    first, annex_b = None, False
    for m in _CANDIDATES[codec].finditer(buf):
        found = _unit_at(buf, m.start(), syn)
        if found is None:
            continue
        unit, sc = found
        kind_before = len(syn.raw)
        if syn.learn(unit) is None or len(syn.raw) == kind_before:
            continue
        if first is None or m.start() - first > _NEAR:  # keep the sets of one access unit together
            if first is not None:
                syn = h264.H264() if codec == "h264" else h265.H265()
                syn.learn(unit)
            first, annex_b = m.start(), sc
        if syn.ready:
            return first, syn, annex_b
    return None


def find_parameter_sets(window: Window, start: int) -> InBand | None:
    """The first complete set of in-band parameter sets in the media data at or after `start`, either codec."""
    q = start
    while q < window.end:
        buf = window.get(q, _BLOCK)
        hits = [(hit[0], codec, hit[1], hit[2]) for codec in _CANDIDATES if (hit := _scan_block(buf, codec))]
        if hits:
            at, codec, syn, annex_b = min(hits, key=lambda h: h[0])
            return InBand(codec, _LENGTH_SIZE, syn, q + at, annex_b)
        if q + len(buf) >= window.end:
            return None
        q += len(buf) - _NEAR
    return None

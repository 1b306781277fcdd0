"""Coded data that breaks H.264/H.265 syntax: bytes zeroed or cut, as bad sectors and cut-off copies leave them.

The decoder does not always notice. CABAC decodes zeroed bytes into a plausible-looking but wrong picture
and flags nothing (measured: a third of a 1080p keyframe zeroed gave a still of stripes, no log line, no
corrupt flag). The NAL syntax catches it. Inside a NAL unit the three-byte sequences 00 00 00, 00 00 01
and 00 00 02 cannot occur at any position (H.264 7.4.1, H.265 7.4.2: the encoder inserts an emulation
prevention byte), so a run of zeros inside a unit is damage, never content. The same holds for a length
prefix that points past its packet or a unit whose forbidden_zero_bit is set. A clean stream can never
trip these rules; a damaged one trips them whenever zeros land inside a unit.

Read as libavcodec reads it, so that what it decodes as the recording is never called damage:
- Zeros that run to the end of a unit are padding. In Annex B framing (MPEG-TS, raw streams) the byte-stream
  format allows them after any unit, and a remux of such footage into MP4 or Matroska keeps a few of them
  inside the length-prefixed units, where libavcodec drops them; so there fewer than TAIL_PADDING are taken
  for padding (and fewer zeros than a length prefix after the last unit). A unit whose tail was zeroed reads as
  a shorter unit plus padding in Annex B, and in H.264 the decoder, which then runs out of slice data, flags
  that picture corrupt instead (`decoder_concealed`); the H.265 decoder flags nothing.
- A start code inside a length-prefixed unit begins another unit (a recorder's mixed framing, which
  libavcodec decodes).
Zeroed sectors of a TS file also break its 188-byte packets, which the demuxer marks corrupt (the probe counts
that too); bytes overwritten with other non-zero data are left to the decoder.

`PacketSyntax.check(data)` is pure and runs on every video packet during the probe's packet listing, at a
few microseconds a packet (a compiled regex does the scanning). `Taint` follows the damage in decode order
to the pictures predicted from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

CODECS = frozenset({"h264", "hevc"})
# the three-byte sequences a NAL unit cannot hold; a regex scans ~1.7 GB/s here, `bytes.find` of 00 00 ~1 GB/s
_FORBIDDEN = re.compile(rb"\x00\x00[\x00-\x02]")
_ZEROS = re.compile(rb"\x00+")
_START_CODE = re.compile(rb"\x00\x00\x01")
# Zeros at the end of a length-prefixed unit taken for padding (see `_check_annexb`): fewer than this many. A
# remux keeps a start code's spare zero or a few trailing_zero_8bits; a zeroed sector leaves a run that short
# only when it starts in a unit's last 32 bytes. The H.264 decoder flags a slice cut short by zeros anyway (40
# of 40 measured, 64 bytes to a third of the packet, 360p to 1080p); the H.265 decoder flagged none of 30.
TAIL_PADDING = 32
NAMED = 1000  # damaged packets whose time and fault are kept; the rest are counted


@dataclass(frozen=True)
class PacketSyntax:
    """How NAL units are framed in this stream's packets: `length_size` bytes of length prefix (avcC/hvcC, in
    MP4 and Matroska), or 0 for Annex B start codes (MPEG-TS, raw streams)."""

    length_size: int
    codec: str = "h264"

    @classmethod
    def for_stream(cls, codec: str, extradata: bytes | None) -> PacketSyntax | None:
        """None for codecs without this syntax (MJPEG, MPEG-4 Part 2 ...): nothing is claimed for them."""
        if codec not in CODECS:
            return None
        ex = bytes(extradata or b"")
        if codec == "h264" and len(ex) >= 7 and ex[0] == 1:
            return cls((ex[4] & 3) + 1, codec)
        if codec == "hevc" and len(ex) >= 23 and ex[0] == 1:
            return cls((ex[21] & 3) + 1, codec)
        return cls(0, codec)

    def check(self, data: bytes | memoryview) -> str | None:
        """What is wrong with one packet's bytes (a memoryview of the packet is read in place), or None when its
        NAL syntax holds."""
        units = self._units(data)
        if units is None:
            return _check_annexb(data)
        if isinstance(units, str):
            return units
        for unit, (body, end) in enumerate(units):
            if data[body] & 0x80:
                return f"NAL unit {unit} at byte {body - self.length_size} has its forbidden_zero_bit set"
            # read as libavcodec reads a unit: start codes inside it begin further units (a recorder's mixed
            # framing), zeros before them and at its end are padding
            problem = _check_annexb(data, body, end, unit=unit)
            if problem is not None:
                return problem
        return None

    def referenced(self, data: bytes | memoryview) -> bool:
        """Whether later pictures may be predicted from this packet's: False only for an H.264 picture whose every
        slice says nal_ref_idc 0 (no picture may then refer to it), so its damage stays its own; True whenever
        that cannot be read (HEVC, a damaged header): the conservative answer."""
        if self.codec != "h264":
            return True
        units = self._units(data)
        if isinstance(units, str):
            return True
        headers = (data[body] for body, _ in units) if units is not None else _annexb_headers(data)
        no_slice = True
        for h in headers:
            if 1 <= h & 0x1F <= 5:  # a slice: referenced when its nal_ref_idc is not 0
                if h & 0x60:
                    return True
                no_slice = False
        return no_slice

    def _units(self, data: bytes | memoryview) -> Iterator[tuple[int, int]] | str | None:
        """The (body start, end) of each length-prefixed unit; what is wrong when the prefixes do not tile the
        packet; None to read it as Annex B: the stream's framing, or a recorder that writes start codes into MP4
        samples (libavcodec reads those as Annex B) when the prefixes do not tile it (`00 00 01 xx` is also the
        prefix of a 256-511 byte unit)."""
        if not self.length_size:
            return None
        problem = next((u for u in _prefixed_units(data, self.length_size) if isinstance(u, str)), None)
        if problem is None:  # walked again, lazily: the prefixes tile the packet
            return (u for u in _prefixed_units(data, self.length_size) if not isinstance(u, str))
        if _starts_with_start_code(data) and _check_annexb(data) is None:
            return None
        return problem


def nal_units(data: bytes | memoryview, length_size: int) -> Iterator[tuple[int, int]]:
    """(body start, end) of each NAL unit of a packet, read as `PacketSyntax.check` reads it; nothing when its
    length prefixes are broken (damage, which the check reports)."""
    units = PacketSyntax(length_size)._units(data)
    if isinstance(units, str):
        return
    if units is not None:
        yield from units
        return
    starts = [m.end() for m in _START_CODE.finditer(data)]
    for a, b in zip(starts, starts[1:] + [len(data) + 3], strict=True):
        yield a, b - 3


def _starts_with_start_code(data: bytes | memoryview) -> bool:
    head = bytes(data[:4])
    return head.startswith(b"\x00\x00\x01") or head == b"\x00\x00\x00\x01"


def _annexb_headers(data: bytes | memoryview) -> Iterator[int]:
    """The first byte of each NAL unit after a start code, one at a time (the packet is read in place)."""
    for m in _START_CODE.finditer(data):
        if m.end() < len(data):
            yield data[m.end()]


def _prefixed_units(data: bytes | memoryview, size: int) -> Iterator[tuple[int, int] | str]:
    """Each unit's (body start, end) by its `size`-byte length prefix, one at a time, then what is wrong when the
    prefixes do not tile the packet. Nothing is kept per unit: a crafted packet of millions of tiny units costs
    time in proportion, never memory."""
    n, pos, unit = len(data), 0, 0
    while pos < n:
        if pos + size > n:
            if any(data[pos:]):  # fewer zeros than a prefix are padding, which libavcodec passes over
                yield f"{n - pos} stray byte(s) after NAL unit {unit}, too few for a length prefix"
            return
        length = int.from_bytes(data[pos:pos + size], "big")
        body = pos + size
        if length == 0:
            yield f"NAL unit {unit} at byte {pos} has length 0 (a zeroed length prefix)"
            return
        if body + length > n:
            yield (f"NAL unit {unit} at byte {pos} claims {length} bytes but the packet holds {n - body} "
                   "after its prefix")
            return
        yield body, body + length
        pos, unit = body + length, unit + 1


def _check_annexb(data: bytes | memoryview, start: int = 0, end: int | None = None, *,
                  unit: int | None = None) -> str | None:
    """Start codes (00 00 01) separate units; zeros before a start code or at the end are padding. Any other
    00 00 00/02, or a run of zeros followed by anything but 01, sits inside a unit.

    Within one length-prefixed unit (number `unit`, from `start` to `end`), zeros at its end are padding only after its
    first byte and when fewer than TAIL_PADDING. They break the NAL rule (a unit's last byte
    is not 00), but a remux of Annex B footage that carries trailing_zero_8bits (`ffmpeg -c copy` from MPEG-TS
    or a raw stream) leaves them inside the units, and libavcodec drops them: the pictures are the recorded
    ones (measured: the same frame hashes)."""
    end = len(data) if end is None else end
    in_unit = unit is not None
    where = f"inside NAL unit {unit}" if in_unit else "inside a NAL unit"
    m = _FORBIDDEN.search(data, start, end)
    while m is not None:
        i = m.start()
        nxt = data[i + 2]
        if nxt == 1:  # a start code
            m = _FORBIDDEN.search(data, i + 3, end)
            continue
        if nxt == 2:
            return f"00 00 02 at byte {i} {where} (cannot occur in H.264/H.265 coded data)"
        j = _ZEROS.match(data, i, end).end()  # a run of zeros: padding only when a start code or the end follows
        if j < end and data[j] != 1:
            return f"{j - i} zero bytes at byte {i} {where} (not followed by a start code)"
        if j < end and in_unit and j - i > 3:  # inside a unit a recorder writes start codes, not padding: a
            # longer run that ends in 01 is a zeroed stretch that happened to meet a 01 byte
            return f"{j - i} zero bytes at byte {i} {where} (more than a start code's)"
        if j == end and in_unit and (i == start or j - i >= TAIL_PADDING):
            return f"{j - i} zero bytes at byte {i} {where}, to its end (more than padding)"
        m = _FORBIDDEN.search(data, j, end)
    return None


class Taint:
    """Which pictures are decoded from damaged data: the damaged packet's own, and every one after it in decode
    order until the next keyframe, plus that keyframe's leading pictures (pts before it: open GOP) which may
    still refer back. Conservative: a picture that happens not to refer to the damage is marked too; only an
    H.264 picture no other may refer to (nal_ref_idc 0) keeps its damage to itself."""

    def __init__(self) -> None:
        self.damaged: list[tuple[int | None, str]] = []  # (pts, what is wrong), in decode order: the first NAMED
        self.count = 0  # all of them (a crafted file's millions of damaged packets must not fill memory)
        self.affected: set[int] = set()
        self._on = False
        self._leading_below: int | None = None  # pts of the keyframe whose leading pictures inherit the taint
        self._n = 0  # packets seen
        self._bad = -1  # the last damaged packet's number
        self._refresh: list[tuple[int, int]] = []  # (packet number its refresh completes at, keyframe's number)
        self._unknown: int | None = None  # a refresh keyframe's number whose refresh ends at the next keyframe

    def packet(self, pts: int | None, keyframe: bool, problem: str | None, referenced: bool = True,
               refresh: int | None = None) -> None:
        """One packet in decode order; `referenced` False (PacketSyntax.referenced) keeps a damaged picture's
        damage to itself. `refresh`: this keyframe is a gradual refresh point whose refresh takes that many
        pictures (refresh.UNKNOWN: until the next keyframe); damage before it spreads until the refresh completes,
        damage after it on to a later clean point."""
        n, self._n = self._n, self._n + 1
        done = [k for at, k in self._refresh if at <= n]
        self._refresh = [(at, k) for at, k in self._refresh if at > n]
        if keyframe and self._unknown is not None:
            done.append(self._unknown)
            self._unknown = None
        if done and self._bad < max(done):
            self._on = False
        if keyframe and refresh is not None:
            if refresh < 0:
                self._unknown = n
            else:
                self._refresh.append((n + refresh, n))
            keyframe = False
        if keyframe:
            self._leading_below = pts if self._on else None
            self._on = False
        if problem is not None:
            self.count += 1
            if len(self.damaged) < NAMED:
                self.damaged.append((pts, problem))
            if not referenced:
                if pts is not None:
                    self.affected.add(pts)
                return
            self._on = True
            self._bad = n
        if pts is None:
            return
        if self._on or (self._leading_below is not None and pts < self._leading_below):
            self.affected.add(pts)


def spread(sources: set[int], decode_order: Sequence[int], key_pts: Iterable[int],
           refresh: dict[int, int] | None = None) -> set[int]:
    """The pictures decoded from `sources` (pts of damaged pictures) by Taint's rule, walking the shown pictures
    in decode order: used for frames the decoder concealed errors in, whose errors later pictures inherit.
    `refresh`: gradual refresh keyframes' pts -> the pictures their refresh takes (refresh.py)."""
    if not sources:
        return set()
    key_pts = {int(k) for k in key_pts}
    refresh = refresh or {}
    taint = Taint()
    for p in decode_order:
        taint.packet(p, p in key_pts, "concealed" if p in sources else None, refresh=refresh.get(int(p)))
    return taint.affected

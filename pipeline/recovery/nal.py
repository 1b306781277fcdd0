"""What the mdat walker needs to know about one NAL unit, whatever the codec.

The walker is codec-agnostic: it asks a `Syntax` (H.264 or H.265) to judge a NAL unit from its first bytes.
A NAL unit is only believed when its header is legal *and*, for a slice, its slice header names a picture
parameter set we hold and a legal slice type: random bytes (audio, corruption) rarely pass all of that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from pipeline.recovery.bitstream import BitReader, BitstreamError, unescape

# Bytes of a NAL unit (after its length prefix) that `Syntax.inspect` looks at: enough for any slice header
# up to the picture order count.
INSPECT_BYTES = 48


@dataclass(frozen=True)
class NalInfo:
    """One NAL unit as judged from its first bytes."""

    type: int
    vcl: bool  # a coded slice of a picture
    opens_au: bool  # a non-VCL unit that starts a new access unit once the current one holds a picture
    first_in_pic: bool = False  # VCL: the first slice of its picture
    key: bool = False  # IDR (H.264) / IRAP (H.265): decodable on its own, a sync sample
    poc_reset: bool = False  # IDR / BLA: picture order count starts again (its MSB is 0)
    slice_type: int | None = None  # normalised: 0 P, 1 B, 2 I (None when not a slice or not parsed)
    poc_lsb: int | None = None  # pic_order_cnt_lsb when the SPS says it is coded (None for IDR / POC type != 0)
    frame_num: int | None = None  # H.264 only
    param_set: bool = False  # SPS/PPS/VPS: the walker hands these to `Syntax.learn`
    ref: bool = True  # other pictures may reference this one (H.264 nal_ref_idc != 0, H.265 not a *_N type)


@dataclass
class Syntax:
    """Base for the two codecs: parameter sets learnt so far, and the shared NAL-unit checks."""

    name: str = ""
    header_len: int = 1
    sps: dict[int, dict] = field(default_factory=dict)
    pps: dict[int, dict] = field(default_factory=dict)
    vps: dict[int, bytes] = field(default_factory=dict)
    # Raw parameter-set NAL units by (kind, id), first seen wins; used to build avcC/hvcC for in-band recovery.
    raw: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def inspect(self, nal: bytes) -> NalInfo | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def learn(self, nal: bytes) -> str | None:  # pragma: no cover - overridden
        """Parse a parameter set; return its kind ('sps', 'pps', 'vps') or None if it does not parse."""
        raise NotImplementedError

    def is_param_set_type(self, nal_type: int) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def nal_type(self, first_byte: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def legal_header(self, nal: bytes) -> bool:  # pragma: no cover - overridden
        """The NAL unit header alone is legal (forbidden bit, type, layer, temporal id)."""
        raise NotImplementedError

    def opening_bytes(self) -> bytes:  # pragma: no cover - overridden
        """Every legal first header byte of a NAL unit that can open an access unit (for the resync regex)."""
        raise NotImplementedError

    def snapshot(self) -> tuple[dict, dict, dict, dict]:
        """Parameter sets are learnt while an access unit is parsed; undo them if the unit is rejected."""
        return dict(self.sps), dict(self.pps), dict(self.vps), dict(self.raw)

    def restore(self, state: tuple[dict, dict, dict, dict]) -> None:
        self.sps, self.pps, self.vps, self.raw = (dict(d) for d in state)

    @property
    def ready(self) -> bool:
        """At least one SPS and one PPS (and, for H.265, a VPS) are known, so slices can be judged."""
        return bool(self.sps and self.pps)

    def _slice_reader(self, nal: bytes) -> BitReader:
        return BitReader(unescape(nal[self.header_len:INSPECT_BYTES]))


def skip_scaling_list(r: BitReader, size: int) -> None:
    """H.264 scaling_list(): only its length matters to us."""
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


_P = ParamSpec("_P")
_R = TypeVar("_R")


def safe(fn: Callable[_P, _R]) -> Callable[_P, _R | None]:
    """Wrap a parser so that malformed bits mean 'not a NAL unit we believe' instead of an exception."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        try:
            return fn(*args, **kwargs)
        except (BitstreamError, KeyError, IndexError, ValueError):
            return None

    return wrapper

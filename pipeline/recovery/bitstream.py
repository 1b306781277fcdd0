"""Reading H.264/H.265 syntax: emulation-prevention removal and an Exp-Golomb bit reader.

Only the first few bytes of a NAL unit are ever parsed (headers, the start of a slice header, parameter
sets), so a plain Python reader is fast enough and keeps the core free of native parsers.
"""

from __future__ import annotations


class BitstreamError(ValueError):
    """The bytes end before the syntax element does, or an Exp-Golomb code is absurdly long."""


def unescape(data: bytes) -> bytes:
    """RBSP from a NAL payload: drop each emulation-prevention 0x03 that follows two zero bytes."""
    if b"\x00\x00\x03" not in data:
        return data
    out = bytearray()
    zeros = 0
    for b in data:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


class BitReader:
    """MSB-first reader over an RBSP; raises BitstreamError instead of reading past the end."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self.pos = 0

    @property
    def left(self) -> int:
        return self._bits - self.pos

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        if self.pos + n > self._bits:
            raise BitstreamError("bitstream ended inside a syntax element")
        self.pos += n
        return (self._value >> (self._bits - self.pos)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def skip(self, n: int) -> None:
        if self.pos + n > self._bits:
            raise BitstreamError("bitstream ended inside a syntax element")
        self.pos += n

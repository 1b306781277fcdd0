"""A forward-moving read window over a file: the walker's only view of the damaged bytes.

An mdat can be gigabytes, so the walker never holds more than one window (a few MB, or one sample when a
sample is larger) and rereads the overlap when it moves on.
"""

from __future__ import annotations

from typing import BinaryIO

DEFAULT_WINDOW = 4 << 20


class Window:
    def __init__(self, f: BinaryIO, end: int, size: int = DEFAULT_WINDOW) -> None:
        self._f = f
        self._end = end
        self._size = size
        self._base = 0
        self._buf = b""
        self.bytes_read = 0

    @property
    def end(self) -> int:
        return self._end

    def get(self, pos: int, n: int) -> bytes:
        """Up to `n` bytes at `pos` (fewer only at the end of the data)."""
        n = max(0, min(n, self._end - pos))
        if not (self._base <= pos and pos + n <= self._base + len(self._buf)):
            self._f.seek(pos)
            self._buf = self._f.read(min(max(n, self._size), self._end - pos))
            self._base = pos
            self.bytes_read += len(self._buf)
        start = pos - self._base
        return self._buf[start:start + n]

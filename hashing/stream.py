"""Reader/writer wrappers that hash bytes as they pass.

Evidence must be hashed at first contact, and reading a multi-GB file twice
(once to hash, once to upload) doubles the I/O and opens a window where the
bytes hashed are not the bytes sent. Wrapping the stream closes both gaps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

DEFAULT_ALGORITHMS: tuple[str, ...] = ("sha256",)
SUPPORTED = ("sha256", "sha1", "md5")
CHUNK = 1024 * 1024


class UnsupportedAlgorithm(ValueError):
    """Raised for a digest name outside SUPPORTED, so typos fail loudly."""


def _new(names: Iterable[str]) -> dict[str, hashlib._Hash]:
    out = {}
    for n in names:
        n = n.lower()
        if n not in SUPPORTED:
            raise UnsupportedAlgorithm(f"unsupported digest {n!r}; choose from {', '.join(SUPPORTED)}")
        # md5/sha1 are for legacy recipients' tools, not for security.
        out[n] = hashlib.new(n, usedforsecurity=(n == "sha256"))
    if "sha256" not in out:
        out["sha256"] = hashlib.sha256()
    return out


@dataclass
class Digests:
    """Running digests plus a byte count; sha256 is always present."""

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    size: int = 0
    _h: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._h = _new(self.algorithms)

    def update(self, data: bytes | memoryview) -> None:
        for h in self._h.values():
            h.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        return {n: h.hexdigest() for n, h in self._h.items()}

    @property
    def sha256(self) -> str:
        return self._h["sha256"].hexdigest()


class HashingReader:
    """File-like reader: whatever is read through it is hashed exactly once."""

    def __init__(self, raw: BinaryIO, algorithms: Iterable[str] = DEFAULT_ALGORITHMS) -> None:
        self._raw = raw
        self.digests = Digests(tuple(algorithms))

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self.digests.update(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        raw_readinto = getattr(self._raw, "readinto", None)
        if raw_readinto is None:  # e.g. a request body stream: read and copy
            data = self._raw.read(len(buf))
            k = len(data)
            memoryview(buf)[:k] = data
        else:
            k = raw_readinto(buf)
        if k:
            self.digests.update(memoryview(buf)[:k])
        return k or 0

    def close(self) -> None:
        self._raw.close()


class HashingWriter:
    """File-like writer: hashes what is written, e.g. a spool or a download."""

    def __init__(self, raw: BinaryIO, algorithms: Iterable[str] = DEFAULT_ALGORITHMS) -> None:
        self._raw = raw
        self.digests = Digests(tuple(algorithms))

    def write(self, data: bytes | memoryview) -> int:
        self.digests.update(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self._raw.close()


def copy_hashed(src: BinaryIO, dst: BinaryIO, algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
                chunk: int = CHUNK) -> Digests:
    """Copy src to dst in bounded chunks, hashing in the same pass."""
    reader = HashingReader(src, algorithms)
    buf = bytearray(chunk)
    view = memoryview(buf)
    while True:
        k = reader.readinto(view)
        if not k:
            break
        dst.write(view[:k])
    return reader.digests


def hash_file(path: Path, algorithms: Iterable[str] = DEFAULT_ALGORITHMS, chunk: int = CHUNK) -> Digests:
    """Hash a file in bounded memory (for verification, not for ingest)."""
    d = Digests(tuple(algorithms))
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            d.update(view[:k])
    return d

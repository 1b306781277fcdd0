"""What the store hands back (object versions, their hashes, HEAD answers) and small byte helpers."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from hashing.stream import HashingReader

META_SHA256 = "x-amz-meta-sha256"


@dataclass(frozen=True)
class StoredObject:
    """Where an object version lives and what its bytes hash to."""

    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    digests: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"

    def ref(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id,
                "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class VersionInfo:
    version_id: str | None
    is_latest: bool
    is_delete_marker: bool
    size: int | None
    last_modified: datetime | None
    etag: str | None = None  # as listed: the MD5 of a single-part object's bytes on most servers


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD of one object version says."""

    version_id: str | None
    size: int
    etag: str
    metadata: dict[str, str]

    @property
    def sha256(self) -> str | None:
        """The SHA-256 recorded in the object's metadata at creation, if any."""
        md = {k.lower(): v for k, v in self.metadata.items()}
        return md.get(META_SHA256)


def b64md5(data: bytes | bytearray | memoryview) -> tuple[str, bytes]:
    d = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(d).decode(), d


def read_full(reader: HashingReader, n: int, hint: int | None = None) -> bytearray:
    """Read exactly n bytes unless EOF comes first (pipes return short reads), into one buffer, no extra copy.

    `hint`: bytes the source is expected to hold. A small object then gets a buffer its own size instead
    of a whole part's: zero-filling and faulting in 16 MB for a 2 MB still cost more than sending it.
    """
    size = n if hint is None else max(1, min(n, hint + 1))  # +1: find EOF without a second read
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        k = reader.readinto(view[got:])
        if not k:
            break
        got += k
    view.release()
    del buf[got:]
    if got == size < n:  # the source holds more than the hint said: go on to a full part
        buf += read_full(reader, n - size)
    return buf


def header_safe(value: str) -> str:
    """S3 metadata must be ASCII; percent-encode anything else (original names keep their bytes)."""
    return quote(str(value), safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")

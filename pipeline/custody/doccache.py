"""The home's copy of custody documents it has read, so a chain check re-reads only what is new.

A chain check lists every version of the chain (it must: a hidden or rewritten document is found only so), then
reads each document. Documents are written once, so a command that checks an exhibit before working on it
(extraction, review, bundling) would otherwise fetch the whole chain again each time: ~10 s for a week of
camera segments. The listing already carries each version's ETag, which is the MD5 of a single-part object's
bytes; a cached copy is used only when the one live version's listed ETag equals the MD5 of the cached bytes,
so a document rewritten or replaced in the store is fetched afresh. What is used is then checked exactly as a
fetched document is (hash, signature, link). Nothing here is trusted on its own: a copy altered on this
machine fails the ETag test and is fetched again; an S3 server that gives no MD5 ETag (SSE-KMS, multipart)
simply never hits. The folder can be deleted at any time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.storage.multipart import is_md5


class DocCache:
    """Write-once documents by (key, ETag), checked against the listing's ETag on every use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str, etag: str) -> Path:
        name = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()
        return self.directory / name[:2] / name

    def get(self, key: str, etag: str | None) -> bytes | None:
        """The cached bytes of this version, only if their MD5 is the listed ETag."""
        md5 = _md5_of(etag)
        if md5 is None:
            return None
        try:
            data = self._path(key, md5).read_bytes()
        except OSError:
            return None
        return data if hashlib.md5(data, usedforsecurity=False).hexdigest() == md5 else None

    def put(self, key: str, etag: str | None, data: bytes) -> None:
        """Keep a copy (best effort: a full or read-only disk only costs the next check a GET)."""
        md5 = _md5_of(etag)
        if md5 is None or hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
            return
        p = self._path(key, md5)
        try:  # written in place: a torn copy fails the MD5 test and is fetched again, so no rename is needed
            p.write_bytes(data)
        except FileNotFoundError:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            except OSError:
                return
        except OSError:
            return


def _md5_of(etag: str | None) -> str | None:
    """The MD5 an ETag states, or None: absent, or multipart (`<md5 of part md5s>-<parts>`)."""
    md5 = (etag or "").strip('"').lower()
    return md5 if is_md5(md5) else None

"""The resumable upload protocol: a field officer on a poor link can kill an upload and continue it later.

A multipart upload keeps a local journal under `$CUSTODY_HOME/uploads/` (upload
id, key, parts sent). On resume the parts the server holds are listed, the
local prefix is re-read to rebuild the SHA-256 state *and* MD5-compared with
each part's ETag (so a file changed since the first attempt is detected and
restarted under a new key, never spliced), and only the rest is sent, through
the store's one multipart engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from hashing.stream import Digests
from pipeline.custody.catalog import Exhibit
from pipeline.errors import IntegrityError, ObjectNotFound, UsageError
from pipeline.storage import EvidenceStore, StoredObject
from pipeline.storage.multipart import composite_etag, is_md5

Progress = Callable[[int], None]


@dataclass
class Journal:
    """What a multipart upload has done so far, persisted after every part."""

    path: Path
    source: str
    size: int
    mtime_ns: int
    bucket: str
    key: str
    part_size: int
    upload_id: str | None = None
    parts: dict[int, str] = field(default_factory=dict)  # part number → ETag
    started: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def save(self) -> None:
        with self._lock:
            doc = {"source": self.source, "size": self.size, "mtime_ns": self.mtime_ns, "bucket": self.bucket,
                   "key": self.key, "part_size": self.part_size, "upload_id": self.upload_id,
                   "parts": {str(k): v for k, v in sorted(self.parts.items())}, "started": self.started}
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            tmp.replace(self.path)

    def part_done(self, num: int, etag: str) -> None:
        with self._lock:
            self.parts[num] = etag
        self.save()


def journal_dir(home: Path) -> Path:
    d = home / "uploads"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def journal_id(path: Path, st: os.stat_result, exhibit: Exhibit) -> str:
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{exhibit.id}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def load_journal(jpath: Path, path: Path, st: os.stat_result, bucket: str, part_size: int,
                 exhibit: Exhibit) -> Journal:
    """The journal of an earlier attempt on the same file, or a new one with a fresh key."""
    try:
        doc = json.loads(jpath.read_text())
        if doc["size"] == st.st_size and doc["mtime_ns"] == st.st_mtime_ns and doc["bucket"] == bucket:
            return Journal(jpath, doc["source"], doc["size"], doc["mtime_ns"], doc["bucket"], doc["key"],
                           int(doc["part_size"]), doc.get("upload_id"),
                           {int(k): v for k, v in (doc.get("parts") or {}).items()}, doc.get("started", ""))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    key = f"{exhibit.case_id}/{exhibit.id}/{uuid.uuid4().hex}"
    j = Journal(jpath, str(path.resolve()), st.st_size, st.st_mtime_ns, bucket, key, part_size)
    j.save()
    return j


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One process per journal: a second upload of the same file waits for nobody, it refuses."""
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another `custody upload` of this file is running (lock {lock_path})") from None
        yield
    finally:
        os.close(fd)


class _Restart(Exception):
    """The server's parts do not match the local file: start a fresh multipart upload."""


class RateLimiter:
    """Caps average throughput (field links are often shared and metered)."""

    def __init__(self, mb_per_s: float | None) -> None:
        self.rate = mb_per_s * 1e6 if mb_per_s else None
        self.start = time.monotonic()
        self.sent = 0

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        self.sent += n
        delay = self.start + self.sent / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def read_part(f: BinaryIO, digests: Digests, n: int) -> bytearray:
    """Read up to n bytes straight into a new buffer and hash them: one copy per byte, not three."""
    buf = bytearray(n)
    got = 0
    with memoryview(buf) as view:
        while got < n:
            k = f.readinto(view[got:])  # type: ignore[attr-defined]
            if not k:
                break
            got += k
        digests.update(view[:got])
    if got < n:
        del buf[got:]
    return buf


def resumable_put(store: EvidenceStore, journal: Journal, path: Path, headers: dict[str, str], *,
                  algorithms: tuple[str, ...] = ("sha256",), progress: Progress | None = None,
                  expected_sha256: str | None = None, limiter: RateLimiter | None = None,
                  before_complete: Callable[[], None] | None = None) -> tuple[StoredObject, int]:
    """Multipart upload that continues a journaled one; returns (object, parts reused). `before_complete` runs
    once every part is sent, before the upload becomes an object; what it raises aborts the upload."""
    for _attempt in range(2):
        try:
            return _resumable_once(store, journal, path, headers, algorithms, progress, expected_sha256, limiter,
                                   before_complete)
        except _Restart:
            if journal.upload_id:
                store.multipart(journal.bucket, journal.key, headers, journal.upload_id).abort()
            # a fresh key, so a half-made or unrecorded object is never hidden under a newer version
            journal.key = f"{journal.key.rsplit('/', 1)[0]}/{uuid.uuid4().hex}"
            journal.upload_id, journal.parts = None, {}
            journal.save()
    raise IntegrityError(f"could not upload {path}: the file keeps changing while it is read")


def _resumable_once(store: EvidenceStore, journal: Journal, path: Path, headers: dict[str, str],
                    algorithms: tuple[str, ...], progress: Progress | None, expected_sha256: str | None,
                    limiter: RateLimiter | None, before_complete: Callable[[], None] | None = None
                    ) -> tuple[StoredObject, int]:
    mp = store.multipart(journal.bucket, journal.key, headers, journal.upload_id)
    server = {}
    if journal.upload_id:
        try:
            server = mp.server_parts()
        except ObjectNotFound:
            if before_complete is not None:
                before_complete()  # adopting a completed upload records it: the exhibit must be recorded first
            adopted = _adopt_completed(store, journal, path, algorithms, progress)
            if adopted is not None:
                return adopted
            raise _Restart from None
    else:
        journal.upload_id = mp.start()
        journal.started = datetime.now(UTC).isoformat()
        journal.save()
    etags: dict[int, str] = {}
    digests = Digests(algorithms)
    with open(path, "rb", buffering=0) as f:
        # 1. re-read the prefix the server already holds: rebuilds the hash state and proves the file unchanged
        num = 1
        while num in server:
            data = read_part(f, digests, journal.part_size)
            p = server[num]
            if not data or (p.size is not None and p.size != len(data)):
                raise _Restart
            if is_md5(p.etag) and hashlib.md5(data, usedforsecurity=False).hexdigest() != p.etag.strip('"').lower():
                raise _Restart
            etags[num] = p.etag
            journal.parts.setdefault(num, p.etag)
            if progress:
                progress(len(data))
            num += 1
        reused = num - 1
        journal.parts = {n: e for n, e in journal.parts.items() if n <= reused}
        journal.save()

        # 2. send the rest, journaling each part as the server acknowledges it
        def on_part(n: int, etag: str, size: int) -> None:
            journal.part_done(n, etag)
            if progress:
                progress(size)

        etags.update(mp.send(num, lambda: read_part(f, digests, journal.part_size), on_part=on_part,
                             before_send=limiter.wait if limiter else None))
    if digests.size != journal.size:
        raise _Restart
    if expected_sha256 and digests.sha256 != expected_sha256.lower():
        mp.abort()
        raise IntegrityError(f"SHA-256 mismatch for {journal.key}: declared {expected_sha256.lower()}, read "
                             f"{digests.sha256}; nothing was stored — the file changed during upload?")
    if before_complete is not None:
        try:
            before_complete()
        except BaseException:
            mp.abort()
            raise
    version_id, etag, expected_etag = mp.complete(etags)
    obj = StoredObject(journal.bucket, journal.key, version_id, digests.sha256, digests.size, digests.hexdigests(),
                       headers.get("Content-Type", "application/octet-stream"))
    store.check_written(obj, etag, expected_etag, force_stat=True)
    store.tag_digests(obj)
    return obj, reused


def _adopt_completed(store: EvidenceStore, journal: Journal, path: Path, algorithms: tuple[str, ...],
                     progress: Progress | None) -> tuple[StoredObject, int] | None:
    """A run killed after completing the upload but before recording it left a stored, unrecorded object.

    Adopt it only if the local file reproduces its size and composite ETag (so the bytes are the same);
    otherwise return None and upload afresh under a new key (the old object stays visible to
    `custody verify` as unrecorded).
    """
    st = store.stat(journal.bucket, journal.key)
    if st is None or st.size != journal.size or "-" not in st.etag:
        return None
    md5s = []
    d = Digests(algorithms)
    with open(path, "rb", buffering=0) as f:
        while data := read_part(f, d, journal.part_size):
            md5s.append(hashlib.md5(data, usedforsecurity=False).hexdigest())
            if progress:
                progress(len(data))
    if st.etag != composite_etag(md5s):
        return None
    obj = StoredObject(journal.bucket, journal.key, st.version_id, d.sha256, d.size, d.hexdigests(),
                       st.metadata.get("Content-Type", "application/octet-stream"))
    store.tag_digests(obj)
    return obj, len(md5s)

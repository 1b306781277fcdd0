"""Field uploads: resumable, hashed in the pass that sends them, never losing bad input.

Why a second upload path beside `EvidenceStore.put_stream`: a field officer on
a poor link must be able to kill an upload and continue it later without
re-sending gigabytes. Multipart uploads therefore keep a local journal under
`$CUSTODY_HOME/uploads/` (upload id, key, parts sent). On resume the parts the
server holds are listed, the local prefix is re-read to rebuild the SHA-256
state *and* MD5-compared with each part's ETag (so a file changed since the
first attempt is detected and restarted, never spliced), and only the rest is
sent. The store's private helpers (headers, post-write check, tags) are reused
so both paths make identical objects.

Duplicates: identical bytes are recognised by SHA-256 through
`index/sha256/<hex>.json` in the custody bucket. Local files up to
PREHASH_MAX_BYTES are hashed before sending (cheap, and a duplicate then costs
no upload: a `duplicate_linked` event points at the existing object). An API
upload declaring `X-Content-SHA256` of bytes already held is hashed without
being stored and linked the same way (a mismatch stores nothing: 422). Larger
files and API streams without a declared hash are stored first and the
duplicate noted afterwards (`details.duplicate_of` on the `ingested` event),
because reading a large file twice would halve throughput. Either way nothing
offered is discarded unrecorded.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import mimetypes
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from minio.datatypes import Part
from minio.error import S3Error

from hashing.stream import Digests, hash_file
from pipeline.catalog import Case, Exhibit
from pipeline.custody import Actor
from pipeline.errors import ChainConflict, IntegrityError, UsageError
from pipeline.evidence import Evidence, safe_display_name
from pipeline.mediainfo import HEAD_BYTES, MediaReport, inspect_file, inspect_media, metadata_document, parse_time
from pipeline.store import EvidenceStore, StoredObject, _digest_tags

PREHASH_MAX_BYTES = 32 * 1024 * 1024
Progress = Callable[[int], None]


# ---- parameters -------------------------------------------------------------
def _clean(value: str | None, what: str, max_len: int = 200) -> str | None:
    if value is None:
        return None
    v = "".join(c for c in value if c.isprintable()).strip()
    if len(v) > max_len:
        raise UsageError(f"{what} is longer than {max_len} characters")
    return v or None


def seizure_parameters(seized_at: str | None, location: str | None, device: str | None) -> dict[str, Any]:
    """Validated seizure facts for the custody event; absent ones are omitted."""
    out: dict[str, Any] = {}
    if seized_at:
        out["seized_at"] = parse_time(seized_at, "seized-at").astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if (loc := _clean(location, "location")) is not None:
        out["location"] = loc
    if (dev := _clean(device, "device")) is not None:
        out["device"] = dev
    return out


# ---- duplicate index --------------------------------------------------------
class HashIndex:
    """`index/sha256/<hex>.json` → the first stored object with those bytes (write-once)."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]

    @staticmethod
    def key(sha256: str) -> str:
        return f"index/sha256/{sha256.lower()}.json"

    def lookup(self, sha256: str) -> dict[str, Any] | None:
        data = self.store.try_get_bytes(self.bucket, self.key(sha256))
        return json.loads(data) if data else None

    def claim(self, obj: StoredObject, case: Case, exhibit: Exhibit) -> dict[str, Any] | None:
        """Register obj as the first copy; return the existing entry when another copy won."""
        doc = {**obj.ref(), "case_id": case.id, "exhibit_id": exhibit.id,
               "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            self.store.put_bytes(self.bucket, self.key(obj.sha256), json.dumps(doc).encode(), if_absent=True,
                                 lock=True)
        except ChainConflict:
            return self.lookup(obj.sha256)
        return None


# ---- resume journal -----------------------------------------------------------
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


def journal_dir(ev: Evidence) -> Path:
    d = ev.settings.home / "uploads"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _journal_id(path: Path, st: os.stat_result, exhibit: Exhibit) -> str:
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{exhibit.id}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
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


def _read_part(f: BinaryIO, digests: Digests, n: int) -> bytearray:
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


def _list_all_parts(store: EvidenceStore, bucket: str, key: str, upload_id: str) -> dict[int, Part]:
    out: dict[int, Part] = {}
    marker: str | None = None
    while True:
        res = store._call(store.client._list_parts, bucket, key, upload_id, max_parts=1000,
                          part_number_marker=marker)
        for p in res.parts:
            out[p.part_number] = p
        if not res.is_truncated or not res.next_part_number_marker:
            return out
        marker = res.next_part_number_marker


def _is_md5(etag: str) -> bool:
    e = etag.strip('"')
    return len(e) == 32 and all(c in "0123456789abcdef" for c in e.lower())


def resumable_put(store: EvidenceStore, journal: Journal, path: Path, headers: dict[str, str], *,
                  algorithms: tuple[str, ...] = ("sha256",), progress: Progress | None = None,
                  expected_sha256: str | None = None, limiter: RateLimiter | None = None) -> tuple[StoredObject, int]:
    """Multipart upload that continues a journaled one; returns (object, parts reused)."""
    for _attempt in range(2):
        try:
            return _resumable_once(store, journal, path, headers, algorithms, progress, expected_sha256, limiter)
        except _Restart:
            if journal.upload_id:
                with contextlib.suppress(S3Error):
                    store.client._abort_multipart_upload(journal.bucket, journal.key, journal.upload_id)
            # a fresh key, so a half-made or unrecorded object is never hidden under a newer version
            journal.key = f"{journal.key.rsplit('/', 1)[0]}/{uuid.uuid4().hex}"
            journal.upload_id, journal.parts = None, {}
            journal.save()
    raise IntegrityError(f"could not upload {path}: the file keeps changing while it is read")


def _resumable_once(store: EvidenceStore, journal: Journal, path: Path, headers: dict[str, str],
                    algorithms: tuple[str, ...], progress: Progress | None, expected_sha256: str | None,
                    limiter: RateLimiter | None) -> tuple[StoredObject, int]:
    bucket, key, part_size = journal.bucket, journal.key, journal.part_size
    server: dict[int, Part] = {}
    if journal.upload_id:
        try:
            server = _list_all_parts(store, bucket, key, journal.upload_id)
        except S3Error as exc:
            if exc.code in ("NoSuchUpload", "NoSuchKey"):
                adopted = _adopt_completed(store, journal, path, algorithms, progress)
                if adopted is not None:
                    return adopted
                raise _Restart from None
            raise
    else:
        journal.upload_id = store._call(store.client._create_multipart_upload, bucket, key, dict(headers))
        journal.started = datetime.now(UTC).isoformat()
        journal.save()
    upload_id = journal.upload_id
    etags: dict[int, str] = {}
    digests = Digests(algorithms)
    with open(path, "rb", buffering=0) as f:
        # 1. re-read the prefix the server already holds: rebuilds the hash state and proves the file unchanged
        num = 1
        while num in server:
            data = _read_part(f, digests, part_size)
            p = server[num]
            if not data or (p.size is not None and int(p.size) != len(data)):
                raise _Restart
            if _is_md5(p.etag) and hashlib.md5(data, usedforsecurity=False).hexdigest() != p.etag.strip('"').lower():
                raise _Restart
            etags[num] = p.etag
            if num not in journal.parts:
                journal.parts[num] = p.etag
            if progress:
                progress(len(data))
            num += 1
        reused = num - 1
        journal.parts = {n: e for n, e in journal.parts.items() if n <= reused}
        journal.save()
        # 2. send the rest in parallel, journaling each part as the server acknowledges it
        threads = store.settings.upload_threads
        sem = threading.BoundedSemaphore(threads + 1)
        futures: list[Future[tuple[int, str]]] = []

        def send(n: int, chunk: bytearray) -> tuple[int, str]:
            try:
                part_headers: dict[str, str] = {}
                md5 = None
                if store.part_md5:
                    md5 = hashlib.md5(chunk, usedforsecurity=False)
                    part_headers["Content-MD5"] = base64.b64encode(md5.digest()).decode()
                etag = store._call(store.client._upload_part, bucket, key, chunk,  # type: ignore[arg-type]
                                   part_headers, upload_id, n)
                if md5 is not None and etag.strip('"') != md5.hexdigest():
                    raise IntegrityError(f"part {n} of {key}: server ETag {etag} != MD5 {md5.hexdigest()}")
                journal.part_done(n, etag)
                if progress:
                    progress(len(chunk))
                return n, etag
            finally:
                sem.release()

        with ThreadPoolExecutor(max_workers=threads) as pool:
            data = _read_part(f, digests, part_size)
            while data:
                if limiter:
                    limiter.wait(len(data))
                sem.acquire()
                futures.append(pool.submit(send, num, data))
                if any(fu.done() and fu.exception() for fu in futures):
                    break
                num += 1
                data = _read_part(f, digests, part_size)
            for n, e in (fu.result() for fu in futures):
                etags[n] = e
    if digests.size != journal.size:
        raise _Restart
    if expected_sha256 and digests.sha256 != expected_sha256.lower():
        store._call(store.client._abort_multipart_upload, bucket, key, upload_id)
        raise IntegrityError(f"SHA-256 mismatch for {key}: declared {expected_sha256.lower()}, read "
                             f"{digests.sha256}; nothing was stored — the file changed during upload?")
    parts = [Part(n, etags[n]) for n in sorted(etags)]
    result = store._call(store.client._complete_multipart_upload, bucket, key, upload_id, parts)
    composite = None
    if parts and all(_is_md5(p.etag) for p in parts):
        joined = b"".join(bytes.fromhex(p.etag.strip('"')) for p in parts)
        composite = f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"
    obj = StoredObject(bucket, key, result.version_id, digests.sha256, digests.size, digests.hexdigests())
    store._check_written(obj, result.etag, composite)
    store._call(store.client.set_object_tags, bucket, key, _digest_tags(obj.digests), version_id=obj.version_id)
    return obj, reused


def _adopt_completed(store: EvidenceStore, journal: Journal, path: Path, algorithms: tuple[str, ...],
                     progress: Progress | None) -> tuple[StoredObject, int] | None:
    """A run killed after completing the upload but before recording it left a stored, unrecorded object.

    Adopt it only if the local file reproduces its size and composite ETag (so the bytes are the same);
    otherwise return None and upload afresh under the same key (a new version, the old one stays visible
    to `custody verify` as unrecorded).
    """
    try:
        st = store._call(store.client.stat_object, journal.bucket, journal.key)
    except S3Error:
        return None
    if st.size != journal.size or not st.etag or "-" not in st.etag:
        return None
    md5s = []
    d = Digests(algorithms)
    with open(path, "rb", buffering=0) as f:
        while data := _read_part(f, d, journal.part_size):
            md5s.append(hashlib.md5(data, usedforsecurity=False).digest())
            if progress:
                progress(len(data))
    composite = f"{hashlib.md5(b''.join(md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"
    if st.etag.strip('"') != composite:
        return None
    obj = StoredObject(journal.bucket, journal.key, st.version_id, d.sha256, d.size, d.hexdigests())
    store._call(store.client.set_object_tags, obj.bucket, obj.key, _digest_tags(obj.digests),
                version_id=obj.version_id)
    return obj, len(md5s)


# ---- recording ------------------------------------------------------------------
def _object_ref(obj: StoredObject | dict[str, Any], name: str, ctype: str, media: MediaReport,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    base = obj.ref() if isinstance(obj, StoredObject) else {k: obj[k] for k in
                                                            ("bucket", "key", "version_id", "sha256", "size")}
    digests = obj.digests if isinstance(obj, StoredObject) else {"sha256": obj["sha256"]}
    return {**base, "role": "original", "status": media.status, "original_name": name, "digests": digests,
            "content_type": ctype, "info": {"message": media.message, "kind": media.kind, **(extra or {})}}


def record_metadata(ev: Evidence, case: Case, exhibit: Exhibit, source: dict[str, Any], media: MediaReport,
                    actor: Actor) -> dict[str, Any] | None:
    """Store the metadata JSON as a derived object and record `metadata_extracted` with tool versions."""
    if media.kind not in ("video", "image"):
        return None
    src = {k: source.get(k) for k in ("bucket", "key", "version_id", "sha256")}
    with tempfile.TemporaryDirectory(prefix="custody-meta-") as d:
        p = Path(d) / "metadata.json"
        p.write_bytes(metadata_document(media, src))
        _obj, ref = ev.add_derived(case, exhibit, p, source=src, kind="metadata", actor=actor,
                                   content_type="application/json")
    ev.record(case, exhibit, "metadata_extracted", actor=actor, objects=[ref], tools=media.tools,
              parameters={"extractor": "pipeline.mediainfo", "source_sha256": source["sha256"]},
              details={"status": media.status, "message": media.message, "metadata": media.metadata})
    return ref


@dataclass
class UploadResult:
    """What one uploaded file became; printed by `custody upload --json` and returned by the API."""

    original_name: str
    status: str
    message: str
    sha256: str
    size: int
    bucket: str
    key: str
    version_id: str | None
    event_seq: int
    duplicate_of: dict[str, Any] | None = None
    linked: bool = False
    resumed_parts: int = 0
    metadata: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _link_duplicate(ev: Evidence, case: Case, exhibit: Exhibit, existing: dict[str, Any], name: str, ctype: str,
                    media: MediaReport, actor: Actor, parameters: dict[str, Any]) -> UploadResult:
    ref = _object_ref(existing, name, ctype, media, {"linked": True})
    event = ev.record(case, exhibit, "duplicate_linked", actor=actor, objects=[ref], parameters=parameters,
                      details={"duplicate_of": {k: existing.get(k) for k in
                                                ("bucket", "key", "version_id", "case_id", "exhibit_id")},
                               "reason": "identical SHA-256 already held; not stored again"})
    return UploadResult(name, media.status, media.message, existing["sha256"], int(existing["size"]),
                        existing["bucket"], existing["key"], existing.get("version_id"), event["seq"],
                        duplicate_of=existing, linked=True, metadata=media.metadata or None)


def _finish(ev: Evidence, case: Case, exhibit: Exhibit, obj: StoredObject, name: str, ctype: str,
            media: MediaReport, actor: Actor, parameters: dict[str, Any], resumed: int = 0) -> UploadResult:
    dup = HashIndex(ev.store).claim(obj, case, exhibit)
    details = {"duplicate_of": dup} if dup else None
    ref = _object_ref(obj, name, ctype, media)
    event = ev.record(case, exhibit, "ingested", actor=actor, objects=[ref], parameters=parameters,
                      details=details, tools=media.tools)
    record_metadata(ev, case, exhibit, ref, media, actor)
    return UploadResult(name, media.status, media.message, obj.sha256, obj.size, obj.bucket, obj.key,
                        obj.version_id, event["seq"], duplicate_of=dup, resumed_parts=resumed,
                        metadata=media.metadata or None)


def upload_file(ev: Evidence, case: Case, exhibit: Exhibit, path: Path, *, actor: Actor,
                parameters: dict[str, Any] | None = None, algorithms: tuple[str, ...] = ("sha256",),
                progress: Progress | None = None, limit_mb_s: float | None = None) -> UploadResult:
    """Upload one local file as an original: resumable, classified, deduplicated, recorded."""
    st = path.stat()
    name = safe_display_name(path.name)
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    params = {"source": "field-upload", "submitted_name": path.name, **(parameters or {})}
    media = inspect_file(path)
    expected = None
    if st.st_size <= PREHASH_MAX_BYTES:
        expected = hash_file(path).sha256
        existing = HashIndex(ev.store).lookup(expected)
        if existing:
            if progress:
                progress(st.st_size)
            return _link_duplicate(ev, case, exhibit, existing, name, ctype, media, actor, params)
    store = ev.store
    bucket = store.buckets["originals"]
    part_size = store.settings.part_size_mb * 1024 * 1024
    meta = {"exhibit-id": exhibit.id, "case-id": exhibit.case_id, "original-name": name}
    if st.st_size < part_size:
        key = f"{exhibit.case_id}/{exhibit.id}/{uuid.uuid4().hex}"
        obj = store.put_file(bucket, key, path, content_type=ctype, metadata=meta, lock=True,
                             expected_sha256=expected, algorithms=algorithms, progress=progress)
        return _finish(ev, case, exhibit, obj, name, ctype, media, actor, params)
    jdir = journal_dir(ev)
    jid = _journal_id(path, st, exhibit)
    jpath = jdir / f"{jid}.json"
    with _exclusive(jdir / f"{jid}.lock"):
        journal = _load_journal(jpath, path, st, bucket, part_size, exhibit)
        if expected:
            meta["sha256"] = expected
        headers = store._base_headers(ctype, meta, True, False)
        obj, reused = resumable_put(store, journal, path, headers, algorithms=algorithms, progress=progress,
                                    expected_sha256=expected, limiter=RateLimiter(limit_mb_s))
        result = _finish(ev, case, exhibit, obj, name, ctype, media, actor,
                         {**params, **({"resumed_parts": reused} if reused else {})}, reused)
        jpath.unlink(missing_ok=True)
    (jdir / f"{jid}.lock").unlink(missing_ok=True)
    return result


def _load_journal(jpath: Path, path: Path, st: os.stat_result, bucket: str, part_size: int,
                  exhibit: Exhibit) -> Journal:
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


# ---- streams (HTTP API) -----------------------------------------------------------
class HeadCapture:
    """File-like pass-through that keeps the first bytes for classification."""

    def __init__(self, raw: BinaryIO, keep: int = HEAD_BYTES) -> None:
        self._raw = raw
        self._keep = keep
        self.head = bytearray()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data and len(self.head) < self._keep:
            self.head += data[: self._keep - len(self.head)]
        return data


def upload_stream(ev: Evidence, case: Case, exhibit: Exhibit, stream: BinaryIO, *, name: str, actor: Actor,
                  parameters: dict[str, Any] | None = None, expected_sha256: str | None = None,
                  content_type: str | None = None) -> UploadResult:
    """Store a request body as an original in one hashed pass, then classify it from the stored copy."""
    name_safe = safe_display_name(name or "upload")
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    ctype = declared if re.fullmatch(r"(video|image|audio)/[\w.+-]{1,60}", declared) else (
        mimetypes.guess_type(name_safe)[0] or "application/octet-stream")
    params = {"source": "api-upload", "submitted_name": name, **(parameters or {})}
    cap = HeadCapture(stream)
    if expected_sha256:
        existing = HashIndex(ev.store).lookup(expected_sha256)
        if existing:  # hash the body without storing it: identical bytes are linked, a mismatch refused
            d = Digests(("sha256",))
            while chunk := cap.read(1024 * 1024):
                d.update(chunk)
            if d.sha256 != expected_sha256.lower():
                raise IntegrityError(f"SHA-256 mismatch: declared {expected_sha256.lower()}, received {d.sha256}; "
                                     "nothing was stored — re-send the file")
            media = inspect_media(bytes(cap.head), d.size, _presigned(ev, existing))
            return _link_duplicate(ev, case, exhibit, existing, name_safe, ctype, media, actor, params)
    key = f"{exhibit.case_id}/{exhibit.id}/{uuid.uuid4().hex}"
    meta = {"exhibit-id": exhibit.id, "case-id": exhibit.case_id, "original-name": name_safe}
    obj = ev.store.put_stream(ev.store.buckets["originals"], key, cap, content_type=ctype,  # type: ignore[arg-type]
                              metadata=meta, lock=True, expected_sha256=expected_sha256)
    media = inspect_media(bytes(cap.head), obj.size, _presigned(ev, obj.ref()))
    return _finish(ev, case, exhibit, obj, name_safe, ctype, media, actor, params)


def _presigned(ev: Evidence, ref: dict[str, Any]) -> str:
    return ev.store.presigned_get(ref["bucket"], ref["key"], ref.get("version_id"), timedelta(minutes=15))


# ---- client for a remote API (`custody upload --api URL --token T`) -----------------
class ApiClient:
    """Uploads through the HTTP API when the field laptop has no S3 credentials.

    The body is streamed and hashed in the same pass; the server hashes what it
    stores, and the two SHA-256 values must agree or the upload is reported as
    an IntegrityError (the server's record then says what it actually holds).
    """

    def __init__(self, base_url: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(60, read=600))

    def _check(self, r: Any) -> Any:
        from pipeline.errors import InfrastructureError, NotFoundError

        if r.status_code < 400:
            return r.json()
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text[:300]
        if r.status_code == 404:
            raise NotFoundError(f"API: {detail}")
        if r.status_code == 422:
            raise IntegrityError(f"API: {detail}")
        if r.status_code >= 500:
            raise InfrastructureError(f"API error {r.status_code}: {detail}")
        raise UsageError(f"API refused ({r.status_code}): {detail}")

    def exhibit(self, case_ref: str, exhibit_ref: str, officer: str, description: str = "") -> tuple[str, str]:
        """(case_id, exhibit_id), registering the exhibit if it is new."""
        cases = self._check(self.http.get("/api/cases"))
        case = next((c for c in cases if c["case"] == case_ref), None)
        if case is None:
            raise UsageError(f"case {case_ref!r} is not visible to this token (not created, or not assigned)")
        ex = self._check(self.http.post(f"/api/cases/{case['case_id']}/exhibits",
                                        json={"ref": exhibit_ref, "officer": officer, "description": description}))
        return case["case_id"], ex["exhibit_id"]

    def upload(self, case_id: str, exhibit_id: str, path: Path, parameters: dict[str, Any],
               progress: Progress | None = None) -> dict[str, Any]:
        digests = Digests(("sha256",))

        def body() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(1024 * 1024):
                    digests.update(chunk)
                    if progress:
                        progress(len(chunk))
                    yield chunk

        params = {"name": path.name, **{k: v for k, v in parameters.items() if k in ("seized_at", "location",
                                                                                       "device")}}
        r = self.http.post(f"/api/cases/{case_id}/exhibits/{exhibit_id}/uploads", params=params, content=body(),
                           headers={"Content-Type": "application/octet-stream"})
        result = self._check(r)
        if result["sha256"] != digests.sha256 or int(result["size"]) != digests.size:
            raise IntegrityError(f"{path}: server stored sha256 {result['sha256']} ({result['size']} bytes) but "
                                 f"{digests.sha256} ({digests.size} bytes) was sent; see the custody record")
        return result


def exhibit_metadata(ev: Evidence, exhibit: Exhibit) -> dict[str, Any]:
    """Every metadata document of an exhibit, camera times shown corrected by the recorded clock offset."""
    from pipeline.mediainfo import clock_offset_ms, with_corrected_times

    events = ev.log.events(exhibit.id)
    offset = clock_offset_ms(events)
    items = []
    for o in ev.objects(events, roles=("derived",)):
        if o.info.get("kind") != "metadata":
            continue
        doc = json.loads(ev.store.get_bytes(o.bucket, o.key, o.version_id))
        items.append({"source": doc.get("source"), "metadata_object": {"bucket": o.bucket, "key": o.key,
                                                                       "version_id": o.version_id},
                      "status": doc.get("status"), "message": doc.get("message"), "kind": doc.get("kind"),
                      "metadata": with_corrected_times(doc.get("metadata") or {}, offset),
                      "tools": doc.get("tools")})
    return {"exhibit_id": exhibit.id, "clock_offset_ms": offset, "items": items}

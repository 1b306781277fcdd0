"""The evidence store: S3 buckets behind the `minio` SDK.

Every put hashes the bytes in the pass that sends them and proves the server
holds exactly those bytes: a small object is one PUT carrying that SHA-256 as
x-amz-checksum-sha256 (which the server verifies before storing and echoes),
as metadata, with its digests (tags) and its retention. A server that does not
echo the checksum gets Content-MD5 instead, and the ETag it returns must equal
our MD5; only where the ETag cannot be an MD5 either (some server-side
encryption modes) is the stored object stat'ed.
Large objects go through the one multipart engine (`multipart.py`), every part
checked, then the composite ETag. Originals are written under S3 Object Lock;
keys are generated IDs, never user strings. SDK errors end here: callers see
`StorageError` / `ObjectNotFound` / `StoreUnavailable`.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.versioningconfig import ENABLED, VersioningConfig

from hashing.stream import DEFAULT_ALGORITHMS, Digests, HashingReader
from pipeline.errors import ChainConflict, IntegrityError, ObjectNotFound, StorageError, StoreUnavailable
from pipeline.settings import Settings
from pipeline.storage.client import UNSIGNED, make_client
from pipeline.storage.listing import Listing
from pipeline.storage.multipart import CHECKSUM_REFUSED, MultipartUpload, is_md5
from pipeline.storage.objects import (
    ObjectInfo,
    StoredObject,
    b64md5,
    header_safe,
    read_full,
)

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
#: a fixed content type, or one decided from the first bytes (content, never the name)
ContentType = str | Callable[[bytes], str]
_MISSING = ("NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound", "NoSuchUpload", "NoSuchBucket")


class EvidenceStore(Listing):
    """Bucket-level operations with integrity checks; knows nothing of cases."""

    def __init__(self, settings: Settings, client: Minio | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        self.buckets = settings.buckets
        self.lock_supported = True
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        # Over HTTPS minio sends UNSIGNED-PAYLOAD, so we add Content-MD5 per part and check ETags. Over
        # plain HTTP (loopback only) each part carries its CRC-32 (x-amz-checksum-crc32, ~15 GB/s with
        # libdeflate) which the server verifies and echoes, instead of SigV4 signing its SHA-256 (a full
        # extra pass on both sides); a server that does not echo it gets signed parts (`part_crc` False).
        self.part_md5 = self.client._base_url.is_https
        self.part_crc = not self.part_md5
        # A single PUT carries the SHA-256 we compute while reading (x-amz-checksum-sha256): the server refuses
        # a body that does not hash to it, and echoes it, which proves the stored bytes without an MD5 pass of
        # ours. Until the server has echoed one (None) a PUT carries Content-MD5 as well; a server that does
        # not echo it (False) gets Content-MD5 and the ETag proof.
        self.put_sha256: bool | None = None

    @classmethod
    def connect(cls, settings: Settings) -> EvidenceStore:
        store = cls(settings)
        store.ensure_buckets()
        return store

    @property
    def endpoint(self) -> str:
        return str(self.client._base_url.host)

    # ---- the SDK boundary ------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an SDK call; connection failures become StoreUnavailable, S3 errors StorageError."""
        try:
            return fn(*args, **kwargs)
        except (urllib3.exceptions.HTTPError, ConnectionError, OSError) as exc:
            raise StoreUnavailable(f"S3 endpoint {self.endpoint} unreachable ({type(exc).__name__}); "
                                   "start it (`custody stack up`) or check CUSTODY_S3_ENDPOINT") from None
        except S3Error as exc:
            if exc.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied") and fn in (
                    self.client.list_buckets, self.client.bucket_exists):
                raise StoreUnavailable(f"S3 endpoint refused our credentials ({exc.code}); "
                                       "check CUSTODY_S3_ACCESS_KEY / CUSTODY_S3_SECRET_KEY") from None
            where = f"{args[0]}/{args[1]}" if len(args) >= 2 and isinstance(args[1], str) else ""
            cls = ObjectNotFound if exc.code in _MISSING else StorageError
            raise cls(f"S3 refused {getattr(fn, '__name__', 'request')} {where}: {exc.code} "
                      f"({exc.message or 'no message'})", exc.code) from None

    # ---- buckets -------------------------------------------------------
    def ensure_buckets(self) -> list[str]:
        """Create missing buckets with versioning + Object Lock; warn where the server can't.

        One listing tells which exist (every command connects, so this is one request, not one per bucket).
        """
        try:
            existing = {b.name for b in self._call(self.client.list_buckets)}
        except StorageError:  # a key allowed our buckets but not the listing: ask bucket by bucket
            existing = {n for n in self.buckets.values() if self._call(self.client.bucket_exists, n)}
        for role, name in self.buckets.items():
            if name in existing:
                continue
            try:
                self._call(self.client.make_bucket, name, object_lock=True)
                self._call(self.client.set_object_lock_config, name,
                           ObjectLockConfig(self.settings.retention_mode, self.settings.retention_days, DAYS))
            except StorageError as exc:
                if exc.code == "BucketAlreadyOwnedByYou":
                    continue
                log.warning("object lock unavailable for %s (%s); falling back to versioning", name, exc.code)
                if not self._call(self.client.bucket_exists, name):
                    self._call(self.client.make_bucket, name)
                self._call(self.client.set_bucket_versioning, name, VersioningConfig(ENABLED))
            log.info("created bucket %s for %s", name, role)
        try:
            cfg = self._call(self.client.get_object_lock_config, self.buckets["originals"])
            self.lock_supported = bool(cfg and cfg.mode)
        except StorageError:
            self.lock_supported = False
        if not self.lock_supported:
            msg = ("WARNING: S3 Object Lock is not available on the originals bucket: the server will not "
                   "refuse deletion or overwrite of evidence. Tampering is still detected by `custody verify`, "
                   "but not prevented. Use MinIO (or another server) with Object Lock for production.")
            self.warnings.append(msg)
            log.warning(msg)
        return self.warnings

    # ---- writes --------------------------------------------------------
    def object_headers(self, content_type: str, metadata: dict[str, str] | None, lock: bool,
                       legal_hold: bool = False, retention_mode: str | None = None) -> dict[str, str]:
        """Headers every new object carries: type, metadata, encryption, retention (and legal hold).

        `retention_mode` overrides the configured mode for records that must never be deletable (the
        transparency log is always COMPLIANCE, even where evidence is kept under GOVERNANCE)."""
        headers: dict[str, str] = {"Content-Type": content_type}
        for k, v in (metadata or {}).items():
            headers[f"x-amz-meta-{k}"] = header_safe(v)
        if self.settings.sse:
            headers["X-Amz-Server-Side-Encryption"] = "AES256"
        if lock and self.lock_supported:
            until = datetime.now(UTC) + timedelta(days=self.settings.retention_days)
            headers["x-amz-object-lock-mode"] = retention_mode or self.settings.retention_mode
            headers["x-amz-object-lock-retain-until-date"] = until.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if legal_hold:
                headers["x-amz-object-lock-legal-hold"] = "ON"
        return headers

    def put_file(self, bucket: str, key: str, path: Path, **kw: Any) -> StoredObject:
        """Upload a local file, reading it exactly once."""
        with open(path, "rb") as f:
            kw.setdefault("size_hint", os.fstat(f.fileno()).st_size)
            return self.put_stream(bucket, key, f, **kw)

    def put_stream(self, bucket: str, key: str, stream: BinaryIO, *, content_type: ContentType = "application/"
                   "octet-stream", metadata: dict[str, str] | None = None, lock: bool = False,
                   legal_hold: bool = False, expected_sha256: str | None = None,
                   algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS, progress: Progress | None = None,
                   tag_digests: bool = True, if_absent: bool = False, size_hint: int | None = None) -> StoredObject:
        """Upload a stream of any length in bounded memory, hashing in the same pass.

        With `expected_sha256` the hash is written into the object's metadata at creation and a
        mismatch aborts the upload before anything is stored. An object smaller than one part is
        one request with its digests as tags; a larger one gets its digests tagged once known.
        `if_absent` makes the server refuse to replace an existing key (ChainConflict). `size_hint` (bytes the
        stream should hold) sizes the first buffer.
        """
        part_size = self.settings.part_size_mb * 1024 * 1024
        reader = HashingReader(stream, algorithms)
        first = read_full(reader, part_size, size_hint)
        ctype = content_type(bytes(first[:1024 * 1024])) if callable(content_type) else content_type
        meta = dict(metadata or {})
        if expected_sha256:
            meta["sha256"] = expected_sha256.lower()
        if len(first) < part_size:
            self._check_expected(reader.digests, expected_sha256, key)
            meta["sha256"] = reader.digests.sha256
            headers = self.object_headers(ctype, meta, lock, legal_hold)
            if tag_digests:
                headers["x-amz-tagging"] = urlencode(reader.digests.hexdigests())
            obj = self._put_single(bucket, key, first, headers, reader.digests, ctype, if_absent)
            if progress:
                progress(len(first))
            return obj
        if if_absent:
            raise ValueError("if_absent is for objects smaller than one part (conditional multipart is not portable)")
        headers = self.object_headers(ctype, meta, lock, legal_hold)
        mp = MultipartUpload(self, bucket, key, headers)
        pending = [first]

        def next_part() -> bytearray:
            return pending.pop() if pending else read_full(reader, part_size)

        try:
            etags = mp.send(1, next_part, on_part=(lambda _n, _e, size: progress(size)) if progress else None)
            self._check_expected(reader.digests, expected_sha256, key)
            version_id, etag, expected_etag = mp.complete(etags)
        except BaseException:
            mp.abort()
            raise
        obj = StoredObject(bucket, key, version_id, reader.digests.sha256, reader.digests.size,
                           reader.digests.hexdigests(), ctype)
        self.check_written(obj, etag, expected_etag if self.part_md5 else None, force_stat=True)  # + size check
        if tag_digests:
            self.tag_digests(obj)
        return obj

    def _put_single(self, bucket: str, key: str, data: bytes | bytearray, headers: dict[str, str], digests: Digests,
                    ctype: str, if_absent: bool) -> StoredObject:
        # the server checks the body against a digest before storing, so the body need not also be signed
        # (over HTTPS the SDK never signs it anyway); the echoed SHA-256, or else the ETag, proves what was stored
        sha_b64 = base64.b64encode(bytes.fromhex(digests.sha256)).decode()
        headers = {**headers, "x-amz-content-sha256": UNSIGNED}
        if if_absent:
            headers["If-None-Match"] = "*"
        mode = self.put_sha256
        md5 = None
        if mode is not False:
            headers["x-amz-checksum-sha256"] = sha_b64
        if mode is not True:
            b64, md5 = b64md5(data)
            headers["Content-MD5"] = b64
        try:
            try:
                result = self._call(self.client._put_object, bucket, key, data, headers=headers)
            except StorageError as exc:
                if mode is not None or exc.code not in CHECKSUM_REFUSED:
                    raise
                self.put_sha256 = False  # the header itself is refused: send Content-MD5 alone from now on
                headers.pop("x-amz-checksum-sha256")
                result = self._call(self.client._put_object, bucket, key, data, headers=headers)
        except StorageError as exc:
            if if_absent and exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ChainConflict(f"{bucket}/{key} already exists") from None
            raise
        obj = StoredObject(bucket, key, result.version_id, digests.sha256, digests.size, digests.hexdigests(), ctype)
        if "x-amz-checksum-sha256" in headers and (result.http_headers or {}).get("x-amz-checksum-sha256") == sha_b64:
            self.put_sha256 = True  # the server verified our SHA-256 before storing and says so
            return obj
        self.put_sha256 = False
        self.check_written(obj, result.etag, (md5 or b64md5(data)[1]).hex())
        return obj

    def put_bytes(self, bucket: str, key: str, data: bytes, *, content_type: str = "application/json",
                  if_absent: bool = False, lock: bool = False, retention_mode: str | None = None) -> StoredObject:
        """Small object in one request; with `if_absent` the server refuses to replace an existing key."""
        d = Digests(("sha256",))
        d.update(data)
        headers = self.object_headers(content_type, {"sha256": d.sha256}, lock, False, retention_mode)
        return self._put_single(bucket, key, data, headers, d, content_type, if_absent)

    @staticmethod
    def _check_expected(d: Digests, expected: str | None, key: str) -> None:
        if expected and d.sha256 != expected.lower():
            raise IntegrityError(f"SHA-256 mismatch for {key}: declared {expected.lower()}, received {d.sha256}; "
                                 "nothing was stored — re-send the file")

    def check_written(self, obj: StoredObject, etag: str | None, etag_expected: str | None,
                      force_stat: bool = False) -> None:
        """Prove the stored version holds what we sent.

        For a server that does not confirm a SHA-256 checksum: it checked Content-MD5 (or the signed payload
        SHA-256) before storing, and an ETag equal to our own MD5 says it stored those bytes: no second
        request. Otherwise ask the server (HEAD).
        """
        got = (etag or "").strip('"').lower()
        if not force_stat and etag_expected and is_md5(got) and got == etag_expected.lower():
            return
        st = self.stat(obj.bucket, obj.key, obj.version_id)
        problems = []
        if st is None:
            problems.append("not found after writing")
        else:
            if st.size != obj.size:
                problems.append(f"size {st.size} != {obj.size} sent")
            got = (st.etag or etag or "").strip('"')
            if got and etag_expected and got != etag_expected:
                problems.append(f"ETag {got} != {etag_expected} computed while sending")
            if st.sha256 and st.sha256 != obj.sha256:
                problems.append(f"metadata sha256 {st.sha256} != {obj.sha256}")
        if problems:
            raise IntegrityError(f"object {obj.bucket}/{obj.key} version {obj.version_id} failed the post-write "
                                 f"check: {'; '.join(problems)}")

    def tag_digests(self, obj: StoredObject) -> None:
        """Attach the digests as tags (S3 lets a locked version be tagged without a new version)."""
        tags = Tags.new_object_tags()
        for name, value in obj.digests.items():
            tags[name] = value
        self._call(self.client.set_object_tags, obj.bucket, obj.key, tags, version_id=obj.version_id)

    def multipart(self, bucket: str, key: str, headers: dict[str, str], upload_id: str | None = None
                  ) -> MultipartUpload:
        """A multipart upload to create or to continue (the resumable field upload drives it)."""
        return MultipartUpload(self, bucket, key, headers, upload_id)

    # ---- reads ---------------------------------------------------------
    def stat(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """HEAD of a version (latest if None); None when it does not exist or a delete marker hides it."""
        try:
            st = self._call(self.client.stat_object, bucket, key, version_id=version_id)
        except ObjectNotFound:
            return None
        except StorageError as exc:
            if exc.code == "MethodNotAllowed":  # the latest version is a delete marker
                return None
            raise
        return ObjectInfo(st.version_id, int(st.size or 0), (st.etag or "").strip('"'), dict(st.metadata or {}))

    def get_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        resp = self._call(self.client.get_object, bucket, key, version_id=version_id)
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def try_get_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
        try:
            return self.get_bytes(bucket, key, version_id)
        except StorageError as exc:
            if isinstance(exc, ObjectNotFound) or exc.code in ("InvalidArgument", "MethodNotAllowed"):
                return None
            raise

    def stream_object(self, bucket: str, key: str, version_id: str | None = None,
                      chunk: int = 1024 * 1024, offset: int = 0, length: int = 0) -> Iterator[bytes]:
        """Yield an object's bytes (or a range of them) in bounded chunks."""
        resp = self._call(self.client.get_object, bucket, key, version_id=version_id, offset=offset, length=length)
        try:
            try:
                yield from resp.stream(chunk)
            except (urllib3.exceptions.HTTPError, ConnectionError, OSError) as exc:
                raise StoreUnavailable(f"S3 endpoint {self.endpoint} broke off while sending {bucket}/{key} "
                                       f"({type(exc).__name__}); start it (`custody stack up`) and retry") from None
        finally:
            resp.close()
            resp.release_conn()

    def rehash(self, bucket: str, key: str, version_id: str | None = None,
               algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> Digests:
        d = Digests(algorithms)
        for chunk in self.stream_object(bucket, key, version_id):
            d.update(chunk)
        return d

    def download_verified(self, bucket: str, key: str, version_id: str | None, expected_sha256: str,
                          dest: Path) -> Digests:
        """Hand-off check: stream an object to disk, hashing in the same pass; refuse a mismatch."""
        from hashing.stream import HashingWriter

        with open(dest, "wb") as f:
            w = HashingWriter(f)
            for chunk in self.stream_object(bucket, key, version_id):
                w.write(chunk)
        if w.digests.sha256 != expected_sha256:
            dest.unlink(missing_ok=True)
            raise IntegrityError(f"{bucket}/{key} version {version_id} hashes to {w.digests.sha256}, custody record "
                                 f"says {expected_sha256}: refusing to work on it (run `custody verify`)")
        return w.digests

    def set_legal_hold(self, bucket: str, key: str, version_id: str | None, on: bool) -> None:
        fn = self.client.enable_object_legal_hold if on else self.client.disable_object_legal_hold
        self._call(fn, bucket, key, version_id=version_id)

    def presigned_get(self, bucket: str, key: str, version_id: str | None, expires: timedelta,
                      response_headers: dict[str, str] | None = None) -> str:
        return self._call(self.client.presigned_get_object, bucket, key, expires=expires, version_id=version_id,
                          response_headers=response_headers)

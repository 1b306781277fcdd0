"""The evidence store: S3 buckets behind the `minio` SDK.

Every put hashes the bytes in the pass that sends them, sends each part with
Content-MD5 so the server rejects corrupted transfers, and checks the stored
object's size and ETag afterwards. Originals are written under S3 Object
Lock; keys are generated IDs, never user strings.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.datatypes import Part
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.versioningconfig import ENABLED, VersioningConfig

from hashing.stream import DEFAULT_ALGORITHMS, Digests, HashingReader
from pipeline.errors import ChainConflict, IntegrityError, StoreUnavailable, UsageError
from pipeline.secrets import embedded_credentials
from pipeline.settings import Settings, is_loopback, split_endpoint

log = logging.getLogger(__name__)

META_SHA256 = "x-amz-meta-sha256"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class StoredObject:
    """Where an object version lives and what its bytes hash to."""

    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    digests: dict[str, str] = field(default_factory=dict)

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


def _b64md5(data: bytes | memoryview) -> tuple[str, bytes]:
    d = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(d).decode(), d


def make_client(settings: Settings) -> Minio:
    """A minio client for the configured endpoint; TLS is mandatory off loopback."""
    if settings.embedded:
        from pipeline.stack import read_state

        state = read_state(settings)
        if not state:
            raise StoreUnavailable(
                f"the embedded S3 server for CUSTODY_HOME={settings.home} is not running; "
                "start it with `custody stack up`")
        access, secret = embedded_credentials(settings.secrets_dir)
        return Minio(state.endpoint, access, secret, secure=False)
    endpoint, scheme_tls = split_endpoint(settings.s3_endpoint or "")
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    secure = settings.s3_secure if settings.s3_secure is not None else (
        scheme_tls if scheme_tls is not None else not is_loopback(host))
    if not secure and not is_loopback(host):
        raise UsageError(f"refusing plain HTTP to non-loopback S3 endpoint {host}; use https:// "
                         "(evidence and keys must not cross the network in clear)")
    if not (settings.s3_access_key and settings.s3_secret_key):
        raise UsageError("CUSTODY_S3_ACCESS_KEY and CUSTODY_S3_SECRET_KEY must be set for an external endpoint")
    http = None
    if settings.s3_ca_file:
        http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(settings.s3_ca_file))
    return Minio(endpoint, settings.s3_access_key.get_secret_value(),
                 settings.s3_secret_key.get_secret_value(), secure=secure,
                 region=settings.s3_region, http_client=http)


class EvidenceStore:
    """Bucket-level operations with integrity checks; knows nothing of cases."""

    def __init__(self, settings: Settings, client: Minio | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        self.buckets = settings.buckets
        self.lock_supported = True
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        # Over HTTPS minio sends UNSIGNED-PAYLOAD, so we add Content-MD5 per part and
        # check ETags. Over plain HTTP (loopback only) SigV4 already signs each part's
        # SHA-256 and the server rejects a mismatch; a second digest would only cost CPU.
        self.part_md5 = self.client._base_url.is_https

    @classmethod
    def connect(cls, settings: Settings) -> EvidenceStore:
        store = cls(settings)
        store.ensure_buckets()
        return store

    # ---- buckets -------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an SDK call, turning connection failures into StoreUnavailable."""
        try:
            return fn(*args, **kwargs)
        except (urllib3.exceptions.HTTPError, ConnectionError, OSError) as exc:
            raise StoreUnavailable(f"S3 endpoint {self.client._base_url.host} unreachable ({type(exc).__name__}); "
                                   "start it (`custody stack up`) or check CUSTODY_S3_ENDPOINT") from None
        except S3Error as exc:
            if exc.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied") and fn in (
                    self.client.list_buckets, self.client.bucket_exists):
                raise StoreUnavailable(f"S3 endpoint refused our credentials ({exc.code}); "
                                       "check CUSTODY_S3_ACCESS_KEY / CUSTODY_S3_SECRET_KEY") from None
            raise

    def ensure_buckets(self) -> list[str]:
        """Create missing buckets with versioning + Object Lock; warn where the server can't."""
        for role, name in self.buckets.items():
            if self._call(self.client.bucket_exists, name):
                continue
            try:
                self._call(self.client.make_bucket, name, object_lock=True)
                self._call(self.client.set_object_lock_config, name,
                           ObjectLockConfig(self.settings.retention_mode, self.settings.retention_days, DAYS))
            except S3Error as exc:
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
        except S3Error:
            self.lock_supported = False
        if not self.lock_supported:
            msg = ("WARNING: S3 Object Lock is not available on the originals bucket: the server will not "
                   "refuse deletion or overwrite of evidence. Tampering is still detected by `custody verify`, "
                   "but not prevented. Use MinIO (or another server) with Object Lock for production.")
            self.warnings.append(msg)
            log.warning(msg)
        return self.warnings

    # ---- writes --------------------------------------------------------
    def _base_headers(self, content_type: str, metadata: dict[str, str] | None, lock: bool,
                      legal_hold: bool) -> dict[str, str]:
        headers: dict[str, str] = {"Content-Type": content_type}
        for k, v in (metadata or {}).items():
            headers[f"x-amz-meta-{k}"] = _header_safe(v)
        if self.settings.sse:
            headers["X-Amz-Server-Side-Encryption"] = "AES256"
        if lock and self.lock_supported:
            until = datetime.now(UTC) + timedelta(days=self.settings.retention_days)
            headers["x-amz-object-lock-mode"] = self.settings.retention_mode
            headers["x-amz-object-lock-retain-until-date"] = until.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if legal_hold:
                headers["x-amz-object-lock-legal-hold"] = "ON"
        return headers

    def put_file(self, bucket: str, key: str, path: Path, **kw: Any) -> StoredObject:
        """Upload a local file, reading it exactly once."""
        with open(path, "rb") as f:
            return self.put_stream(bucket, key, f, **kw)

    def put_stream(self, bucket: str, key: str, stream: BinaryIO, *, content_type: str = "application/octet-stream",
                   metadata: dict[str, str] | None = None, lock: bool = False, legal_hold: bool = False,
                   expected_sha256: str | None = None, algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
                   progress: Progress | None = None, tag_digests: bool = True) -> StoredObject:
        """Upload a stream of any length in bounded memory, hashing in the same pass.

        With `expected_sha256` the hash is written into the object's metadata
        at creation and a mismatch aborts the upload before anything is stored.
        Otherwise the digests are attached as object tags once known.
        """
        part_size = self.settings.part_size_mb * 1024 * 1024
        reader = HashingReader(stream, algorithms)
        meta = dict(metadata or {})
        if expected_sha256:
            meta["sha256"] = expected_sha256.lower()
        headers = self._base_headers(content_type, meta, lock, legal_hold)
        first = _read_full(reader, part_size)
        if len(first) < part_size:
            if expected_sha256 is None:
                headers[META_SHA256] = reader.digests.sha256
            self._check_expected(reader.digests, expected_sha256, key)
            b64, md5 = _b64md5(first)  # cheap at this size; lets us check the ETag
            result = self._call(self.client._put_object, bucket, key, first,
                                headers={**headers, "Content-MD5": b64})
            if progress:
                progress(len(first))
            etag_expected: str | None = md5.hex()
            version_id = result.version_id
            etag = result.etag
        else:
            version_id, etag, etag_expected = self._multipart(bucket, key, reader, first, headers, part_size,
                                                              expected_sha256, progress)
        obj = StoredObject(bucket, key, version_id, reader.digests.sha256, reader.digests.size,
                           reader.digests.hexdigests())
        self._check_written(obj, etag, etag_expected)
        if tag_digests:
            self._call(self.client.set_object_tags, bucket, key, _digest_tags(obj.digests), version_id=version_id)
        return obj

    def _multipart(self, bucket: str, key: str, reader: HashingReader, first: bytes, headers: dict[str, str],
                   part_size: int, expected_sha256: str | None,
                   progress: Progress | None) -> tuple[str | None, str | None, str | None]:
        upload_id = self._call(self.client._create_multipart_upload, bucket, key, dict(headers))
        md5s: dict[int, bytes] = {}
        futures: list[Future[tuple[int, str]]] = []
        threads = self.settings.upload_threads
        sem = threading.BoundedSemaphore(threads + 1)  # bounds memory to (threads+2) parts

        def send(num: int, data: bytes) -> tuple[int, str]:
            try:
                part_headers = {}
                if self.part_md5:
                    b64, md5 = _b64md5(data)
                    md5s[num] = md5
                    part_headers["Content-MD5"] = b64
                etag = self._call(self.client._upload_part, bucket, key, data, part_headers, upload_id, num)
                if num in md5s and etag.strip('"') != md5s[num].hex():
                    raise IntegrityError(f"part {num} of {key}: server ETag {etag} != MD5 {md5s[num].hex()}")
                if progress:
                    progress(len(data))
                return num, etag
            finally:
                sem.release()

        try:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                num, data = 1, first
                while data:
                    sem.acquire()
                    futures.append(pool.submit(send, num, data))
                    if any(f.done() and f.exception() for f in futures):
                        break
                    num += 1
                    data = _read_full(reader, part_size)
                parts = [Part(n, e) for n, e in sorted(f.result() for f in futures)]
            self._check_expected(reader.digests, expected_sha256, key)
            result = self._call(self.client._complete_multipart_upload, bucket, key, upload_id, parts)
        except BaseException:
            try:
                self.client._abort_multipart_upload(bucket, key, upload_id)
            except Exception:  # noqa: BLE001 - best effort; the original error matters
                log.warning("could not abort multipart upload of %s", key)
            raise
        if not md5s:
            return result.version_id, result.etag, None
        composite = hashlib.md5(b"".join(md5s[i] for i in sorted(md5s)), usedforsecurity=False).hexdigest()
        return result.version_id, result.etag, f"{composite}-{len(md5s)}"

    @staticmethod
    def _check_expected(d: Digests, expected: str | None, key: str) -> None:
        if expected and d.sha256 != expected.lower():
            raise IntegrityError(f"SHA-256 mismatch for {key}: declared {expected.lower()}, received {d.sha256}; "
                                 "nothing was stored — re-send the file")

    def _check_written(self, obj: StoredObject, etag: str | None, etag_expected: str | None) -> None:
        st = self._call(self.client.stat_object, obj.bucket, obj.key, version_id=obj.version_id)
        problems = []
        if st.size != obj.size:
            problems.append(f"size {st.size} != {obj.size} sent")
        got = (st.etag or etag or "").strip('"')
        if got and etag_expected and got != etag_expected:
            problems.append(f"ETag {got} != {etag_expected} computed while sending")
        meta_sha = (st.metadata or {}).get(META_SHA256) or (st.metadata or {}).get("X-Amz-Meta-Sha256")
        if meta_sha and meta_sha != obj.sha256:
            problems.append(f"metadata sha256 {meta_sha} != {obj.sha256}")
        if problems:
            raise IntegrityError(f"object {obj.bucket}/{obj.key} version {obj.version_id} failed the post-write "
                                 f"check: {'; '.join(problems)}")

    def put_bytes(self, bucket: str, key: str, data: bytes, *, content_type: str = "application/json",
                  if_absent: bool = False, lock: bool = False) -> StoredObject:
        """Small object; with `if_absent` the server refuses to replace an existing key."""
        headers = self._base_headers(content_type, None, lock, False)
        sha = hashlib.sha256(data).hexdigest()
        headers[META_SHA256] = sha
        b64, md5 = _b64md5(data)
        headers["Content-MD5"] = b64
        if if_absent:
            headers["If-None-Match"] = "*"
        try:
            result = self._call(self.client._put_object, bucket, key, data, headers=headers)
        except S3Error as exc:
            if if_absent and exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ChainConflict(f"{bucket}/{key} already exists") from None
            raise
        obj = StoredObject(bucket, key, result.version_id, sha, len(data), {"sha256": sha})
        self._check_written(obj, result.etag, md5.hex())
        return obj

    # ---- reads ---------------------------------------------------------
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
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "InvalidArgument"):
                return None
            raise

    def stream_object(self, bucket: str, key: str, version_id: str | None = None,
                      chunk: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield an object's bytes in bounded chunks."""
        resp = self._call(self.client.get_object, bucket, key, version_id=version_id)
        try:
            yield from resp.stream(chunk)
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

    def versions(self, bucket: str, key: str) -> list[VersionInfo]:
        out = []
        for o in self._call(self.client.list_objects, bucket, prefix=key, include_version=True):
            if o.object_name != key:
                continue
            out.append(VersionInfo(o.version_id, bool(o.is_latest), bool(o.is_delete_marker), o.size,
                                   o.last_modified))
        return out

    def is_deleted(self, bucket: str, key: str) -> bool:
        """True when a plain GET of the key fails: a delete marker hides its versions."""
        try:
            self._call(self.client.stat_object, bucket, key)
            return False
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "MethodNotAllowed", "ResourceNotFound"):
                return True
            raise

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return [o.object_name for o in self._call(self.client.list_objects, bucket, prefix=prefix, recursive=True)]

    def list_all_versions(self, bucket: str, prefix: str) -> list[tuple[str, VersionInfo]]:
        objs = self._call(self.client.list_objects, bucket, prefix=prefix, recursive=True, include_version=True)
        return [(o.object_name, VersionInfo(o.version_id, bool(o.is_latest), bool(o.is_delete_marker), o.size,
                                            o.last_modified)) for o in objs]

    def set_legal_hold(self, bucket: str, key: str, version_id: str | None, on: bool) -> None:
        fn = self.client.enable_object_legal_hold if on else self.client.disable_object_legal_hold
        self._call(fn, bucket, key, version_id=version_id)

    def presigned_get(self, bucket: str, key: str, version_id: str | None, expires: timedelta) -> str:
        return self._call(self.client.presigned_get_object, bucket, key, expires=expires, version_id=version_id)


def _read_full(reader: HashingReader, n: int) -> bytearray:
    """Read exactly n bytes unless EOF comes first (pipes return short reads), into one buffer, no extra copy."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = reader.readinto(view[got:])
        if not k:
            break
        got += k
    view.release()
    del buf[got:]
    return buf


def _digest_tags(digests: dict[str, str]) -> Tags:
    tags = Tags.new_object_tags()
    for name, value in digests.items():
        tags[name] = value
    return tags


def _header_safe(value: str) -> str:
    """S3 metadata must be ASCII; percent-encode anything else (original names keep their bytes)."""
    from urllib.parse import quote

    return quote(str(value), safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")

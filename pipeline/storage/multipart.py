"""The one S3 multipart engine: parts sent in parallel in bounded memory, each one checked.

Both a plain large put (`EvidenceStore.put_stream`) and a resumable field upload
(`pipeline.intake.resumable`) drive this class; the resumable one adds a journal
through the `on_part` callback and lists what the server already holds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from minio.datatypes import Part

from pipeline.errors import IntegrityError, StorageError
from pipeline.storage.client import UNSIGNED

if TYPE_CHECKING:
    from pipeline.storage.store import EvidenceStore

#: next part's bytes (empty at the end)
NextPart = Callable[[], bytearray]
#: (part number, ETag, bytes in the part), after the server acknowledged it
OnPart = Callable[[int, str, int], None]
#: answers of a server that does not take part checksums (the part is then sent again, signed)
CHECKSUM_REFUSED = ("InvalidRequest", "InvalidArgument", "NotImplemented", "XAmzContentSHA256Mismatch",
                    "InvalidDigest")


@dataclass(frozen=True)
class PartInfo:
    number: int
    etag: str
    size: int | None


def is_md5(etag: str) -> bool:
    e = etag.strip('"').lower()
    return len(e) == 32 and all(c in "0123456789abcdef" for c in e)


def composite_etag(md5_hexes: list[str]) -> str:
    """S3's multipart ETag: MD5 of the concatenated part MD5s, dash, part count."""
    joined = b"".join(bytes.fromhex(h.strip('"')) for h in md5_hexes)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5_hexes)}"


class MultipartUpload:
    """One multipart upload of `bucket/key`; create it, or continue one by its upload id."""

    def __init__(self, store: EvidenceStore, bucket: str, key: str, headers: dict[str, str],
                 upload_id: str | None = None) -> None:
        self.store, self.bucket, self.key, self.headers = store, bucket, key, dict(headers)
        self.upload_id = upload_id
        self._md5: dict[int, str] = {}

    def start(self) -> str:
        if self.upload_id is None:
            self.upload_id = self.store._call(self.store.client._create_multipart_upload, self.bucket, self.key,
                                              dict(self.headers))
        return self.upload_id

    def server_parts(self) -> dict[int, PartInfo]:
        """Parts the server holds for this upload (raises ObjectNotFound once it is completed or aborted)."""
        out: dict[int, PartInfo] = {}
        marker: str | None = None
        while True:
            res = self.store._call(self.store.client._list_parts, self.bucket, self.key, self.upload_id,
                                   max_parts=1000, part_number_marker=marker)
            for p in res.parts:
                out[p.part_number] = PartInfo(p.part_number, p.etag, int(p.size) if p.size is not None else None)
            if not res.is_truncated or not res.next_part_number_marker:
                return out
            marker = res.next_part_number_marker

    def send(self, first_number: int, next_part: NextPart, *, on_part: OnPart | None = None,
             before_send: Callable[[int], None] | None = None) -> dict[int, str]:
        """Send parts first_number, first_number+1, ... until `next_part` returns nothing.

        At most threads+2 parts are in memory. With Content-MD5 (HTTPS) the server rejects a corrupted
        part and its ETag must equal our MD5; over plain HTTP (loopback only) SigV4 already signs each
        part's SHA-256. Returns part number -> ETag; the first failure stops reading and is raised.
        """
        self.start()
        threads = self.store.settings.upload_threads
        sem = threading.BoundedSemaphore(threads + 1)
        futures: list[Future[tuple[int, str]]] = []
        md5_parts = self.store.part_md5

        def one(num: int, data: bytearray) -> tuple[int, str]:
            try:
                headers: dict[str, str] = {}
                md5 = None
                if md5_parts:
                    md5 = hashlib.md5(data, usedforsecurity=False)
                    headers["Content-MD5"] = base64.b64encode(md5.digest()).decode()
                etag = self._send_crc(num, data) if self.store.part_crc and not md5_parts else None
                if etag is None:
                    etag = self.store._call(self.store.client._upload_part, self.bucket, self.key, data, headers,
                                            self.upload_id, num)
                if md5 is not None:
                    if etag.strip('"').lower() != md5.hexdigest():
                        raise IntegrityError(f"part {num} of {self.key}: server ETag {etag} != MD5 {md5.hexdigest()}")
                    self._md5[num] = md5.hexdigest()
                if on_part:
                    on_part(num, etag, len(data))
                return num, etag
            finally:
                sem.release()

        with ThreadPoolExecutor(max_workers=threads) as pool:
            num = first_number
            data = next_part()
            while data:
                if before_send:
                    before_send(len(data))
                sem.acquire()
                futures.append(pool.submit(one, num, data))
                if any(f.done() and f.exception() for f in futures):
                    break
                num += 1
                data = next_part()
            return dict(f.result() for f in futures)

    def _send_crc(self, num: int, data: bytearray) -> str | None:
        """Send a part with its CRC-32 for the server to verify, payload unsigned; None (and signed parts
        from now on) when the server does not confirm the checksum, so the caller resends it signed."""
        import deflate  # libdeflate's PCLMUL CRC-32; imported here, so commands that send nothing skip it

        crc = base64.b64encode(struct.pack(">I", deflate.crc32(data))).decode()
        headers = {"x-amz-checksum-crc32": crc, "x-amz-content-sha256": UNSIGNED}
        query = {"partNumber": str(num), "uploadId": str(self.upload_id)}
        try:
            res = self.store._call(self.store.client._put_object, self.bucket, self.key, data, headers,
                                   query_params=query)
        except StorageError as exc:
            if exc.code not in CHECKSUM_REFUSED:
                raise
            self.store.part_crc = False
            return None
        if (res.http_headers or {}).get("x-amz-checksum-crc32") != crc:
            self.store.part_crc = False  # not verified: the same part number is sent again, signed
            return None
        return str(res.etag)

    def complete(self, etags: dict[int, str]) -> tuple[str | None, str | None, str | None]:
        """Complete with these parts; returns (version id, ETag, the ETag we expect, if we can know it)."""
        parts = [Part(n, etags[n]) for n in sorted(etags)]
        result = self.store._call(self.store.client._complete_multipart_upload, self.bucket, self.key,
                                  self.upload_id, parts)
        expected = None
        if self._md5 and set(self._md5) == set(etags):
            expected = composite_etag([self._md5[n] for n in sorted(etags)])
        elif all(is_md5(e) for e in etags.values()):
            expected = composite_etag([etags[n] for n in sorted(etags)])
        return result.version_id, result.etag, expected

    def abort(self) -> None:
        """Best effort: the original error matters more than a failed abort."""
        if self.upload_id is None:
            return
        with contextlib.suppress(Exception):
            self.store.client._abort_multipart_upload(self.bucket, self.key, self.upload_id)

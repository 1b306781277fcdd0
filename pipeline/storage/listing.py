"""Listing what a bucket holds, versions and delete markers included: how verification finds what exists.

A mixin of `EvidenceStore`, kept apart so the write path stays readable; it uses only the store's SDK
boundary (`_call`) and `stat`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipeline.errors import StorageError
from pipeline.storage.objects import VersionInfo

if TYPE_CHECKING:
    from minio import Minio

    from pipeline.storage.objects import ObjectInfo


class Listing:
    client: Minio

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:  # provided by EvidenceStore
        raise NotImplementedError

    def stat(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        raise NotImplementedError

    def versions(self, bucket: str, key: str) -> list[VersionInfo]:
        out = []
        for o in self._call(self.client.list_objects, bucket, prefix=key, include_version=True):
            if o.object_name != key:
                continue
            out.append(VersionInfo(o.version_id, bool(o.is_latest), bool(o.is_delete_marker), o.size,
                                   o.last_modified, o.etag))
        return out

    def is_deleted(self, bucket: str, key: str) -> bool:
        """True when a plain GET of the key fails: a delete marker hides its versions."""
        return self.stat(bucket, key) is None

    def list_keys(self, bucket: str, prefix: str, start_after: str | None = None) -> list[str]:
        kw: dict[str, Any] = {"prefix": prefix, "recursive": True}
        if start_after:
            kw["start_after"] = start_after

        def list_objects() -> list[Any]:
            return list(self.client.list_objects(bucket, **kw))

        return [o.object_name for o in self._call(list_objects)]

    def iter_keys(self, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[str]:
        """Keys in order, page by page: a caller that stops early does not list the rest."""
        it = self._call(self.client.list_objects, bucket, prefix=prefix, recursive=True, start_after=start_after)
        while (o := self._call(next, it, None)) is not None:
            yield o.object_name

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        """Delete the latest version of each key (on a versioned bucket: a delete marker), one request per 1000."""
        from minio.deleteobjects import DeleteObject

        for i in range(0, len(keys), 1000):
            if errs := self._call(lambda b: list(self.client.remove_objects(bucket, b)),
                                  [DeleteObject(k) for k in keys[i:i + 1000]]):
                raise StorageError(f"S3 refused to delete {len(errs)} object(s) in {bucket}: {errs[0]}")

    def iter_versions(self, bucket: str, prefix: str, start_after: str | None = None
                      ) -> Iterator[tuple[str, VersionInfo]]:
        """Every version and delete marker under a prefix (keys after `start_after`), key by key, page by page."""
        it = self._call(self.client.list_objects, bucket, prefix=prefix, recursive=True, include_version=True,
                        start_after=start_after)
        while (o := self._call(next, it, None)) is not None:
            yield o.object_name, VersionInfo(o.version_id, bool(o.is_latest), bool(o.is_delete_marker), o.size,
                                             o.last_modified, o.etag)

    def list_all_versions(self, bucket: str, prefix: str, start_after: str | None = None
                          ) -> list[tuple[str, VersionInfo]]:
        return list(self.iter_versions(bucket, prefix, start_after))

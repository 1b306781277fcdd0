"""The S3 seam: the only package that imports minio. S3 errors become the project's own exceptions here."""

from pipeline.storage.objects import ObjectInfo, StoredObject, VersionInfo
from pipeline.storage.store import EvidenceStore

__all__ = ["EvidenceStore", "ObjectInfo", "StoredObject", "VersionInfo"]

"""What a bundle build works on and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.custody.catalog import Case, Exhibit
from pipeline.evidence import ExhibitObject
from pipeline.export.format import BundleFile


@dataclass
class BundledExhibit:
    exhibit: Exhibit
    folder: str
    events: list[dict[str, Any]]
    raw_events: list[tuple[str, bytes]]  # (file name, bytes exactly as stored)
    keys: dict[str, bytes]  # key id -> PEM
    head: str
    objects: list[ExhibitObject]
    files: list[BundleFile] = field(default_factory=list)
    thumbnails: list[tuple[str, str, bytes]] = field(default_factory=list)  # (label, bag path, bytes)


@dataclass
class BundleResult:
    """What was built, stored and recorded."""

    bundle_id: str
    path: Path
    bag_name: str
    case: Case
    exhibits: list[str]
    sha256: str
    size: int
    payload_bytes: int
    payload_files: int
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    events: dict[str, int] = field(default_factory=dict)  # exhibit ref -> seq of its `exported` event
    key_ids: list[str] = field(default_factory=list)
    treehead: dict[str, Any] = field(default_factory=dict)  # the tree head the bundle's chain heads are proven in
    seconds: float = 0.0  # whole operation
    build_seconds: float = 0.0  # until the zip is complete on disk (before storing it)

    def object_ref(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id, "sha256": self.sha256,
                "size": self.size}

    def as_dict(self) -> dict[str, Any]:
        return {"bundle_id": self.bundle_id, "path": str(self.path), "bag": self.bag_name, "case": self.case.ref,
                "case_id": self.case.id, "exhibits": self.exhibits, "sha256": self.sha256, "size": self.size,
                "payload_bytes": self.payload_bytes, "payload_files": self.payload_files,
                "stored": {"bucket": self.bucket, "key": self.key, "version_id": self.version_id},
                "exported_events": self.events, "signing_key_ids": self.key_ids, "treehead": self.treehead,
                "seconds": round(self.seconds, 3),
                "build_seconds": round(self.build_seconds, 3)}

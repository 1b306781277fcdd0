"""Online verification: every event link and signature, every object re-hashed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.chain import Finding
from pipeline.errors import StorageError
from pipeline.evidence import Evidence


@dataclass
class ExhibitReport:
    case_ref: str
    exhibit_ref: str
    exhibit_id: str
    events: int = 0
    objects: int = 0
    bytes_hashed: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case_ref, "exhibit": self.exhibit_ref, "exhibit_id": self.exhibit_id,
                "result": "PASS" if self.ok else "FAIL", "events": self.events, "objects": self.objects,
                "bytes_hashed": self.bytes_hashed,
                "failures": [{"subject": f.subject, "problem": f.problem} for f in self.findings]}


def verify_exhibit(ev: Evidence, case: Case, exhibit: Exhibit,
                   progress: Callable[[str], None] | None = None) -> ExhibitReport:
    rep = ExhibitReport(case.ref, exhibit.ref, exhibit.id)
    chain = ev.log.read(exhibit.id)
    rep.events = len(chain.events)
    rep.findings.extend(chain.findings)
    objects = ev.objects(chain.events, roles=("original", "derived", "bundle", "metadata"))
    rep.objects = len(objects)
    for obj in objects:
        subj = f"object {obj.bucket}/{obj.key} version {obj.version_id} ({obj.original_name or obj.role})"
        if progress:
            progress(subj)
        try:
            d = ev.store.rehash(obj.bucket, obj.key, obj.version_id)
        except StorageError as exc:
            rep.findings.append(Finding(subj, f"cannot be read ({exc.code}): deleted or replaced"))
            continue
        rep.bytes_hashed += d.size
        if d.sha256 != obj.sha256 or d.size != obj.size:
            rep.findings.append(Finding(subj, f"content differs from custody record: sha256 {d.sha256} size {d.size}, "
                                              f"recorded {obj.sha256} size {obj.size}"))
        versions = ev.store.versions(obj.bucket, obj.key)
        extra = [v for v in versions if v.version_id != obj.version_id and not v.is_delete_marker]
        if extra:
            rep.findings.append(Finding(subj, f"overwritten: {len(extra)} unrecorded version(s) exist "
                                              f"({', '.join(str(v.version_id) for v in extra)}); "
                                              "the recorded version is intact"))
        if ev.store.is_deleted(obj.bucket, obj.key):
            rep.findings.append(Finding(subj, "deleted: a delete marker hides the recorded version"))
    return rep

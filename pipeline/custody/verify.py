"""Online verification: every link, signature and object of each exhibit, and that nothing is missing.

Completeness comes from three records nobody can quietly shorten: the case log (which exhibits exist),
the transparency log (how long every chain was, from any home), and RFC 3161 time-stamps (when they
existed). The verifier's home remembers the newest tree head it verified, so a log rolled back behind its
back shows as an inconsistency. Indexes are only caches here: one hidden or missing is named, and the
exhibit is found and verified anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from pipeline.custody import treehead
from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.chain import Finding, check_chain
from pipeline.custody.log import events_prefix
from pipeline.custody.logcheck import check_logged
from pipeline.custody.seen import Seen
from pipeline.custody.timecheck import check_times
from pipeline.custody.timestamps import tsa_roots
from pipeline.custody.tlogview import Latest, LogView, TileMissing
from pipeline.errors import StorageError, UsageError
from pipeline.evidence import Evidence


@dataclass
class ExhibitReport:
    case_ref: str
    exhibit_ref: str
    exhibit_id: str
    events: int = 0
    objects: int = 0
    bytes_hashed: int = 0
    logged: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case_ref, "exhibit": self.exhibit_ref, "exhibit_id": self.exhibit_id,
                "result": "PASS" if self.ok else "FAIL", "events": self.events, "objects": self.objects,
                "bytes_hashed": self.bytes_hashed, "logged_length": self.logged,
                "failures": [{"subject": f.subject, "problem": f.problem} for f in self.findings]}


@dataclass
class Context:
    """What one verify run shares: the log view, the newest head it checks against, trusted time."""

    view: LogView
    latest: Latest | None
    roots: list[x509.Certificate]
    tolerance: timedelta
    findings: list[Finding] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        h = self.latest.head if self.latest else None
        return {"tree_size": h.size if h else 0, "root": h.root if h else None, "signed": h.time if h else None,
                "log_id": h.log_id if h else None, "timestamps_checked": bool(self.roots),
                "failures": [{"subject": f.subject, "problem": f.problem} for f in self.all_findings()]}

    def all_findings(self) -> list[Finding]:
        return self.findings + self.view.findings


def open_context(ev: Evidence) -> Context:
    """Find the newest tree head and check it against the one this home saw last (then remember it)."""
    view = LogView(ev.store, ev.log.trusted_keys())
    seen = Seen(ev.settings.home)
    store_id = f"{ev.store.endpoint}/{ev.store.buckets['custody']}"
    prev = seen.treehead(store_id)
    latest = view.latest(int(prev["batch"]) if prev else -1)
    ctx = Context(view, latest, [], timedelta(seconds=ev.settings.time_tolerance_s))
    try:
        ctx.roots = tsa_roots(ev.settings)
    except UsageError as exc:
        ctx.findings.append(Finding("trusted time", str(exc)))
    if not ctx.roots:
        ctx.findings.append(Finding("trusted time", "time-stamps not checked: no trusted TSA root certificate "
                                                    "(set CUSTODY_TSA_ROOTS to the TSA's CA, obtained from the TSA)"))
    if (prev is None or _consistent_with_seen(ctx, prev)) and latest is not None:
        seen.remember_treehead(store_id, latest.batch, latest.envelope)
    return ctx


def _consistent_with_seen(ctx: Context, prev: dict[str, Any]) -> bool:
    """Is the newest head an extension of the one this home verified last? Findings say why not."""
    subj = "transparency log"
    try:
        old = treehead.verify(prev["envelope"], ctx.view.trusted)
    except (treehead.TreeHeadError, KeyError, TypeError) as exc:
        ctx.findings.append(Finding(subj, f"this home's remembered tree head is unusable ({exc})"))
        return True  # replace it
    if ctx.latest is None:
        ctx.findings.append(Finding(subj, f"the log is gone: this verifier saw a tree head of {old.size} leaves "
                                          f"signed {old.time}, the store now shows none (rolled back or hidden)"))
        return False
    new = ctx.latest.head
    try:
        proof = ctx.view.tree(new.size).consistency_proof(old.size) if 0 < old.size < new.size else []
        treehead.check_consistent(old, new, proof)
    except treehead.InconsistentTreeHeads as exc:
        ctx.findings.append(Finding(subj, f"{exc}: this verifier saw the tree head of {old.size} leaves before"))
        return False
    except (TileMissing, ValueError) as exc:
        ctx.findings.append(Finding(subj, f"consistency with the tree head this verifier saw before cannot be "
                                          f"checked: {exc}"))
        return False
    return True


def _retired(ev: Evidence, docs: list[bytes | None]) -> list[Finding]:
    """Events signed by a key after a key change retired it."""
    retired = ev.log.trust().retired
    out = []
    for data in docs:
        try:
            doc = json.loads(data or b"")
            kid, when, seq = doc["signature"]["key_id"], doc["event"]["time"], doc["event"]["seq"]
        except (ValueError, KeyError, TypeError):
            continue
        if kid in retired and when > retired[kid]:
            out.append(Finding(f"event {seq}", f"signed at {when} by key {kid[:16]}…, retired by a key change at "
                                               f"{retired[kid]}"))
    return out


def verify_exhibit(ev: Evidence, case: Case, exhibit: Exhibit, progress: Callable[[str], None] | None = None,
                   ctx: Context | None = None) -> ExhibitReport:
    rep = ExhibitReport(case.ref, exhibit.ref, exhibit.id)
    trusted = ev.log.trusted_keys()
    slots = ev.log.slots(exhibit.id, trusted)
    chain = check_chain(slots, trusted, exhibit.id, ev.log.witnessed_length(exhibit.id))
    rep.events = len(chain.events)
    rep.findings.extend(chain.findings)
    rep.findings.extend(_retired(ev, [s.data for s in slots]))
    if ctx is not None:
        logged = check_logged(ctx.view, ctx.latest, events_prefix(exhibit.id), chain.events, roots=ctx.roots,
                              tolerance=ctx.tolerance, now=ctx.now)
        rep.logged = logged.logged_length
        rep.findings.extend(logged.findings)
        rep.findings.extend(check_times(chain.events, logged.anchors, tolerance=ctx.tolerance, now=ctx.now,
                                        timestamps_checked=bool(ctx.roots)))
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

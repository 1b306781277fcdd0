"""`custody verify --case`: the case log, the caches it backs, every exhibit it names, the transparency log.

The exhibits verified are the ones the case log records. An exhibit the index knows but the case log does
not, an index entry or catalogue record hidden or missing, is a finding: the index is a cache of the logs
(`custody log rebuild-index` restores it), and tampering with a cache is still tampering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.custody.caselog import caselog_prefix
from pipeline.custody.catalog import Case, Exhibit, case_index_key, exhibit_index_key
from pipeline.custody.chain import Finding
from pipeline.custody.logcheck import check_logged
from pipeline.custody.timecheck import check_times
from pipeline.custody.verify import Context, ExhibitReport, open_context, verify_exhibit
from pipeline.evidence import Evidence

REBUILD = "the index is a cache of the case logs: restore it with `custody log rebuild-index --case REF`"


@dataclass
class CaseReport:
    case: Case
    context: Context
    entries: int = 0
    members: list[Exhibit] = field(default_factory=list)
    bundles: int = 0
    findings: list[Finding] = field(default_factory=list)
    exhibits: list[ExhibitReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.context.all_findings() and all(r.ok for r in self.exhibits)

    def as_dict(self) -> dict[str, Any]:
        return {"result": "PASS" if self.ok else "FAIL", "case": self.case.ref, "case_id": self.case.id,
                "case_log": {"entries": self.entries, "exhibits": [e.ref for e in self.members],
                             "bundles": self.bundles,
                             "failures": [{"subject": f.subject, "problem": f.problem} for f in self.findings]},
                "transparency": self.context.as_dict(),
                "exhibits": [r.as_dict() for r in self.exhibits]}


def _cache_findings(ev: Evidence, case: Case, members: list[Exhibit]) -> list[Finding]:
    bucket = ev.store.buckets["custody"]
    out: list[Finding] = []

    def check(key: str, what: str, want_id: str) -> None:
        data = ev.store.try_get_bytes(bucket, key)
        if data is None:
            hidden = any(v.is_delete_marker for k, v in ev.store.list_all_versions(bucket, key) if k == key)
            out.append(Finding(key, f"{what} is {'hidden by a delete marker' if hidden else 'missing'}; {REBUILD}"))
        elif want_id not in data.decode(errors="replace"):
            out.append(Finding(key, f"{what} does not name {want_id}: altered"))

    check(case_index_key(case.ref), f"index entry of case {case.ref}", case.id)
    check(f"cases/{case.id}/case.json", f"record of case {case.ref}", case.id)
    for ex in members:
        check(exhibit_index_key(case.id, ex.ref), f"index entry of exhibit {ex.ref}", ex.id)
        check(f"exhibits/{ex.id}/exhibit.json", f"record of exhibit {ex.ref}", ex.id)
    known = {exhibit_index_key(case.id, ex.ref) for ex in members}
    for key in ev.store.list_keys(bucket, f"index/exhibit-ref/{case.id}/"):
        if key not in known:
            out.append(Finding(key, "an exhibit in the index that the case log does not record (added outside "
                                    "custody, or its creation was interrupted)"))
    return out


def verify_case(ev: Evidence, case: Case, exhibit_refs: list[str] | None = None,
                progress: Callable[[str], None] | None = None) -> CaseReport:
    ctx = open_context(ev)
    rep = CaseReport(case, ctx)
    cl = ev.cases.read(case.id, ev.log.trusted_keys())
    rep.entries, rep.members, rep.bundles = len(cl.chain.events), cl.exhibits, len(cl.bundles)
    rep.findings.extend(Finding(f"case log {f.subject}", f.problem) if f.subject.startswith("event") else f
                        for f in cl.chain.findings)
    rep.findings.extend(cl.findings)
    logged = check_logged(ctx.view, ctx.latest, caselog_prefix(case.id), cl.chain.events, roots=ctx.roots,
                          tolerance=ctx.tolerance, now=ctx.now, label="case log entry")
    rep.findings.extend(logged.findings)
    rep.findings.extend(check_times(cl.chain.events, logged.anchors, tolerance=ctx.tolerance, now=ctx.now,
                                    label="case log entry", timestamps_checked=bool(ctx.roots)))
    rep.findings.extend(_cache_findings(ev, case, cl.exhibits))
    chosen = cl.exhibits
    if exhibit_refs:
        chosen = []
        for ref in exhibit_refs:
            hit = next((e for e in cl.exhibits if e.ref == ref), None)
            if hit is None:
                _c, hit = ev.get(case.ref, ref)  # raises NotFoundError if it exists nowhere
                rep.findings.append(Finding(f"exhibit {ref}", "not recorded in the case log"))
            chosen.append(hit)
    for ex in chosen:
        rep.exhibits.append(verify_exhibit(ev, case, ex, progress, ctx))
    return rep

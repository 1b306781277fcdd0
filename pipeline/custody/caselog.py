"""Each case's own signed, hash-chained log of what it holds: the record that makes absence provable.

Stored like exhibit events (same envelope, canonical form, signature and prev_hash chain) under
`cases/<case-id>/log/<seq>.json`, with schema `custody.caselog/1`. Actions: `case_created` (record: the
case), `exhibit_added` (record: the exhibit), `bundle_exported` (record: the bundle, each exhibit's chain
length and head in it, the tree head it was logged under). The set of exhibits of a case is read from
here, never from a listing of the index, so hiding an index entry hides nothing; the case log's own head is
in the transparency log like every exhibit's, so truncating it is caught from any home. `index/...`,
`cases/<id>/case.json` and `exhibits/<id>/exhibit.json` are caches: `rebuild_indexes` restores them.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.chain import ChainReport, Finding, check_chain
from pipeline.custody.chainstore import ChainStore
from pipeline.custody.events import normalise
from pipeline.custody.keys import SignerBackend
from pipeline.custody.tlog import TransparencyLog

SCHEMA = "custody.caselog/1"
ACTIONS = ("case_created", "exhibit_added", "bundle_exported")


def caselog_prefix(case_id: str) -> str:
    return f"cases/{case_id}/log/"


def build_entry(*, case: Case, seq: int, prev_hash: str, actor: dict[str, str], action: str,
                record: dict[str, Any], time: str) -> dict[str, Any]:
    return normalise({"schema": SCHEMA, "case": case.brief(), "seq": seq, "time": time, "actor": actor,
                      "action": action, "record": record, "host": {"name": socket.gethostname()},
                      "prev_hash": prev_hash})


def _record(cls: type, rec: Any) -> Any:
    names = {f.name for f in fields(cls)}
    if not isinstance(rec, dict) or set(rec) != names:
        raise ValueError(f"record is not a {cls.__name__}")
    return cls(**{k: str(rec[k]) for k in names})


@dataclass
class CaseLogReport:
    """The case log, checked: its chain report, the case and exhibits it records, its bundles."""

    case_id: str
    chain: ChainReport
    case: Case | None = None
    exhibits: list[Exhibit] = field(default_factory=list)
    bundles: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.findings


class CaseLog:
    """Reads and appends case logs; they share the chain store and transparency log of the exhibit logs."""

    def __init__(self, chains: ChainStore, tlog: TransparencyLog, signer: SignerBackend) -> None:
        self.chains = chains
        self.tlog = tlog
        self.signer = signer
        self._members: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def append(self, case: Case, action: str, record: dict[str, Any], actor: Actor) -> dict[str, Any]:
        if action not in ACTIONS:
            raise ValueError(f"unknown case log action {action!r}")

        def build(seq: int, prev: str, when: str) -> dict[str, Any]:
            return build_entry(case=case, seq=seq, prev_hash=prev, actor=actor.as_dict(), action=action,
                               record=record, time=when)

        prefix = caselog_prefix(case.id)
        ev, _head = self.chains.append(case.id, prefix, build, self.signer)
        self.tlog.submit(prefix, ev["seq"])
        return ev

    # ---- reading -----------------------------------------------------------
    def read(self, case_id: str, trusted: dict[str, Any]) -> CaseLogReport:
        """The case log checked link by link and signature by signature, with what it says the case holds."""
        chain = check_chain(self.chains.slots(caselog_prefix(case_id)), trusted, None,
                            (w.length if (w := self.chains.witness.get(case_id)) else 0))
        rep = CaseLogReport(case_id, chain)
        seen: set[str] = set()
        for ev in chain.events:
            subj = f"case log entry {ev.get('seq')}"
            if (ev.get("case") or {}).get("id") != case_id or ev.get("schema") != SCHEMA:
                rep.findings.append(Finding(subj, "belongs to another case or is not a case log entry"))
                continue
            try:
                if ev["action"] == "case_created":
                    rep.case = _record(Case, ev["record"])
                elif ev["action"] == "exhibit_added":
                    ex = _record(Exhibit, ev["record"])
                    if ex.case_id != case_id:
                        raise ValueError("exhibit of another case")
                    if ex.id not in seen:
                        seen.add(ex.id)
                        rep.exhibits.append(ex)
                elif ev["action"] == "bundle_exported":
                    rep.bundles.append(ev["record"])
            except (KeyError, ValueError, TypeError) as exc:
                rep.findings.append(Finding(subj, f"unreadable record ({exc})"))
        if not chain.events and not chain.findings:
            rep.findings.append(Finding(f"case {case_id}", "has no case log: nothing proves which exhibits it holds "
                                                           "(a case created before case logs: run "
                                                           "`custody log adopt --case REF`)"))
        rep.exhibits.sort(key=lambda e: e.ref)
        return rep

    # ---- keeping it complete -----------------------------------------------------
    def ensure_case(self, case: Case, actor: Actor) -> None:
        """Start the case's log if it has none (new case, or one created before case logs)."""
        prefix = caselog_prefix(case.id)
        if self.chains.head(case.id, prefix).length == 0:
            self.append(case, "case_created", asdict(case), actor)

    def ensure_member(self, case: Case, exhibit: Exhibit, actor: Actor, *, new: bool = False) -> None:
        """Record the exhibit in the case log unless it is there already (self-heals an interrupted creation).

        `new`: the exhibit was created just now under a fresh id, so no entry can name it and the log is not
        read (reading it costs one GET per entry: a case with 500 exhibits would pay 500 for every new one)."""
        if (case.id, exhibit.id) in self._members:
            return
        self.ensure_case(case, actor)
        ids: set[Any] = set()
        if not new:
            docs = self.chains.documents(caselog_prefix(case.id))
            ids = {(d.get("event") or {}).get("record", {}).get("id") for d in docs
                   if (d.get("event") or {}).get("action") == "exhibit_added"}
        if exhibit.id not in ids:
            self.append(case, "exhibit_added", asdict(exhibit), actor)
        with self._lock:
            self._members.add((case.id, exhibit.id))

    def members(self, case_id: str) -> list[Exhibit]:
        """Exhibits the case log records, unchecked (for views; verification uses `read`)."""
        out: dict[str, Exhibit] = {}
        for d in self.chains.documents(caselog_prefix(case_id)):
            ev = d.get("event") or {}
            if ev.get("action") == "exhibit_added":
                try:
                    ex = _record(Exhibit, ev.get("record"))
                except ValueError:
                    continue
                out.setdefault(ex.id, ex)
        return sorted(out.values(), key=lambda e: e.ref)


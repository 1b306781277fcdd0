"""One chain checked against the transparency log: nothing logged is missing, rewritten or unanchored in time.

For each of the chain's entries: its leaf is in the newest signed tree (inclusion proof from the tiles), the
chain still has at least that many documents, and the document at that position has the logged hash. The
longest logged length is what the chain must reach, from any home: deleting the last events, even with a
governance bypass, leaves the log saying they existed. Entries also give each event its first time-stamp:
the first RFC 3161 token on a tree head that includes the entry (see timecheck).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from pipeline.custody.chain import Finding
from pipeline.custody.events import event_hash
from pipeline.custody.merkle import verify_inclusion
from pipeline.custody.timecheck import Anchor, parse_time
from pipeline.custody.tlogformat import leaf, leaf_hash_of
from pipeline.custody.tlogview import Entry, Latest, LogView, TileMissing
from pipeline.custody.treehead import TreeHeadError
from pipeline.custody.tsa import TimestampInvalid, verify_token


@dataclass
class LoggedChain:
    entries: list[Entry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    anchors: list[Anchor] = field(default_factory=list)
    logged_length: int = 0


def check_logged(view: LogView, latest: Latest | None, chain: str, events: list[dict[str, Any]], *,
                 roots: list[x509.Certificate], tolerance: timedelta, label: str = "event",
                 now: datetime | None = None) -> LoggedChain:
    """Findings and anchors for one chain (`events`: the chain's events as found, in seq order)."""
    now = now or datetime.now(UTC)
    out = LoggedChain()
    found = {ev["seq"]: ev for ev in events if isinstance(ev.get("seq"), int)}
    n = max(found) + 1 if found else 0
    entries = view.entries(chain)
    if latest is not None:
        entries = [e for e in entries if e.index < latest.head.size]  # newer ones belong to a round in progress
    out.entries = entries
    if latest is not None:
        _check_inclusion(view, latest, chain, entries, out)
    prev = 0
    for e in entries:
        if e.length < prev:
            out.findings.append(Finding(f"{label}s {e.length}..{prev - 1}", f"the log recorded {prev} documents, then "
                                        f"{e.length} ({e.key}): the chain was rolled back and rewritten"))
        prev = max(prev, e.length)
        got = found.get(e.length - 1)
        if got is not None and event_hash(got) != e.head:
            out.findings.append(Finding(f"{label} {e.length - 1}", f"is not the document the transparency log "
                                        f"recorded ({e.key}): hash {event_hash(got)}, logged {e.head} (rewritten)"))
    out.logged_length = prev
    if prev > n and latest is not None:
        out.findings.append(Finding(f"{label}s {n}..{prev - 1}" if prev - n > 1 else f"{label} {n}",
                                    f"missing: the transparency log recorded {prev} documents of this chain (tree "
                                    f"head of {latest.head.size} leaves signed {latest.head.time}), only {n} exist: "
                                    "deleted (e.g. with a governance bypass) or hidden"))
    late = [s for s, ev in sorted(found.items()) if s >= prev and (t := parse_time(ev.get("time"))) is not None
            and t < now - tolerance]
    if late:
        out.findings.append(Finding(f"{label}s {late[0]}..{late[-1]}" if len(late) > 1 else f"{label} {late[0]}",
                                    "not in the transparency log although older than the tolerance: written outside "
                                    "custody (straight to the store), or no appender has run the log since"))
    if roots and entries:
        out.anchors = _anchors(view, chain, entries, roots, out)
    return out


def _check_inclusion(view: LogView, latest: Latest, chain: str, entries: list[Entry], out: LoggedChain) -> None:
    tree = view.tree(latest.head.size)
    for e in entries:
        try:
            proof = tree.inclusion_proof(e.index)
        except (TileMissing, ValueError) as exc:
            out.findings.append(Finding(e.key, f"inclusion cannot be checked: {exc}"))
            return
        if not verify_inclusion(leaf_hash_of(leaf(chain, e.length, e.head)), e.index, latest.head.size, proof,
                                latest.head.root_bytes):
            out.findings.append(Finding(e.key, f"not in the signed tree of {latest.head.size} leaves: a planted entry, "
                                               "or the log's tiles were altered"))


def _anchors(view: LogView, chain: str, entries: list[Entry], roots: list[x509.Certificate],
             out: LoggedChain) -> list[Anchor]:
    """For each entry, the first time-stamped tree head that includes it: its token checked, its proof checked."""
    sizes = view.token_sizes(entries[0].index, entries[-1].index)
    anchors: list[Anchor] = []
    gen: dict[int, Any] = {}
    for e in entries:
        size = next((s for s in sizes if s > e.index), None)
        if size is None:
            continue
        if size not in gen:
            gen[size] = _token_time(view, size, roots, out)
        if gen[size] is None:
            continue
        try:
            proof = view.tree(size).inclusion_proof(e.index)
            _env, head = view.head_at(size)
        except (TileMissing, ValueError, TreeHeadError) as exc:
            out.findings.append(Finding(e.key, f"time-stamp proof cannot be checked: {exc}"))
            continue
        if verify_inclusion(leaf_hash_of(leaf(chain, e.length, e.head)), e.index, size, proof, head.root_bytes):
            anchors.append(Anchor(e.length, gen[size], f"RFC 3161 token on tree head {size}"))
        else:
            out.findings.append(Finding(e.key, f"not in the time-stamped tree head of {size} leaves"))
    return anchors


def _token_time(view: LogView, size: int, roots: list[x509.Certificate], out: LoggedChain) -> datetime | None:
    token = view.token(size)
    subj = f"transparency log tlog/tokens/{size:012d}.tsr"
    if token is None:
        return None
    try:
        _env, head = view.head_at(size)
        return verify_token(token, head.sha256, roots)
    except (TreeHeadError, TimestampInvalid) as exc:
        out.findings.append(Finding(subj, f"time-stamp does not verify: {exc}"))
        return None


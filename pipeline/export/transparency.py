"""What a bundle carries from the transparency log, gathered while it is built (online).

The chain heads being bundled (each exhibit's, and the case log's) are logged exactly, in a round of their
own, and that round's tree head is time-stamped; the bundle then holds the head, its token, an inclusion
proof per chain head, and the *anchors*: for earlier entries of each chain, the first time-stamped head that
included them, with its token and proof, so a recipient can check offline that no event was backdated.
Consistency proofs from every earlier bundle of the case to this one let a verifier who saw an older
bundle see that this one extends it (and one who saw this one see that an older one is superseded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.custody.timestamps import tsa_roots
from pipeline.custody.tlog import LogState
from pipeline.custody.tlogformat import leaf
from pipeline.custody.tlogview import LogView
from pipeline.custody.tsa import TimestampInvalid, verify_token
from pipeline.errors import UsageError
from pipeline.evidence import Evidence
from pipeline.export.format import TRANSPARENCY_DIR


@dataclass
class Proven:
    state: LogState
    token: bytes | None = None
    gen_time: datetime | None = None
    proofs: list[dict[str, Any]] = field(default_factory=list)
    anchors: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # anchor heads and tokens, by bag path
    consistency: list[dict[str, Any]] = field(default_factory=list)


def anchor_paths(size: int) -> tuple[str, str]:
    return f"{TRANSPARENCY_DIR}anchors/{size:012d}.json", f"{TRANSPARENCY_DIR}anchors/{size:012d}.tsr"


def prove(ev: Evidence, chains: list[tuple[str, int, str]], previous: list[dict[str, Any]]) -> Proven:
    """Log these (chain, length, head) exactly, time-stamp the head, and gather every proof the bundle carries."""
    state, index = ev.log.tlog.log_exactly([leaf(c, n, h) for c, n, h in chains])
    assert state.head is not None
    view = LogView(ev.store, ev.log.trusted_keys())
    tree = view.tree(state.size)
    out = Proven(state)
    out.token = view.token(state.size)
    if out.token is not None:
        try:
            out.gen_time = verify_token(out.token, state.head.sha256, tsa_roots(ev.settings))
        except (TimestampInvalid, UsageError):
            out.gen_time = None
    for chain, length, head in chains:
        i = index[(chain, length)]
        out.proofs.append({"chain": chain, "length": length, "head": head, "index": i,
                           "proof": [p.hex() for p in tree.inclusion_proof(i)]})
        out.anchors.extend(_anchors(view, chain, length, state.size, out.files))
    for b in previous:
        th = b.get("treehead") or {}
        size, root = th.get("size"), th.get("root")
        if isinstance(size, int) and 0 < size <= state.size and isinstance(root, str):
            out.consistency.append({"bundle_id": b.get("bundle_id"), "size": size, "root": root,
                                    "proof": [p.hex() for p in tree.consistency_proof(size)]})
    return out


def _anchors(view: LogView, chain: str, length: int, size: int, files: dict[str, bytes]) -> list[dict[str, Any]]:
    """For each earlier entry of the chain within the bundle: the first time-stamped head that includes it."""
    entries = [e for e in view.entries(chain) if e.length <= length and e.index < size]
    if not entries:
        return []
    sizes = [s for s in view.token_sizes(entries[0].index, entries[-1].index) if s < size]
    out = []
    for e in entries:
        ts = next((s for s in sizes if s > e.index), None)
        if ts is None:
            continue  # first time-stamped by the bundle's own head
        head_path, token_path = anchor_paths(ts)
        if head_path not in files:
            env, _head = view.head_at(ts)
            token = view.token(ts)
            if token is None:
                continue
            files[head_path] = json.dumps(env, sort_keys=True, indent=1).encode()
            files[token_path] = token
        out.append({"chain": chain, "length": e.length, "head": e.head, "index": e.index, "size": ts,
                    "proof": [p.hex() for p in view.tree(ts).inclusion_proof(e.index)]})
    return out

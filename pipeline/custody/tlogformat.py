"""The transparency log's object names and leaf format: shared by the sequencer, verifiers and bundles; pure.

Under `tlog/` in the custody bucket:
- `queue/<YYYYMMDDTHHMM>/<rand>.<seq>.<chain with / as +>`: a chain head waiting for the next round (empty);
- `batches/<b, 12 digits>.json`: round b (`custody.tlog.batch/1`): its leaves, the tree's frontier, the signed
  head; created with If-None-Match, which makes its writer the round's sequencer;
- `tiles/<level>/<index, 9 digits>[.p<width>]`: the tree's node hashes (see tiles.py);
- `chains/<chain><leaf index, 12>-<length, 8>-<head>.json`: one entry per leaf of a chain, the leaf in the name;
- `heads/<tree size, 12>.json`: the signed tree head of that size (`custody.treehead/1`), published last;
- `tokens/<tree size, 12>.tsr`: the RFC 3161 token on that head's `treehead_sha256`.
A leaf is the canonical JSON of {"schema": "custody.tlog.leaf/1", "chain", "length", "head"}.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from pipeline.custody.events import canonical
from pipeline.custody.merkle import leaf_hash

LEAF_SCHEMA = "custody.tlog.leaf/1"
BATCH_SCHEMA = "custody.tlog.batch/1"
ENTRY_SCHEMA = "custody.tlog.entry/1"
QUEUE = "tlog/queue/"
QUEUE_WINDOW = timedelta(minutes=3)  # markers from hosts whose clocks are further behind are not seen
CHAIN = re.compile(r"(exhibits/exh-[0-9a-f]{32}/events/|cases/case-[0-9a-f]{32}/log/)")
_ENTRY = re.compile(r"(\d{12})-(\d{8})-([0-9a-f]{64})\.json")


def leaf(chain: str, length: int, head: str) -> dict[str, Any]:
    return {"schema": LEAF_SCHEMA, "chain": chain, "length": length, "head": head}


def leaf_hash_of(doc: dict[str, Any]) -> bytes:
    return leaf_hash(canonical(doc))


def batch_key(batch: int) -> str:
    return f"tlog/batches/{batch:012d}.json"


def head_key(size: int) -> str:
    return f"tlog/heads/{size:012d}.json"


def token_key(size: int) -> str:
    return f"tlog/tokens/{size:012d}.tsr"


def tile_key(name: str) -> str:
    return f"tlog/tiles/{name}"


def entry_prefix(chain: str) -> str:
    return f"tlog/chains/{chain}"


def entry_key(chain: str, index: int, length: int, head: str) -> str:
    """The key carries the whole leaf, so listing a chain's entries needs no reads."""
    return f"{entry_prefix(chain)}{index:012d}-{length:08d}-{head}.json"


def parse_entry_key(chain: str, key: str) -> tuple[int, int, str] | None:
    m = _ENTRY.fullmatch(key.removeprefix(entry_prefix(chain)))
    return (int(m[1]), int(m[2]), m[3]) if m else None


def queue_key(when: datetime, chain: str, seq: int) -> str:
    return f"{QUEUE}{when:%Y%m%dT%H%M}/{secrets.token_hex(4)}.{seq:08d}.{chain.replace('/', '+')}"


def parse_queue_key(key: str) -> tuple[str, int] | None:
    try:
        _rand, seq, chain = key.rsplit("/", 1)[1].split(".", 2)
        chain = chain.replace("+", "/")
        return (chain, int(seq)) if CHAIN.fullmatch(chain) else None
    except ValueError:
        return None

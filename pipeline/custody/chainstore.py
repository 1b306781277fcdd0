"""One signed hash chain in S3: reading it version by version, and appending to it in constant time.

A chain is a prefix whose documents are `<prefix><seq, 8 digits>.json`, each created once with
`If-None-Match: *`. Exhibit logs (`exhibits/<id>/events/`) and case logs (`cases/<id>/log/`) are chains.

Appending does not list the chain: the head (length, hash and time of the last document) comes from this
process's memory or the home's witness file, and the conditional write confirms it: a stale head makes the
write fail safely (412), and the appender reads the document that beat it and moves on. A home that has never
seen the chain finds its head by exponential probing and bisection (O(log n) HEADs, once). So event 10 and
event 10,000 cost the same: one PUT when uncontended.

Times never go backwards within a chain: an event is stamped max(now, previous event's time), so a verifier
can treat any step back as tampering.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.custody.chain import Pre, Slot, precheck, seq_from_name
from pipeline.custody.doccache import DocCache
from pipeline.custody.events import GENESIS, canonical, envelope, event_hash, utcnow
from pipeline.custody.keys import SignerBackend
from pipeline.errors import ChainConflict, CustodyError
from pipeline.storage import EvidenceStore

log = logging.getLogger(__name__)
READ_THREADS = 8  # below the S3 client's connection pool (10)


@dataclass(frozen=True)
class Head:
    """The end of a chain: `length` documents, the last one's event hash and time (GENESIS/"" when empty)."""

    length: int
    hash: str = GENESIS
    time: str = ""


def doc_key(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:08d}.json"


def head_of(seq: int, data: bytes) -> Head:
    """The head after document `seq`, from its stored bytes (hash recomputed, never taken on trust)."""
    ev = json.loads(data)["event"]
    return Head(seq + 1, event_hash(ev), str(ev.get("time", "")))


def last_existing(exists: Callable[[int], bool], known: int = -1) -> int:
    """The highest n with exists(n), for a prefix-closed set (0..n exist); `known` exists or is -1.

    Exponential probing then bisection: O(log n) calls, never a listing.
    """
    lo = known if known >= 0 and exists(known) else -1
    step = 1
    while exists(lo + step):
        lo += step
        step *= 2
    hi = lo + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if exists(mid):
            lo = mid
        else:
            hi = mid
    return lo


class Witness:
    """The home's memory of each chain's head: a cache for appending and a local tail-truncation check."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, chain_id: str) -> Path:
        return self.directory / f"{chain_id}.json"

    def get(self, chain_id: str) -> Head | None:
        try:
            d = json.loads(self._path(chain_id).read_text())
            return Head(int(d["length"]), str(d["head"]), str(d.get("time", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, chain_id: str, head: Head) -> None:
        old = self.get(chain_id)
        if old is not None and old.length >= head.length:
            return
        p = self._path(chain_id)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{time.time_ns()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"length": head.length, "head": head.hash, "time": head.time}))
        tmp.replace(p)


DOC_CACHE = 50_000  # documents `documents` keeps (~2 KB each), per process


class ChainStore:
    """Reads and appends the signed chains of one custody bucket."""

    def __init__(self, store: EvidenceStore, witness: Witness, docs: DocCache | None = None) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self.witness = witness
        self._heads: dict[str, Head] = {}
        self._lock = threading.Lock()
        self._appending: dict[str, threading.Lock] = {}  # one appender per chain in this process
        self._docs: dict[str, bytes] = {}  # write-once documents this process has read (`documents`)
        self.disk = docs  # the home's copies, for `slots(cached=True)`

    # ---- reading -------------------------------------------------------
    def slots(self, prefix: str, trusted: dict[str, Any] | None = None, *, cached: bool = False) -> list[Slot]:
        """Every document with its version history, for verification.

        One version listing, read key by key: a key without a delete marker is fetched (on a few threads) as
        soon as its versions are listed, so the reads overlap the listing and a 10,000-event chain takes
        seconds; each reader thread also parses, hashes and (given `trusted`) signature-checks what it read
        (chain.precheck), so checking overlaps reading too. A key with a delete marker is judged by a plain
        GET (not by `is_latest`, which some servers report on more than one version), and what the marker
        hides is read too, so it can be named.

        `cached`: a document with one version and no marker is taken from the home's copy when the listed ETag
        is the copy's MD5 (doccache); verification and bundles read every byte from the store instead.
        """
        disk = self.disk if cached else None
        fills: list[tuple[str, str | None, bytes]] = []  # kept once the reads are done (off the readers' path)
        with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="chain-read") as pool:
            pending: list[tuple[str, int, list[Any], Any]] = []

            def settle(key: str, versions: list[Any]) -> None:
                seq = seq_from_name(key)
                if seq is None or not key.endswith(".json"):
                    pending.append((key, -1, versions, None))
                elif any(v.is_delete_marker for v in versions):
                    pending.append((key, seq, versions, pool.submit(self._judge, key, versions, trusted)))
                else:
                    etag = versions[0].etag if len(versions) == 1 else None
                    pending.append((key, seq, versions, pool.submit(self._plain, key, trusted, disk, etag,
                                                                      fills if disk is not None else None)))

            key, versions = None, []
            for k, v in self.store.iter_versions(self.bucket, prefix):
                if k != key and key is not None:
                    settle(key, versions)
                    versions = []
                key = k
                versions.append(v)
            if key is not None:
                settle(key, versions)
            out = []
            for key, seq, versions, fut in sorted(pending, key=lambda p: p[0]):
                if fut is None:
                    out.append(Slot(key, -1, b"{}", 1))
                    continue
                data, deleted, pre = fut.result()
                live = sum(1 for v in versions if not v.is_delete_marker)
                out.append(Slot(key, seq, data, versions=live, deleted=deleted, pre=pre))
        if disk is not None:
            for key, etag, data in fills:
                disk.put(key, etag, data)
        return out

    def _plain(self, key: str, trusted: dict[str, Any] | None, disk: DocCache | None = None,
               etag: str | None = None, fills: list[tuple[str, str | None, bytes]] | None = None
               ) -> tuple[bytes | None, bool, Pre | None]:
        data = disk.get(key, etag) if disk is not None else None
        if data is None:
            data = self.store.try_get_bytes(self.bucket, key)
            if fills is not None and data is not None:
                fills.append((key, etag, data))
        return data, False, precheck(data, trusted)

    def _judge(self, key: str, versions: list[Any], trusted: dict[str, Any] | None
               ) -> tuple[bytes | None, bool, Pre | None]:
        """A key with a delete marker: hidden if a plain GET fails; then read the (oldest) version it hides."""
        data = self.store.try_get_bytes(self.bucket, key)
        if data is not None:
            return data, False, precheck(data, trusted)
        live = [v for v in versions if not v.is_delete_marker]
        if not live:
            return None, True, None
        oldest = min(live, key=lambda v: (v.last_modified is None, v.last_modified))
        data = self.store.try_get_bytes(self.bucket, key, oldest.version_id)
        return data, True, precheck(data, trusted)

    def documents(self, prefix: str) -> list[dict[str, Any]]:
        """The stored documents in order, without checks (for views; verification uses `slots`).

        One listing, then the documents this process has not read yet, on a few threads: documents are
        written once (`If-None-Match: *`), so a second look at a chain reads only what was appended since.
        The listing decides what is shown, so a document hidden meanwhile drops out of the view."""
        keys = sorted(self.store.list_keys(self.bucket, prefix))
        with self._lock:
            missing = [k for k in keys if k not in self._docs]
        fresh: dict[str, bytes | None] = {}
        if missing:
            with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="chain-read") as pool:
                fresh = dict(zip(missing, pool.map(lambda k: self.store.try_get_bytes(self.bucket, k), missing),
                                 strict=True))
            with self._lock:
                if len(self._docs) + len(missing) > DOC_CACHE:  # a long-running server: bounded memory
                    self._docs.clear()
                self._docs.update((k, data) for k, data in fresh.items() if data)
        with self._lock:
            raw = [fresh.get(k) or self._docs.get(k) for k in keys]
        return [json.loads(data) for data in raw if data]  # parsed afresh: callers may change what they get

    def _exists(self, prefix: str, seq: int) -> bool:
        return self.store.stat(self.bucket, doc_key(prefix, seq)) is not None

    def discover(self, prefix: str, known: int = 0) -> Head:
        """The chain's head by probing: documents known..k exist, k+1 does not. O(log n) HEADs, no listing."""
        lo = last_existing(lambda seq: self._exists(prefix, seq), known - 1)
        if lo < 0:
            return Head(0)
        data = self.store.try_get_bytes(self.bucket, doc_key(prefix, lo))
        return head_of(lo, data) if data else Head(0)

    def head(self, chain_id: str, prefix: str) -> Head:
        """Best known head: memory, then the home's witness file, else discovered. May be stale (append copes)."""
        with self._lock:
            got = self._heads.get(prefix)
        if got is None:
            got = self.witness.get(chain_id) or self.discover(prefix)
        return got

    def _remember(self, chain_id: str, prefix: str, head: Head) -> None:
        with self._lock:
            old = self._heads.get(prefix)
            if old is None or old.length < head.length:
                self._heads[prefix] = head
        self.witness.put(chain_id, head)

    # ---- appending -----------------------------------------------------
    def append(self, chain_id: str, prefix: str, build: Callable[[int, str, str], dict[str, Any]],
               signer: SignerBackend, *, max_attempts: int = 200) -> tuple[dict[str, Any], Head]:
        """Sign and store the next document; `build(seq, prev_hash, time)` makes the event. Never forks.

        Threads of one process take turns on a chain (they would only collide on the same sequence number);
        other processes and hosts are kept apart by the conditional write, as before."""
        with self._lock:
            turn = self._appending.setdefault(prefix, threading.Lock())
        with turn:
            return self._append(chain_id, prefix, build, signer, max_attempts)

    def _append(self, chain_id: str, prefix: str, build: Callable[[int, str, str], dict[str, Any]],
                signer: SignerBackend, max_attempts: int) -> tuple[dict[str, Any], Head]:
        head = self.head(chain_id, prefix)
        misses = 0
        for _attempt in range(max_attempts):
            now = utcnow()
            ev = build(head.length, head.hash, max(now, head.time))
            doc = envelope(ev, signer.sign(canonical(ev)), signer.key_id)
            body = json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1).encode()
            try:
                self.store.put_bytes(self.bucket, doc_key(prefix, head.length), body, if_absent=True, lock=True)
            except ChainConflict:
                misses += 1
                data = self.store.try_get_bytes(self.bucket, doc_key(prefix, head.length))
                if data is None:  # in flight, or hidden by a delete marker: probe for the real head
                    time.sleep(random.uniform(0.002, 0.02))  # noqa: S311 - jitter, not crypto
                    head = self.discover(prefix, head.length)
                elif misses > 3:  # far behind (another host appended a lot): jump to the head
                    head = self.discover(prefix, head.length)
                else:
                    head = head_of(head.length, data)
                continue
            new = Head(head.length + 1, event_hash(ev), str(ev["time"]))
            self._remember(chain_id, prefix, new)
            return ev, new
        raise CustodyError(f"could not append to chain {prefix} after {max_attempts} attempts (heavy contention?)")

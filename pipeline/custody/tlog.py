"""The transparency log over the whole store: every chain head, in one append-only Merkle tree (RFC 9162).

Leaves are chain-head updates, not single events: a leaf `custody.tlog.leaf/1` says "chain C had `length`
documents, the last with event hash `head`". Each document's prev_hash links back to every earlier one, so
one leaf proves a whole prefix of a chain; the tree grows with the number of (chain, round) pairs instead of
events; and a bundle needs one inclusion proof per chain. Chains are exhibit logs and case logs.

Sequencing. An appender writes its event (the chain's own conditional write orders it), then a marker
`tlog/queue/<minute>/<rand>.<seq>.<chain>` (one PUT, no contention). At most once per `tlog_interval_s` some
appender runs a round: it lists the markers of the last minutes, reads each named chain's real head,
and claims the next batch number with If-None-Match; the one who gets `tlog/batches/<b>` is the sequencer of
that round, the others carry on appending. The winner then publishes what the batch implies: the tree's
tiles, one entry per leaf under `tlog/chains/<chain>`, and the signed tree head `tlog/heads/<size>`; at least
once a minute while events arrive, and when a process finishes or a bundle is built, an RFC 3161 token on
the newest head (`tlog/tokens/<size>.tsr`). A crash after the claim is repaired by the next round (publishing
is deterministic from the batch). Everything under `tlog/` except markers is written once and locked in
COMPLIANCE mode whatever the evidence retention mode, so even a governance bypass cannot truncate the log.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.custody import treehead
from pipeline.custody.chainstore import doc_key, head_of, last_existing
from pipeline.custody.keys import SignerBackend
from pipeline.custody.merkle import CompactRange
from pipeline.custody.tiles import TileWriter, right_edge, tile_name
from pipeline.custody.tlogformat import (
    BATCH_SCHEMA,
    ENTRY_SCHEMA,
    QUEUE,
    QUEUE_WINDOW,
    batch_key,
    entry_key,
    head_key,
    leaf,
    leaf_hash_of,
    parse_queue_key,
    tile_key,
    token_key,
)
from pipeline.custody.tlogrounds import RoundTimer
from pipeline.errors import ChainConflict, CustodyError, IntegrityError
from pipeline.storage import EvidenceStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass
class LogState:
    """What the newest batch says: where the tree stands and the signed head that commits to it."""

    batch: int  # -1: nothing logged yet
    log_id: str
    size: int = 0
    frontier: tuple[bytes, ...] = ()
    envelope: dict[str, Any] | None = None
    head: treehead.TreeHead | None = None
    edges: dict[int, bytes] | None = None  # right-edge tiles, when this process knows them


class TransparencyLog(RoundTimer):
    """Appending side: submit chain heads, run sequencing rounds, publish tiles, heads and time-stamps."""

    def __init__(self, store: EvidenceStore, signer: SignerBackend, settings: Any,
                 trusted: Callable[..., dict[str, Ed25519PublicKey]]) -> None:
        super().__init__(store, settings)
        self.signer = signer
        self.trusted = trusted
        self._state: LogState | None = None
        self._last_stamp = 0.0
        self._published = 0  # size of the newest head this process published
        self._stamped = 0  # size of the newest head it saw time-stamped (or could not: no TSA configured)
        self._asked = 0  # size of the newest head it asked the TSA for (answered or not)
        self.last_batch: tuple[int, list[dict[str, Any]]] = (0, [])  # (first index, leaves) of our last batch

    # ---- objects -----------------------------------------------------------
    def _put_once(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        """Write-once, COMPLIANCE-locked; an existing object must hold the same bytes (else the log forked)."""
        try:
            self.store.put_bytes(self.bucket, key, data, content_type=content_type, if_absent=True, lock=True,
                                 retention_mode="COMPLIANCE")
        except ChainConflict:
            if self.store.try_get_bytes(self.bucket, key) != data:
                raise IntegrityError(f"transparency log object {key} already exists with other content") from None

    def _exists(self, key: str) -> bool:
        return self.store.stat(self.bucket, key) is not None

    def _cache_path(self) -> Path:
        return Path(self.settings.home) / "cache" / "tlog-batch.json"

    def _cached_batch(self) -> int:
        try:
            d = json.loads(self._cache_path().read_text())
            return int(d["batch"]) if d.get("store") == self._store_id() else -1
        except (OSError, ValueError, KeyError, TypeError):
            return -1

    def _store_id(self) -> str:
        return f"{self.store.endpoint}/{self.bucket}"

    def _save_cache(self, batch: int) -> None:
        p = self._cache_path()
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps({"store": self._store_id(), "batch": batch}))
        tmp.replace(p)

    # ---- state -------------------------------------------------------------
    def _load(self) -> LogState:
        """The newest batch (cached, then probed forward), its head checked; an unpublished batch is published."""
        if self._state is not None and not self._exists(batch_key(self._state.batch + 1)):
            return self._state  # the common case: one HEAD says nobody else has sequenced since
        known = self._state.batch + 1 if self._state else self._cached_batch()
        b = last_existing(lambda n: self._exists(batch_key(n)), known)
        if b < 0:
            return LogState(-1, f"custody-tlog/{uuid.uuid4().hex}")
        if self._state is not None and self._state.batch == b:
            return self._state
        doc = json.loads(self._read(batch_key(b)))
        if doc.get("schema") != BATCH_SCHEMA or doc.get("batch") != b:
            raise IntegrityError(f"transparency log batch {b} is malformed; not extending it")
        try:
            head = treehead.verify(doc["treehead"], self.trusted())
        except treehead.TreeHeadError:  # perhaps a host (or key change) this process has not heard of yet
            head = treehead.verify(doc["treehead"], self.trusted(True))
        frontier = tuple(bytes.fromhex(h) for h in doc["frontier"])
        cr = CompactRange(doc["size"], frontier)
        if cr.root() != head.root_bytes or head.size != doc["size"]:
            raise IntegrityError(f"transparency log batch {b}: its frontier does not give its signed root")
        st = LogState(b, head.log_id, doc["size"], frontier, doc["treehead"], head)
        if not self._exists(head_key(st.size)):  # the claimant crashed before publishing: finish its work
            st.edges = self._publish(b, doc["start"], doc["leaves"], doc["treehead"], self._fetch_edges(doc["start"]))
        self._state = st
        return st

    def _read(self, key: str) -> bytes:
        """A write-once log object, or the version a delete marker hides (hiding must not stall the log)."""
        data = self.store.try_get_bytes(self.bucket, key)
        if data is None:
            live = [v for k, v in self.store.list_all_versions(self.bucket, key) if k == key
                    and not v.is_delete_marker]
            data = self.store.try_get_bytes(self.bucket, key, live[0].version_id) if live else None
        if data is None:
            raise IntegrityError(f"transparency log object {key} is missing; not extending the log")
        return data

    def _fetch_edges(self, size: int) -> dict[int, bytes]:
        return {level: self._read(tile_key(tile_name(level, index, width)))
                for level, index, width in right_edge(size)}

    def _publish(self, batch: int, start: int, leaves: list[dict[str, Any]], envelope: dict[str, Any],
                 edges: dict[int, bytes]) -> dict[int, bytes]:
        tw = TileWriter(start, edges)
        for lf in leaves:
            tw.append(leaf_hash_of(lf))
        for name, data in sorted(tw.tiles().items()):
            self._put_once(tile_key(name), data, "application/octet-stream")
        for j, lf in enumerate(leaves):
            body = {"schema": ENTRY_SCHEMA, "index": start + j, "batch": batch, "leaf": lf}
            self._put_once(entry_key(lf["chain"], start + j, lf["length"], lf["head"]),
                           json.dumps(body, sort_keys=True).encode())
        self._put_once(head_key(start + len(leaves)), json.dumps(envelope, sort_keys=True).encode())
        return tw.edges()

    # ---- rounds ------------------------------------------------------------
    def _pending(self) -> list[str]:
        since = datetime.now(UTC) - QUEUE_WINDOW
        return list(self.store.iter_keys(self.bucket, QUEUE, start_after=f"{QUEUE}{since:%Y%m%dT%H%M}"))

    def _chain_head(self, chain: str, seq: int) -> tuple[int, str] | None:
        """The chain's real head at or after `seq` (the marker may be stale): GET it, probe one beyond."""
        data = self.store.try_get_bytes(self.bucket, doc_key(chain, seq))
        if data is None:
            return None
        try:
            h = head_of(seq, data)
        except (ValueError, KeyError, TypeError):
            return None
        if self._exists(doc_key(chain, seq + 1)):
            last = last_existing(lambda n: self._exists(doc_key(chain, n)), seq + 1)
            more = self.store.try_get_bytes(self.bucket, doc_key(chain, last))
            if more is not None:
                h = head_of(last, more)
        return h.length, h.hash

    def integrate(self, extra: Sequence[dict[str, Any]] = (), *, force: bool = False,
                  stamp: bool = False) -> LogState | None:
        """One sequencing round; None when another process won it. `extra`: exact leaves to log (bundles)."""
        with self._lock:
            if self._closing and not force and not extra:
                return self._state  # exiting: a timer round would be cut off half-way (see `close`)
            st = self._load()
            if not force and not extra and st.head is not None and \
                    datetime.now(UTC) - st.head.when < timedelta(seconds=self.settings.tlog_interval_s):
                self._last_round = time.monotonic()  # someone else ran a round just now
                return st
            started = time.monotonic()
            markers = self._pending()
            heads: dict[str, int] = {}
            for key in markers:
                parsed = parse_queue_key(key)
                if parsed:
                    heads[parsed[0]] = max(heads.get(parsed[0], -1), parsed[1])
            leaves = [dict(x) for x in extra]
            for chain, seq in sorted(heads.items()):
                got = self._chain_head(chain, seq)
                if got and not any(x["chain"] == chain and x["length"] >= got[0] for x in leaves):
                    leaves.append(leaf(chain, got[0], got[1]))
            self._last_round = time.monotonic()
            if leaves:
                new = self._write_batch(st, leaves)
                if new is None:
                    return None
                st = new
                self._published = max(self._published, st.size)
            if markers:
                self.store.delete_keys(self.bucket, markers)
            with self._mlock:
                if started > self._last_marker:
                    self._dirty = False  # every marker we wrote was listed by this round
            if stamp or time.monotonic() - self._last_stamp >= self.settings.tsa_interval_s:
                self._stamp(st)
            return st

    def _write_batch(self, st: LogState, leaves: list[dict[str, Any]]) -> LogState | None:
        leaves.sort(key=lambda x: (x["chain"], x["length"]))
        edges = st.edges if st.edges is not None else self._fetch_edges(st.size)
        cr = CompactRange(st.size, st.frontier)
        for lf in leaves:
            cr.append(leaf_hash_of(lf))
        when = datetime.now(UTC)
        if st.head is not None and st.head.when > when:
            when = st.head.when  # a host whose clock is behind must not sign a head that goes back in time
        head = treehead.build(st.log_id, cr.size, cr.root(), time=when, prev=st.head)
        env = treehead.sign(head, self.signer)
        b = st.batch + 1
        if any(k == batch_key(b) for k, _v in self.store.list_all_versions(self.bucket, batch_key(b))):
            # the number is taken (by a batch a delete marker hides, or one just written): claiming it would fork
            self._state = None
            if self._exists(batch_key(b)):
                return None  # another appender got there first
            raise IntegrityError(f"transparency log batch {b} is hidden by a delete marker: not sequencing over it; "
                                 "remove the marker (see `custody log show`)")
        doc = {"schema": BATCH_SCHEMA, "batch": b, "log_id": st.log_id, "start": st.size, "size": cr.size,
               "leaves": leaves, "frontier": [h.hex() for h in cr.hashes], "treehead": env}
        try:
            self.store.put_bytes(self.bucket, batch_key(b), json.dumps(doc, sort_keys=True).encode(), if_absent=True,
                                 lock=True, retention_mode="COMPLIANCE")
        except ChainConflict:  # another appender claimed this batch: it sequences this round
            self._state = None
            return None
        new = LogState(b, st.log_id, cr.size, tuple(cr.hashes), env, head)
        new.edges = self._publish(b, st.size, leaves, env, edges)
        self._state = new
        self.last_batch = (st.size, leaves)
        self._save_cache(b)
        return new

    def _stamp(self, st: LogState) -> None:
        """Ask the TSA to time-stamp the newest head; without a TSA the log still works, unanchored in time."""
        from pipeline.custody.timestamps import tsa_roots, tsa_urls
        from pipeline.custody.tsa import request_timestamp

        if st.head is None:
            return
        if self._exists(token_key(st.size)):
            self._stamped = max(self._stamped, st.size)
            return
        urls = tsa_urls(self.settings)
        if not urls:
            self._warn("no time-stamp authority configured (tsa_urls) and no local TSA running: tree heads are "
                       "not time-stamped, so verify cannot anchor event times")
            self._stamped = max(self._stamped, st.size)  # nothing to wait for
            return
        self._asked = max(self._asked, st.size)
        try:
            ts = request_timestamp(st.head.sha256, urls, tsa_roots(self.settings), timeout=10.0)
        except CustodyError as exc:
            self._warn(f"time-stamping tree head {st.size} failed: {exc}")
            self._last_stamp = time.monotonic()  # asked: try again after the interval, not on every tick
            return
        try:
            self.store.put_bytes(self.bucket, token_key(st.size), ts.token, content_type="application/timestamp-reply",
                                 if_absent=True, lock=True, retention_mode="COMPLIANCE")
        except ChainConflict:
            pass  # another appender stamped the same head at the same moment: one token is enough
        self._last_stamp = time.monotonic()
        self._stamped = max(self._stamped, st.size)

    def stamp_pending(self) -> bool:
        return self._published > self._stamped

    def stamp_due(self, at_exit: bool = False) -> bool:
        if at_exit:  # not asked for yet (a command's flush that already failed is not repeated at its exit)
            return self._published > max(self._stamped, self._asked)
        return self.stamp_pending() and time.monotonic() - self._last_stamp >= self.settings.tsa_interval_s

    def log_exactly(self, leaves: Sequence[dict[str, Any]], attempts: int = 20
                    ) -> tuple[LogState, dict[tuple[str, int], int]]:
        """Log these leaves now (a bundle's chain heads), time-stamp the resulting head; (state, leaf -> index)."""
        for _ in range(attempts):
            with self._lock:
                st = self.integrate(leaves, force=True, stamp=True)
                if st is not None:
                    start, logged = self.last_batch
                    return st, {(x["chain"], x["length"]): start + i for i, x in enumerate(logged)}
            time.sleep(random.uniform(0.01, 0.05))  # noqa: S311 - jitter, not crypto
        raise CustodyError(f"could not log {len(leaves)} chain head(s) after {attempts} rounds (contention?)")

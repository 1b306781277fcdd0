"""Reading the transparency log as a verifier: the newest signed head, a chain's entries, proofs, time-stamps.

Nothing here writes. Every object under `tlog/` is write-once, so any delete marker or second version is
itself a finding, and what a delete marker hides is still read (from its version) and checked: hiding an
entry or a head cannot make a chain look shorter. The newest batch is found by probing (no listing of
the whole log); a version listing after it catches batches hidden behind delete markers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.custody import treehead
from pipeline.custody.chain import Finding
from pipeline.custody.chainstore import last_existing
from pipeline.custody.tiles import TiledTree, last_tiles, tile_name
from pipeline.custody.tlogformat import (
    BATCH_SCHEMA,
    batch_key,
    entry_prefix,
    head_key,
    parse_entry_key,
    tile_key,
    token_key,
)
from pipeline.errors import StorageError
from pipeline.storage import EvidenceStore

SUBJECT = "transparency log"
# How long a verifier waits for a claimed batch's tiles: a round publishes its tiles, entries and then its head
# within a second or so; a batch whose tiles are still missing after this was left by a sequencer that stopped.
PUBLISH_WAIT_S = 5.0


@dataclass(frozen=True)
class Entry:
    """One leaf of a chain in the log: the chain had `length` documents ending in `head`, at leaf `index`."""

    index: int
    length: int
    head: str
    key: str
    hidden: bool = False


@dataclass(frozen=True)
class Latest:
    batch: int
    envelope: dict[str, Any]
    head: treehead.TreeHead


class TileMissing(StorageError):
    """A tile the proofs need cannot be read."""


class LogView:
    """A verifier's read-only view of one store's transparency log."""

    def __init__(self, store: EvidenceStore, trusted: Mapping[str, Ed25519PublicKey]) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self.trusted = trusted
        self._tiles: dict[str, bytes] = {}
        self._heads: dict[int, tuple[dict[str, Any], treehead.TreeHead]] = {}
        self.findings: list[Finding] = []  # problems with the log itself, found while reading it

    def note(self, key: str, problem: str) -> None:
        f = Finding(f"{SUBJECT} {key}", problem)
        if not any(x.subject == f.subject and x.problem == f.problem for x in self.findings):
            self.findings.append(f)

    def _get(self, key: str) -> bytes | None:
        return self.store.try_get_bytes(self.bucket, key)

    def _hidden_version(self, key: str) -> bytes | None:
        """The bytes a delete marker hides, if any (noted as a finding: write-once objects are never deleted).

        A version with no marker beside it was written after the plain read missed it (a round in another
        process): that is read too, but it is no finding."""
        versions = [v for k, v in self.store.list_all_versions(self.bucket, key) if k == key]
        live = [v for v in versions if not v.is_delete_marker]
        if not live:
            return None
        if len(live) < len(versions):
            self.note(key, "hidden by a delete marker (its hidden version is read and checked anyway)")
        return self.store.try_get_bytes(self.bucket, key, live[0].version_id)

    def read(self, key: str) -> bytes | None:
        """A write-once object, or what a delete marker hides."""
        return self._get(key) or self._hidden_version(key)

    # ---- the newest head ------------------------------------------------------
    def latest(self, hint: int = -1, wait_s: float = PUBLISH_WAIT_S) -> Latest | None:
        """The newest batch's published head; batches hidden after it are named and used.

        A round publishes the tiles that proofs against its tree need before its entries and head, so a batch
        whose tiles are not all there yet belongs to a round in progress: wait up to `wait_s` for them (the
        batch's copy of the signed head stands in for a head not yet written). A batch whose tiles are still
        missing then was left by a sequencer that stopped mid-round (the next appender publishes it): it is
        named, and the batch before it is used.
        """
        b = last_existing(lambda n: self.store.stat(self.bucket, batch_key(n)) is not None, hint)
        while True:  # a delete marker on the next batch does not end the log: look behind it
            nxt = batch_key(b + 1)
            versions = [v for k, v in self.store.list_all_versions(self.bucket, nxt) if k == nxt]
            if not versions:
                break
            if any(v.is_delete_marker for v in versions):
                self.note(nxt, "hidden by a delete marker: a newer part of the log is being concealed")
            b = last_existing(lambda n: self.store.stat(self.bucket, batch_key(n)) is not None, b + 2) \
                if self.store.stat(self.bucket, batch_key(b + 2)) is not None else b + 1
        while b >= 0:
            raw = self.read(batch_key(b))
            try:
                doc = json.loads(raw or b"")
                if doc.get("schema") != BATCH_SCHEMA:
                    raise ValueError("not a batch")
                size = int(doc["size"])
                if not self._provable(size, wait_s) and b > 0:  # the first batch has none before it
                    self.note(batch_key(b), f"claimed, but its tiles were not published within {wait_s:g} s (its "
                              "sequencer stopped mid-round; the next appending command publishes them): checked "
                              "against the batch before")
                    b -= 1
                    continue
                env, head = self.head_at(size, doc)
                return Latest(b, env, head)
            except (ValueError, KeyError, TypeError, treehead.TreeHeadError) as exc:
                self.note(batch_key(b), f"unusable ({exc}); using the batch before")
                b -= 1
        return None

    def _provable(self, size: int, wait_s: float) -> bool:
        """Are the tiles of a tree of `size` leaves stored (or its head, written after them; hidden versions
        count, as they are read anyway)? Polls until `wait_s` has passed."""
        tiles = [tile_key(tile_name(*t)) for t in last_tiles(size)]

        def there(key: str, behind_markers: bool) -> bool:
            return self.store.stat(self.bucket, key) is not None or (behind_markers and
                                                                     self._hidden_version(key) is not None)

        def ready(behind_markers: bool) -> bool:
            return there(head_key(size), behind_markers) or all(there(k, behind_markers) for k in tiles)

        if ready(True):
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(0.05)  # the publisher's next PUT is milliseconds away; nothing to wait on but the store
            if ready(False):
                return True
        return False

    def head_at(self, size: int, batch: dict[str, Any] | None = None) -> tuple[dict[str, Any], treehead.TreeHead]:
        """The published signed head of a tree of `size` leaves, signature checked (TreeHeadError if not).

        When `batch` is given and its head is not published yet (a round in progress), the batch's copy is used.
        """
        if size in self._heads:
            return self._heads[size]
        raw = self.read(head_key(size))
        if raw is None and batch is not None:
            raw = json.dumps(batch["treehead"]).encode()
        if raw is None:
            raise treehead.TreeHeadError(f"tree head {head_key(size)} is missing")
        try:
            env = json.loads(raw)
        except ValueError as exc:
            raise treehead.TreeHeadError(f"tree head {head_key(size)} is not JSON ({exc})") from None
        head = treehead.verify(env, self.trusted)
        if head.size != size:
            raise treehead.TreeHeadError(f"tree head {head_key(size)} says size {head.size}")
        self._heads[size] = (env, head)
        return env, head

    # ---- tiles and proofs -------------------------------------------------------
    def _tile(self, name: str) -> bytes:
        if name not in self._tiles:
            key = tile_key(name)
            data = self.read(key)
            if data is None:
                raise TileMissing(f"{SUBJECT} tile {key} is missing: inclusion cannot be proven", "NoSuchKey")
            self._tiles[name] = data
        return self._tiles[name]

    def tree(self, size: int) -> TiledTree:
        return TiledTree(size, self._tile)

    # ---- a chain's entries --------------------------------------------------------
    def entries(self, chain: str) -> list[Entry]:
        """Every entry of a chain, hidden ones included (and named), in leaf order."""
        by_key: dict[str, list[Any]] = {}
        for k, v in self.store.list_all_versions(self.bucket, entry_prefix(chain)):
            by_key.setdefault(k, []).append(v)
        out = []
        for key, versions in sorted(by_key.items()):
            parsed = parse_entry_key(chain, key)
            if parsed is None:
                self.note(key, "not an entry name: planted object")
                continue
            hidden = any(v.is_delete_marker for v in versions)
            live = [v for v in versions if not v.is_delete_marker]
            if hidden:
                self.note(key, f"hidden by a delete marker (still counted: the log recorded chain length {parsed[1]})")
            if len(live) > 1:
                self.note(key, f"overwritten: {len(live)} versions of a write-once entry")
            out.append(Entry(parsed[0], parsed[1], parsed[2], key, hidden))
        return sorted(out, key=lambda e: e.index)

    # ---- time-stamps ---------------------------------------------------------------
    def token_sizes(self, first_index: int, last_index: int) -> list[int]:
        """Sizes of time-stamped heads that include leaf first_index, up to the first that includes last_index."""
        out: list[int] = []
        for key in self.store.iter_keys(self.bucket, "tlog/tokens/", start_after=token_key(first_index)):
            try:
                size = int(key.rsplit("/", 1)[1].removesuffix(".tsr"))
            except ValueError:
                continue
            out.append(size)
            if size > last_index:
                break
        return out

    def token(self, size: int) -> bytes | None:
        return self.read(token_key(size))

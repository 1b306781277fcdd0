"""Fast, checked reads of an exhibit's custody record for review pages and media requests.

Every portal image, video range and timeline request needs the exhibit's events. Reading the chain
the plain way costs one GET per event (a camera day is thousands), so pages with hundreds of stills
took many seconds. Events are write-once objects, so this cache keeps each event's bytes after the
first read and, on every call, still asks the store which events exist and how many versions each has
(one listing): a new event is fetched, a deleted or overwritten one is re-read and reported by the same
`check_chain` the verifier uses. Nothing is trusted that the store does not still show.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from pipeline.custody.chain import ChainReport, Slot, check_chain, seq_from_name
from pipeline.custody.log import events_prefix
from pipeline.evidence import Evidence, ExhibitObject, object_id

ALL_ROLES = ("original", "derived", "bundle", "metadata")




@dataclass
class _Entry:
    data: bytes
    versions: int


class ChainCache:
    """Per-process cache of event bytes, keyed by (exhibit, key); safe because events are write-once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, _Entry]] = {}
        self._reports: dict[str, tuple[tuple[Any, ...], ChainReport]] = {}

    def slots(self, ev: Evidence, exhibit_id: str) -> list[Slot]:
        """What `CustodyLog.slots` returns, with single-version events served from memory."""
        bucket = ev.log.bucket
        prefix = events_prefix(exhibit_id)
        current = set(ev.store.list_keys(bucket, prefix))
        by_key: dict[str, list[Any]] = {}
        for key, v in ev.store.list_all_versions(bucket, prefix):
            by_key.setdefault(key, []).append(v)
        with self._lock:
            cached = dict(self._items.get(exhibit_id, {}))
        out: list[Slot] = []
        fresh: dict[str, _Entry] = {}
        for key, versions in sorted(by_key.items()):
            seq = seq_from_name(key)
            if seq is None:
                out.append(Slot(key, -1, b"{}", 1))
                continue
            live = [v for v in versions if not v.is_delete_marker]
            deleted = key not in current
            hit = cached.get(key)
            if not deleted and len(live) == 1 and hit is not None and hit.versions == 1:
                data: bytes | None = hit.data
            elif not deleted:
                data = ev.store.try_get_bytes(bucket, key)
            elif live:
                oldest = min(live, key=lambda v: (v.last_modified is None, v.last_modified))
                data = ev.store.try_get_bytes(bucket, key, oldest.version_id)
            else:
                data = None
            if data is not None and not deleted and len(live) == 1:
                fresh[key] = _Entry(data, 1)
            out.append(Slot(key, seq, data, versions=len(live), deleted=deleted))
        with self._lock:
            self._items[exhibit_id] = fresh
        return out

    def chain(self, ev: Evidence, exhibit_id: str) -> ChainReport:
        """The exhibit's chain, checked exactly as `CustodyLog.read` checks it.

        The check is repeated whenever anything it looks at differs from last time (an event added, a
        version or delete marker appeared, other bytes, other trusted keys, a longer witness).
        """
        slots = self.slots(ev, exhibit_id)
        trusted = ev.log.trusted_keys()
        witnessed = ev.log.witnessed_length(exhibit_id)
        stamp = (tuple((s.name, s.versions, s.deleted, hashlib.sha256(s.data or b"").digest()) for s in slots),
                 tuple(sorted(trusted)), witnessed)
        with self._lock:
            hit = self._reports.get(exhibit_id)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        report = check_chain(slots, trusted, exhibit_id, witnessed)
        with self._lock:
            self._reports[exhibit_id] = (stamp, report)
        return report


_CACHE = ChainCache()


def checked_chain(ev: Evidence, exhibit_id: str) -> ChainReport:
    return _CACHE.chain(ev, exhibit_id)


def find_object(ev: Evidence, events: list[dict[str, Any]], oid: str) -> ExhibitObject | None:
    """The object an ID names among an exhibit's events (first record of it wins, as `Evidence.objects`)."""
    return next((o for o in ev.objects(events, roles=ALL_ROLES) if object_id(o.bucket, o.key) == oid), None)

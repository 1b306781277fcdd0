"""The operations an examiner describes: open a case, register an exhibit,
store an original, store something derived from it, record what was done.

Every write here produces a custody event; flows, the CLI and the API all
come through this one facade so none of them can skip the record.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.caselog import CaseLog, caselog_prefix
from pipeline.custody.catalog import Case, Catalog, Exhibit, case_index_key, validate_case_ref, validate_exhibit_ref
from pipeline.custody.keys import DeferredSigner
from pipeline.custody.log import CustodyLog
from pipeline.errors import NotFoundError, UsageError
from pipeline.settings import Settings, load_settings
from pipeline.storage.store import EvidenceStore, StoredObject


@dataclass
class ExhibitObject:
    """An object as the custody record describes it."""

    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    role: str
    status: str
    original_name: str | None
    source: dict[str, Any] | None
    event_seq: int
    info: dict[str, Any]


def object_id(bucket: str, key: str) -> str:
    """The path-safe, stable ID the API and portal give an object (keys contain slashes)."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]


def safe_display_name(name: str) -> str:
    """Keep the original file name as metadata: printable, no path parts, bounded length."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:255] or "unnamed"


class Evidence:
    """Facade over store, catalog and custody log for one CUSTODY_HOME."""

    def __init__(self, settings: Settings | None = None, store: EvidenceStore | None = None) -> None:
        self.settings = settings or load_settings()
        self.store = store or EvidenceStore.connect(self.settings)
        self.catalog = Catalog(self.store)
        self.signer = DeferredSigner(self.settings)
        self.log = CustodyLog(self.store, self.signer, self.settings)
        self.cases = CaseLog(self.log.chains, self.log.tlog, self.signer)

    def flush(self) -> None:
        """Fold this process's new chain heads into the transparency log and time-stamp it (end of a command)."""
        self.log.tlog.flush()

    # ---- cases & exhibits ---------------------------------------------
    def create_case(self, ref: str, actor: Actor, title: str = "") -> tuple[Case, bool]:
        existing = self.locate_case(ref)
        if existing:
            return existing, False
        case, created = self.catalog.create_case(ref, title, actor.name)
        if created:
            self.cases.ensure_case(case, actor)
        return case, created

    def ensure_exhibit(self, case_ref: str, exhibit_ref: str, officer: str, actor: Actor,
                       description: str = "", create_case: bool = True) -> tuple[Case, Exhibit]:
        """Find or create the exhibit; creating it writes the chain's first event and the case log entry."""
        case, ex, commit = self.exhibit_ahead(case_ref, exhibit_ref, officer, actor, description, create_case)
        return commit() if commit is not None else (case, ex)

    def exhibit_ahead(self, case_ref: str, exhibit_ref: str, officer: str, actor: Actor, description: str = "",
                      create_case: bool = True) -> tuple[Case, Exhibit, Callable[[], tuple[Case, Exhibit]] | None]:
        """The case, the exhibit (found, or planned with its id) and, for a new one, the call that records it
        (None when it exists). An intake may send bytes meanwhile, but must store or record nothing under the
        exhibit until that call has returned the same exhibit (another creator may have won the reference)."""
        case = self.locate_case(case_ref)
        if case is None:
            if not create_case:
                case = self.catalog.get_case(case_ref)  # raises NotFoundError
            case, _ = self.create_case(case_ref, actor)
        known = self._exhibit_in(case, exhibit_ref)
        if known is not None:
            self.cases.ensure_member(case, known, actor)
            return case, known, None
        planned = self.catalog.plan_exhibit(case, exhibit_ref, officer, description)

        def commit() -> tuple[Case, Exhibit]:
            ex, created = self.catalog.create_exhibit(case, exhibit_ref, officer, description, planned=planned)
            if created:
                self.log.append(case.brief(), ex.brief(), actor=actor, action="exhibit_created",
                                parameters={"officer": ex.officer, "description": ex.description})
            self.cases.ensure_member(case, ex, actor, new=created)
            return case, ex

        return case, planned, commit

    def _json(self, key: str, hidden_too: bool = True) -> dict[str, Any] | None:
        """A catalogue object, or (when a delete marker hides it) the version it hides: caches can't hide things."""
        bucket = self.store.buckets["custody"]
        data = self.store.try_get_bytes(bucket, key)
        if data is None and hidden_too:
            live = [v for k, v in self.store.list_all_versions(bucket, key) if k == key and not v.is_delete_marker]
            data = self.store.try_get_bytes(bucket, key, live[0].version_id) if live else None
        try:
            return json.loads(data) if data else None
        except ValueError:
            return None

    def locate_case(self, ref: str) -> Case | None:
        """A case by reference, through the index or what a delete marker on it hides; its record from the case
        log when case.json is gone."""
        idx = self._json(case_index_key(validate_case_ref(ref)))
        if not idx or "id" not in idx:
            return None
        rec = self._json(f"cases/{idx['id']}/case.json")
        if rec is None:
            first = self.log.chains.documents(caselog_prefix(idx["id"]))[:1]
            rec = first[0]["event"].get("record") if first else None
        try:
            return Case(**rec) if rec else None
        except TypeError:
            return None

    def _exhibit_in(self, case: Case, ref: str) -> Exhibit | None:
        ex = self.catalog.find_exhibit(case, ref)
        if ex is not None:
            return ex
        ref = validate_exhibit_ref(ref)
        return next((e for e in self.cases.members(case.id) if e.ref == ref), None)

    def exhibits_of(self, case: Case) -> list[Exhibit]:
        """The exhibits the case log records (not an index listing, which a delete marker can shorten)."""
        return self.cases.members(case.id)

    def get(self, case_ref: str, exhibit_ref: str) -> tuple[Case, Exhibit]:
        case = self.locate_case(case_ref)
        if case is None:
            case = self.catalog.get_case(case_ref)  # raises NotFoundError with the usual message
        ex = self._exhibit_in(case, exhibit_ref)
        if ex is None:
            raise NotFoundError(f"exhibit {exhibit_ref!r} does not exist in case {case.ref!r}")
        return case, ex

    def find_exhibit(self, exhibit_ref: str, case_ref: str | None) -> tuple[Case, Exhibit]:
        """An exhibit by reference; without a case reference it must be unique across cases."""
        if case_ref:
            return self.get(case_ref, exhibit_ref)
        hits = [(c, e) for c in self.catalog.list_cases() if (e := self._exhibit_in(c, exhibit_ref))]
        if not hits:
            raise NotFoundError(f"no exhibit {exhibit_ref!r} in any case")
        if len(hits) > 1:
            raise UsageError(f"exhibit {exhibit_ref!r} exists in several cases "
                             f"({', '.join(c.ref for c, _ in hits)}); add --case")
        return hits[0]

    # ---- writes --------------------------------------------------------
    def _object_key(self, exhibit: Exhibit) -> str:
        return f"{exhibit.case_id}/{exhibit.id}/{uuid.uuid4().hex}"

    def add_derived(self, case: Case, exhibit: Exhibit, path: Path, *, source: dict[str, Any], kind: str,
                    actor: Actor, content_type: str | None = None, data: bytes | None = None
                    ) -> tuple[StoredObject, dict[str, Any]]:
        """Store a derived file (still, metadata...) that points at its source; no event of its own.

        Callers batch derived objects into one event with `record`. `data`: the file's bytes when they
        were made in memory (a credentialed still); `path` then only names it.
        """
        ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        key = f"{self._object_key(exhibit)}/{kind}"
        meta = {"exhibit-id": exhibit.id, "source-key": source["key"], "source-version": source.get("version_id") or "",
                "source-sha256": source["sha256"], "kind": kind}
        bucket = self.store.buckets["derived"]
        if data is None:
            obj = self.store.put_file(bucket, key, path, content_type=ctype, metadata=meta, lock=True)
        else:
            obj = self.store.put_stream(bucket, key, io.BytesIO(data), content_type=ctype, metadata=meta, lock=True,
                                        size_hint=len(data))
        ref = {**obj.ref(), "role": "derived", "kind": kind, "status": "ok", "original_name": path.name,
               "source": {k: source.get(k) for k in ("bucket", "key", "version_id", "sha256")}}
        return obj, ref

    def record(self, case: Case, exhibit: Exhibit, action: str, *, actor: Actor,
               objects: list[dict[str, Any]] | None = None, tools: dict[str, str] | None = None,
               parameters: dict[str, Any] | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.log.append(case.brief(), exhibit.brief(), actor=actor, action=action, objects=objects,
                               tools=tools, parameters=parameters, details=details)

    # ---- views ---------------------------------------------------------
    def objects(self, events: list[dict[str, Any]], roles: tuple[str, ...] = ("original", "derived")) -> list[
            ExhibitObject]:
        seen: dict[tuple[str, str, str | None], ExhibitObject] = {}
        for ev in events:
            for o in ev.get("objects", []):
                if o.get("role") not in roles:
                    continue
                k = (o["bucket"], o["key"], o.get("version_id"))
                if k in seen:
                    continue
                seen[k] = ExhibitObject(o["bucket"], o["key"], o.get("version_id"), o["sha256"], int(o["size"]),
                                        o.get("role", ""), o.get("status", "ok"), o.get("original_name"),
                                        o.get("source"), ev["seq"],
                                        {x: o[x] for x in ("kind", "info", "content_type", "digests") if x in o})
        return list(seen.values())

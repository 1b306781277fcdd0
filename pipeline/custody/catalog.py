"""Cases and exhibits, identified the way UK investigators do.

References typed by people (case `OP-NIGHTJAR/26`, exhibit `JB/1`) are
validated and stored as data; storage keys use generated IDs, and lookups by
reference go through an index keyed by the reference's SHA-256, created with
If-None-Match so two people can't create the same reference twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.custody.events import utcnow
from pipeline.errors import ChainConflict, NotFoundError, UsageError
from pipeline.storage.store import EvidenceStore
from pipeline.text import clean_human_text

CASE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./_:-]{0,63}")
EXHIBIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./_-]{0,31}")


def _clean_text(value: str, what: str, max_len: int = 200) -> str:
    """Human-entered text: invisible and control characters stripped (pipeline.text), then 1..max_len."""
    return clean_human_text(value, what, max_len, required=True)


def validate_case_ref(ref: str) -> str:
    ref = ref.strip()
    if not CASE_REF.fullmatch(ref):
        raise UsageError(f"case reference {ref!r} is invalid: use letters, digits, space and . / _ : - "
                         "(max 64, starting with a letter or digit)")
    return ref


def validate_exhibit_ref(ref: str) -> str:
    ref = ref.strip()
    if not EXHIBIT_REF.fullmatch(ref):
        raise UsageError(f"exhibit reference {ref!r} is invalid: use officer initials and a number such as JB/1 "
                         "(letters, digits, space and . / _ -; max 32)")
    return ref


def validate_officer(name: str) -> str:
    return _clean_text(name, "officer", 100)


def _ref_hash(ref: str) -> str:
    return hashlib.sha256(ref.encode()).hexdigest()


def case_index_key(ref: str) -> str:
    """Where the index (a cache of the case logs) maps a case reference to its case id."""
    return f"index/case-ref/{_ref_hash(ref)}.json"


def exhibit_index_key(case_id: str, ref: str) -> str:
    return f"index/exhibit-ref/{case_id}/{_ref_hash(ref)}.json"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


@dataclass
class Case:
    id: str
    ref: str
    title: str
    created: str
    created_by: str

    def brief(self) -> dict[str, str]:
        return {"id": self.id, "ref": self.ref}


@dataclass
class Exhibit:
    id: str
    case_id: str
    ref: str
    officer: str
    description: str
    created: str

    def brief(self) -> dict[str, str]:
        return {"id": self.id, "ref": self.ref, "officer": self.officer}


class Catalog:
    """Case and exhibit records in the custody bucket (write-once JSON)."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]

    def _get_json(self, key: str) -> dict[str, Any] | None:
        data = self.store.try_get_bytes(self.bucket, key)
        return json.loads(data) if data else None

    # ---- cases ---------------------------------------------------------
    def find_case(self, ref: str) -> Case | None:
        idx = self._get_json(case_index_key(validate_case_ref(ref)))
        if not idx:
            return None
        rec = self._get_json(f"cases/{idx['id']}/case.json")
        return Case(**rec) if rec else None

    def get_case(self, ref: str) -> Case:
        case = self.find_case(ref)
        if not case:
            raise NotFoundError(f"case {ref!r} does not exist; create it with `custody case create --ref {ref!r}`")
        return case

    def create_case(self, ref: str, title: str = "", created_by: str = "") -> tuple[Case, bool]:
        """Return (case, created); an existing reference returns the existing case."""
        ref = validate_case_ref(ref)
        existing = self.find_case(ref)
        if existing:
            return existing, False
        case = Case(new_id("case"), ref, clean_human_text(title, "case title", 200), utcnow(), created_by)
        self.store.put_bytes(self.bucket, f"cases/{case.id}/case.json", json.dumps(asdict(case)).encode(),
                             if_absent=True, lock=True)
        try:
            self.store.put_bytes(self.bucket, case_index_key(ref),
                                 json.dumps({"id": case.id, "ref": ref}).encode(), if_absent=True, lock=True)
        except ChainConflict:
            return self.get_case(ref), False  # lost a race: the other case is the real one
        return case, True

    def list_cases(self) -> list[Case]:
        out = []
        for key in self.store.list_keys(self.bucket, "index/case-ref/"):
            idx = self._get_json(key)
            rec = idx and self._get_json(f"cases/{idx['id']}/case.json")
            if rec:
                out.append(Case(**rec))
        return sorted(out, key=lambda c: c.ref)

    # ---- exhibits ------------------------------------------------------
    def find_exhibit(self, case: Case, ref: str) -> Exhibit | None:
        idx = self._get_json(exhibit_index_key(case.id, validate_exhibit_ref(ref)))
        if not idx:
            return None
        rec = self._get_json(f"exhibits/{idx['id']}/exhibit.json")
        return Exhibit(**rec) if rec else None

    def get_exhibit(self, case: Case, ref: str) -> Exhibit:
        ex = self.find_exhibit(case, ref)
        if not ex:
            raise NotFoundError(f"exhibit {ref!r} does not exist in case {case.ref!r}")
        return ex

    def plan_exhibit(self, case: Case, ref: str, officer: str, description: str = "") -> Exhibit:
        """The record `create_exhibit` would write for a new exhibit (validated, a fresh id), without writing."""
        return Exhibit(new_id("exh"), case.id, validate_exhibit_ref(ref), validate_officer(officer),
                       clean_human_text(description, "description", 500), utcnow())

    def create_exhibit(self, case: Case, ref: str, officer: str, description: str = "",
                       planned: Exhibit | None = None) -> tuple[Exhibit, bool]:
        """Find the exhibit or write it (`planned`, when given, is the record to write); True if written here.
        The index entry is the commit point: of two creators at once, the second gets the first's exhibit."""
        ref = validate_exhibit_ref(ref)
        officer = validate_officer(officer)
        existing = self.find_exhibit(case, ref)
        if existing:
            return existing, False
        ex = planned or self.plan_exhibit(case, ref, officer, description)
        self.store.put_bytes(self.bucket, f"exhibits/{ex.id}/exhibit.json", json.dumps(asdict(ex)).encode(),
                             if_absent=True, lock=True)
        try:
            self.store.put_bytes(self.bucket, exhibit_index_key(case.id, ref),
                                 json.dumps({"id": ex.id, "ref": ref}).encode(), if_absent=True, lock=True)
        except ChainConflict:
            return self.get_exhibit(case, ref), False
        return ex, True

    def list_exhibits(self, case: Case) -> list[Exhibit]:
        out = []
        for key in self.store.list_keys(self.bucket, f"index/exhibit-ref/{case.id}/"):
            idx = self._get_json(key)
            rec = idx and self._get_json(f"exhibits/{idx['id']}/exhibit.json")
            if rec:
                out.append(Exhibit(**rec))
        return sorted(out, key=lambda e: e.ref)

"""What this verifier has seen before: the newest tree head of each store, the newest bundle of each case.

Kept in the verifier's own home (`$CUSTODY_HOME/seen/`), never in the store: it is the verifier's memory
against which a rolled-back log or a replayed older bundle shows. Files are replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any


class Seen:
    def __init__(self, home: Path) -> None:
        self.directory = Path(home) / "seen"

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            d = json.loads((self.directory / name).read_text())
            return d if isinstance(d, dict) else None
        except (OSError, ValueError):
            return None

    def _write(self, name: str, doc: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        p = self.directory / name
        tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True, indent=1))
        tmp.replace(p)

    @staticmethod
    def _store_name(store_id: str) -> str:
        return f"treehead-{hashlib.sha256(store_id.encode()).hexdigest()[:24]}.json"

    def treehead(self, store_id: str) -> dict[str, Any] | None:
        """{"store", "batch", "envelope"} of the newest tree head verified for this store, or None."""
        return self._read(self._store_name(store_id))

    def remember_treehead(self, store_id: str, batch: int, envelope: dict[str, Any]) -> None:
        self._write(self._store_name(store_id), {"store": store_id, "batch": batch, "envelope": envelope})

    def bundle(self, case_id: str) -> dict[str, Any] | None:
        """The newest bundle of a case this verifier checked: id, created, tree head, consistency proofs it carried."""
        return self._read(f"bundle-{hashlib.sha256(case_id.encode()).hexdigest()[:24]}.json")

    def remember_bundle(self, case_id: str, record: dict[str, Any]) -> None:
        self._write(f"bundle-{hashlib.sha256(case_id.encode()).hexdigest()[:24]}.json", record)

"""Putting content credentials on a derived file just before it is stored (stills, contact sheets, clips).

One `Stamper` per procedure run: it loads the credentials and the signer once, names the source original
by its custody record, and gives every file the same `run_id` as the procedure's custody event, so a file
found loose can be traced to that event. The stored object is the credentialed file; its record keeps the
hash of the bytes before the manifest (for a PNG the manifest is one `caBX` chunk, and removing it gives
those bytes back exactly, so a re-extraction still reproduces bit for bit) and the credential's label.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from pipeline.settings import Settings


class Stamper:
    """Credentials for one run; `stamp()` writes `c2pa_<name>` beside the file, `stamp_bytes()` returns the
    credentialed bytes; both say what they did."""

    def __init__(self, settings: Settings, source: dict[str, Any], procedure: str,
                 tools: dict[str, str] | None = None) -> None:
        from pipeline.provenance.c2pa_manifest import Embedder, SourceRef
        from pipeline.provenance.credentials import load_credentials

        self.credentials = load_credentials(settings)
        self._embedder = Embedder(self.credentials)
        self._source = SourceRef.from_dict(source)
        self.procedure = procedure
        self.tools = tools or {}
        self.run_id = uuid.uuid4().hex

    def describe(self) -> dict[str, Any]:
        """For the procedure's event parameters: who signed, how, and the run id every file carries."""
        return {"run_id": self.run_id, **self._embedder.describe()}

    def stamp(self, path: Path, preset: str, params: dict[str, Any], pixel_sha256: str | None = None
              ) -> tuple[Path, dict[str, Any]]:
        """(credentialed file `c2pa_<name>` beside `path`, facts for the object's record)."""
        signed, facts = self.stamp_bytes(path, preset, params, pixel_sha256)
        out = path.with_name(f"c2pa_{path.name}")
        out.write_bytes(signed)
        return out, facts

    def stamp_bytes(self, path: Path, preset: str, params: dict[str, Any], pixel_sha256: str | None = None,
                    data: bytes | None = None, data_sha256: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """(credentialed bytes, facts: unsigned sha256, label, bytes added): for a caller that stores them
        straight from memory rather than through a second file. `data`: the file's bytes when they were
        never written (`path` then only names them), with `data_sha256` if the maker already hashed them."""
        from pipeline.provenance.c2pa_manifest import ACTIONS

        if data is None:
            data = path.read_bytes()
        unsigned = data_sha256 or hashlib.sha256(data).hexdigest()
        signed, info = self._embedder.embed_bytes(data, self._source, ACTIONS[preset], params, title=path.name,
                                                  pixel_sha256=pixel_sha256, procedure=self.procedure,
                                                  run_id=self.run_id, tools=self.tools, hash_output=False,
                                                  data_sha256=unsigned)
        return signed, {"unsigned_sha256": unsigned, "label": info.label, "added_bytes": info.added_bytes,
                        "run_id": self.run_id, "certificate_sha256": self.credentials.fingerprint}


def source_record(case: Any, exhibit: Any, obj: Any) -> dict[str, Any]:
    """The `SourceRef` fields for an exhibit object (ExhibitObject)."""
    return {"case_id": case.id, "case": case.ref, "exhibit_id": exhibit.id, "exhibit": exhibit.ref,
            "bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256,
            "size": obj.size, "event_seq": obj.event_seq, "original_name": obj.original_name,
            "content_type": obj.info.get("content_type")}

"""What an exhibit holds, as the CLI, the API and the portal all show it."""

from __future__ import annotations

import json
from typing import Any

from pipeline.custody.catalog import Exhibit
from pipeline.evidence import Evidence
from pipeline.intake.clock import clock_offset_ms, with_corrected_times


def exhibit_view(ev: Evidence, case_ref: str, exhibit_ref: str) -> dict[str, Any]:
    """An exhibit's record, objects (as its verified chain names them) and custody timeline."""
    c, e = ev.get(case_ref, exhibit_ref)
    chain = ev.log.read(e.id)
    objs = ev.objects(chain.events, roles=("original", "derived", "bundle", "metadata"))
    return {
        "case": c.ref, "case_id": c.id, "exhibit": e.ref, "exhibit_id": e.id, "officer": e.officer,
        "description": e.description, "created": e.created,
        "objects": [{"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256,
                     "size": o.size, "role": o.role, "status": o.status, "original_name": o.original_name,
                     "source": o.source, "event_seq": o.event_seq, **o.info} for o in objs],
        "events": chain.events,
        "chain": {"ok": chain.ok, "length": len(chain.events), "head": chain.head_hash,
                  "findings": [str(f) for f in chain.findings]},
    }


def exhibit_metadata(ev: Evidence, exhibit: Exhibit) -> dict[str, Any]:
    """Every metadata document of an exhibit, camera times shown corrected by the recorded clock offset."""
    events = ev.log.events(exhibit.id)
    offset = clock_offset_ms(events)
    items = []
    for o in ev.objects(events, roles=("derived",)):
        if o.info.get("kind") != "metadata":
            continue
        doc = json.loads(ev.store.get_bytes(o.bucket, o.key, o.version_id))
        items.append({"source": doc.get("source"), "metadata_object": {"bucket": o.bucket, "key": o.key,
                                                                       "version_id": o.version_id},
                      "status": doc.get("status"), "message": doc.get("message"), "kind": doc.get("kind"),
                      "metadata": with_corrected_times(doc.get("metadata") or {}, offset),
                      "tools": doc.get("tools")})
    return {"exhibit_id": exhibit.id, "clock_offset_ms": offset, "items": items}

"""Rebuilding the caches from the logs: index entries and catalogue records restored from a case log.

The index (`index/case-ref/...`, `index/exhibit-ref/...`) and the records `cases/<id>/case.json`,
`exhibits/<id>/exhibit.json` only speed up lookups; the case log is what they are rebuilt from. A
missing or hidden object is written again (If-None-Match: a delete marker does not count as present, so
the restored version becomes the visible one; the hidden version stays, and verify still names the marker
as history). Nothing is ever overwritten.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, case_index_key, exhibit_index_key
from pipeline.errors import ChainConflict, IntegrityError
from pipeline.evidence import Evidence


def rebuild_indexes(ev: Evidence, case: Case) -> list[str]:
    """Restore every cache object of a case from its (verified) case log; returns the keys written."""
    cl = ev.cases.read(case.id, ev.log.trusted_keys())
    if not cl.chain.ok:
        raise IntegrityError(f"case {case.ref}: the case log does not verify, so it cannot be trusted to rebuild "
                             "the index: " + "; ".join(str(f) for f in cl.chain.findings))
    bucket = ev.store.buckets["custody"]
    wanted: dict[str, dict[str, Any]] = {case_index_key(case.ref): {"id": case.id, "ref": case.ref},
                                         f"cases/{case.id}/case.json": asdict(cl.case or case)}
    for ex in cl.exhibits:
        wanted[exhibit_index_key(case.id, ex.ref)] = {"id": ex.id, "ref": ex.ref}
        wanted[f"exhibits/{ex.id}/exhibit.json"] = asdict(ex)
    written = []
    for key, doc in wanted.items():
        if ev.store.try_get_bytes(bucket, key) is None:
            try:
                ev.store.put_bytes(bucket, key, json.dumps(doc).encode(), if_absent=True, lock=True)
                written.append(key)
            except ChainConflict:
                continue
    return written


def adopt_case(ev: Evidence, case: Case, actor: Actor) -> int:
    """Start the case log of a case created before case logs, from the exhibits its index lists; returns how many."""
    ev.cases.ensure_case(case, actor)
    exhibits = ev.catalog.list_exhibits(case)
    for ex in exhibits:
        ev.cases.ensure_member(case, ex, actor)
    return len(exhibits)

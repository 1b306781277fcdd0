"""Getting footage ready for review: one hash-checked fetch per original, then its review copy and activity index.

Each product is a derived object with its own custody event (`review_copy_made`, `activity_indexed`) naming
the original, the exact command or metric and the tool versions. A file that cannot be copied or indexed
gets a `review_copy_not_made` / `activity_not_indexed` event with the reason, so it is not retried
forever and the record says why it has no copy. `prepare_exhibit` is idempotent: it does only what is missing.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import CustodyError
from pipeline.evidence import Evidence, ExhibitObject
from pipeline.review import activity, copies
from pipeline.review.objects import checked_chain

DONE_ACTIONS = {copies.ACTION: "copy", "review_copy_not_made": "copy", activity.ACTION: "activity",
                "activity_not_indexed": "activity"}


@dataclass
class Prepared:
    object_key: str
    name: str
    copy_seq: int | None = None
    activity_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _src_ref(obj: ExhibitObject) -> dict[str, Any]:
    return {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256}


def _done(events: list[dict[str, Any]]) -> dict[tuple[str, str | None], set[str]]:
    """Which products each original already has (or was found not to allow)."""
    out: dict[tuple[str, str | None], set[str]] = {}
    for e in events:
        what = DONE_ACTIONS.get(str(e.get("action")))
        if what is None:
            continue
        src = (e.get("parameters") or {}).get("source") or {}
        out.setdefault((src.get("key", ""), src.get("version_id")), set()).add(what)
    return out


def footage(ev: Evidence, events: list[dict[str, Any]]) -> list[ExhibitObject]:
    from pipeline.frames.derive import is_candidate

    return [o for o in ev.objects(events, roles=("original",)) if is_candidate(o) and o.status != "not_media"]


def prepare_original(ev: Evidence, case: Case, exhibit: Exhibit, obj: ExhibitObject, *, actor: Actor,
                     want: tuple[str, ...] = ("copy", "activity"),
                     params: activity.ActivityParams | None = None) -> Prepared:
    """Fetch `obj` once (SHA-256 checked at the hand-off) and make what `want` names."""
    out = Prepared(obj.key, obj.original_name or obj.key.rsplit("/", 1)[-1])
    src = _src_ref(obj)
    reference = {**src, "size": obj.size, "role": "reference"}
    with tempfile.TemporaryDirectory(prefix="custody-review-") as tmp:
        work = Path(tmp)
        ext = Path(obj.original_name or "").suffix.lower()
        local = work / f"source{ext if ext.isascii() and 1 < len(ext) <= 6 else '.bin'}"
        t0 = time.perf_counter()
        ev.store.download_verified(obj.bucket, obj.key, obj.version_id, obj.sha256, local)
        out.seconds["fetch"] = round(time.perf_counter() - t0, 3)
        if "copy" in want:
            t0 = time.perf_counter()
            try:
                plan, command, sf, cf = copies.make_copy(local, work / "review-copy.mp4")
            except CustodyError as exc:
                out.problems.append(str(exc))
                e = ev.record(case, exhibit, "review_copy_not_made", actor=actor, objects=[reference],
                              tools=copies.tools(), parameters={"source": src}, details={"reason": str(exc)})
            else:
                _, ref = ev.add_derived(case, exhibit, work / "review-copy.mp4", source=src, kind=copies.KIND,
                                        actor=actor, content_type="video/mp4")
                ref["info"] = copies.copy_info(plan, sf, cf)
                e = ev.record(case, exhibit, copies.ACTION, actor=actor, objects=[reference, ref],
                              tools=copies.tools(), parameters={"source": src, "mode": plan.mode,
                                                                "command": command, "reason": plan.reason},
                              details={"source_stream": sf.as_dict(), "copy_stream": cf.as_dict()})
            out.copy_seq = e["seq"]
            out.seconds["copy"] = round(time.perf_counter() - t0, 3)
        if "activity" in want:
            t0 = time.perf_counter()
            params = params or activity.ActivityParams()
            try:
                doc = activity.index_document(local, src, params)
            except CustodyError as exc:
                out.problems.append(str(exc))
                e = ev.record(case, exhibit, "activity_not_indexed", actor=actor, objects=[reference],
                              parameters={"source": src, **params.as_dict()}, details={"reason": str(exc)})
            else:
                path = work / "activity.json"
                path.write_text(json.dumps(doc, separators=(",", ":")))
                _, ref = ev.add_derived(case, exhibit, path, source=src, kind=activity.KIND, actor=actor,
                                        content_type="application/json")
                ref["info"] = {"frames": doc["frames"], "threshold": doc["threshold"], "spans": len(doc["spans"]),
                               "bin_seconds": doc["bin_seconds"]}
                e = ev.record(case, exhibit, activity.ACTION, actor=actor, objects=[reference, ref],
                              tools=activity.tools(), parameters={"source": src, "metric": activity.METRIC,
                                                                  **params.as_dict()},
                              details={"frames": doc["frames"], "threshold": doc["threshold"],
                                       "spans": len(doc["spans"]), "warnings": doc["warnings"][:10],
                                       "probe": {"damaged_packets": doc["damaged_packets"],
                                                 "damaged_spans": doc["damaged_spans"]}})
            out.activity_seq = e["seq"]
            out.seconds["activity"] = round(time.perf_counter() - t0, 3)
    return out


def prepare_exhibit(ev: Evidence, case: Case, exhibit: Exhibit, *, actor: Actor,
                    want: tuple[str, ...] = ("copy", "activity"), limit: int | None = None) -> list[Prepared]:
    """Make the missing review copies and activity indexes of an exhibit's footage (oldest first)."""
    chain = checked_chain(ev, exhibit.id)
    if not chain.ok:
        from pipeline.errors import IntegrityError

        raise IntegrityError(f"custody chain of exhibit {exhibit.ref} fails verification; not preparing it "
                             f"({'; '.join(map(str, chain.findings[:3]))})")
    done = _done(chain.events)
    results = []
    for obj in footage(ev, chain.events):
        missing = tuple(w for w in want if w not in done.get((obj.key, obj.version_id), set()))
        if not missing:
            continue
        results.append(prepare_original(ev, case, exhibit, obj, actor=actor, want=missing))
        if limit is not None and len(results) >= limit:
            break
    return results

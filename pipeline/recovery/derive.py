"""Power-loss recovery as a custody procedure: a recovered working copy beside the untouched original.

The damaged original and the reference are fetched with their hashes checked at the hand-off; the core
(`pipeline.recovery.recover`) writes a new file in a private temporary directory; that file is stored as a
derived object (kind `recovered_working_copy`, status `recovered` or `partial`) pointing at its source, and
one custody event records everything needed to repeat it: the reference by its custody record, the method,
the byte ranges used and skipped, frames recovered, parameters and tool versions. Recovery is deterministic
(same original, same reference, same tool versions: the same bytes), so a repeat that produces a copy
already in custody stores nothing new and records `recovery_repeated` naming the earlier event. When
nothing can be recovered the attempt is still recorded (`recovery_impossible`, with what was tried).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import IntegrityError, NotFoundError, UsageError
from pipeline.evidence import Evidence, ExhibitObject, object_id, safe_display_name

RECOVERED_KIND = "recovered_working_copy"
RECOVERED, REPEATED, IMPOSSIBLE = "recovered", "recovery_repeated", "recovery_impossible"
REFERENCE_SOURCE = "recovery-reference"  # the intake source of a reference file ingested by `custody recover`


class RecoveryImpossible(UsageError):
    """Recorded in custody, but no working copy could be made: the message says what to supply (exit 2)."""


@dataclass(frozen=True)
class Reference:
    """A healthy recording from the same camera, named by its custody record."""

    case: Case
    exhibit: Exhibit
    obj: ExhibitObject

    def record(self) -> dict[str, Any]:
        """What the custody event says about the reference: enough to fetch the very same bytes again."""
        o = self.obj
        return {"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256, "size": o.size,
                "original_name": o.original_name, "object_id": object_id(o.bucket, o.key),
                "exhibit_id": self.exhibit.id, "exhibit": self.exhibit.ref, "case_id": self.case.id,
                "event_seq": o.event_seq}


@dataclass
class Outcome:
    """One recovery attempt as the CLI, API and portal report it."""

    source: ExhibitObject
    status: str  # recovered | partial | impossible
    message: str
    event: dict[str, Any]
    copy: dict[str, Any] | None  # the working copy's object record (new, or the identical earlier one)
    frames: int = 0
    repeated_of: int | None = None  # event seq of the identical earlier recovery

    def as_dict(self) -> dict[str, Any]:
        copy = None
        if self.copy:
            copy = {k: self.copy.get(k) for k in ("bucket", "key", "version_id", "sha256", "size", "original_name")}
            copy["object_id"] = object_id(self.copy["bucket"], self.copy["key"])
        return {"source": self.source.original_name, "source_object_id": object_id(self.source.bucket,
                                                                                    self.source.key),
                "source_sha256": self.source.sha256, "status": self.status, "message": self.message,
                "frames": self.frames, "event_seq": self.event["seq"], "action": self.event["action"],
                "recovered": copy, "repeated_of_event": self.repeated_of}


def _chain_events(ev: Evidence, exhibit: Exhibit) -> list[dict[str, Any]]:
    chain = ev.log.read(exhibit.id)
    if not chain.ok:
        raise IntegrityError(f"custody chain of exhibit {exhibit.ref} fails verification "
                             f"({'; '.join(map(str, chain.findings[:3]))}); not recovering from it")
    return chain.events


def _pick(objs: list[ExhibitObject], name_or_id: str, where: str) -> ExhibitObject:
    hits = [o for o in objs if object_id(o.bucket, o.key) == name_or_id] or \
           [o for o in objs if o.original_name == name_or_id]
    if not hits:
        raise NotFoundError(f"no original {name_or_id!r} in {where}")
    if len({(o.bucket, o.key) for o in hits}) > 1:
        raise UsageError(f"several originals in {where} are named {name_or_id!r}; give the object ID instead")
    return hits[0]


def originals_to_recover(ev: Evidence, exhibit: Exhibit, name_or_id: str | None = None) -> list[ExhibitObject]:
    """The original named (by object ID or file name), or else every original intake flagged `truncated`."""
    originals = ev.objects(_chain_events(ev, exhibit), roles=("original",))
    if name_or_id:
        return [_pick(originals, name_or_id, f"exhibit {exhibit.ref}")]
    hits = [o for o in originals if o.status == "truncated"]
    if not hits:
        raise UsageError(f"exhibit {exhibit.ref} has no original flagged truncated; name one with --object")
    return hits


def find_reference(ev: Evidence, case: Case, *, object_id_: str | None = None, exhibit: Exhibit | None = None,
                   name: str | None = None) -> Reference:
    """An original of an exhibit of the same case: by object ID (any exhibit), or by exhibit and file name.

    With an exhibit and no name, the exhibit must hold exactly one healthy footage original.
    """
    exhibits = [exhibit] if exhibit is not None else ev.catalog.list_exhibits(case)
    if exhibit is not None and exhibit.case_id != case.id:
        raise NotFoundError(f"exhibit {exhibit.ref} is not in case {case.ref}")
    for ex in exhibits:
        originals = ev.objects(_chain_events(ev, ex), roles=("original",))
        if object_id_:
            hit = next((o for o in originals if object_id(o.bucket, o.key) == object_id_), None)
            if hit is not None:
                return _healthy(Reference(case, ex, hit))
            continue
        if name:
            return _healthy(Reference(case, ex, _pick(originals, name, f"exhibit {ex.ref}")))
        footage = [o for o in originals if o.status == "ok" and (o.info.get("info") or {}).get("kind") == "video"]
        if len(footage) != 1:
            raise UsageError(f"exhibit {ex.ref} holds {len(footage)} healthy footage originals; choose one with "
                             "--reference-name")
        return Reference(case, ex, footage[0])
    raise NotFoundError(f"no original with object ID {object_id_} in case {case.ref}")


def _healthy(ref: Reference) -> Reference:
    if ref.obj.status != "ok":
        raise UsageError(f"reference {ref.obj.original_name} ({ref.exhibit.ref}) is flagged {ref.obj.status}: "
                         "choose a complete recording made by the same camera with the same settings")
    return ref


def ingest_reference(ev: Evidence, case: Case, path: Path, exhibit_ref: str, actor: Actor) -> Reference:
    """Store a local reference file as an original of `exhibit_ref` (same case) first, so it has a record.

    A reference that exists only on one examiner's disk could not be fetched to repeat the recovery; in
    custody it has a locked, hashed copy. It goes to an exhibit the examiner names (created if new), never
    silently into the damaged exhibit, whose contents are what was seized.
    """
    from pipeline.intake.upload import offer, store_original

    if not path.is_file():
        raise UsageError(f"reference file {path} does not exist")
    c, ex = ev.ensure_exhibit(case.ref, exhibit_ref, actor.name, actor,
                              description="reference recording for power-loss recovery", create_case=False)
    res = store_original(ev, c, ex, path, offer(path.name, REFERENCE_SOURCE, {"purpose": "recovery reference"}),
                         actor=actor)
    match = next(o for o in ev.objects(_chain_events(ev, ex), roles=("original",))
                 if o.sha256 == res.sha256 and o.key == res.key)
    return _healthy(Reference(c, ex, match))


def recovered_copies(ev: Evidence, events: list[dict[str, Any]], source: ExhibitObject | None = None
                     ) -> list[ExhibitObject]:
    """Working copies made by `custody recover` (of one source original, if given)."""
    copies = [o for o in ev.objects(events, roles=("derived",)) if o.info.get("kind") == RECOVERED_KIND]
    if source is None:
        return copies
    return [o for o in copies if (o.source or {}).get("key") == source.key
            and (o.source or {}).get("version_id") == source.version_id]


def _source_ref(o: ExhibitObject) -> dict[str, Any]:
    return {"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256}


def _wallclock_start(events: list[dict[str, Any]], obj: ExhibitObject) -> str | None:
    for e in events:
        if any(o.get("key") == obj.key and o.get("version_id") == obj.version_id for o in e.get("objects", [])):
            return (e.get("parameters") or {}).get("wallclock_start")
    return None


def recover_object(ev: Evidence, case: Case, exhibit: Exhibit, obj: ExhibitObject, reference: Reference | None = None,
                   *, actor: Actor, progress: Callable[[int, int], None] | None = None,
                   context: dict[str, Any] | None = None) -> Outcome:
    """Recover one original of `exhibit` into a derived working copy and record what was done.

    `context` adds caller facts to the event's parameters (e.g. `via`, `request_id`).
    """
    from pipeline.recovery import recover

    events = _chain_events(ev, exhibit)
    if not any(o.key == obj.key and o.version_id == obj.version_id for o in ev.objects(events, roles=("original",))):
        raise NotFoundError(f"{obj.original_name} is not an original of exhibit {exhibit.ref}")
    if reference is not None and reference.case.id != case.id:
        raise UsageError("the reference must be an original of an exhibit of the same case")
    src = _source_ref(obj)
    display = safe_display_name(obj.original_name or "recording")
    copy_name = f"{display.rsplit('.', 1)[0] if '.' in display else display}.recovered.mp4"
    ref_record = reference.record() if reference else None
    with tempfile.TemporaryDirectory(prefix="custody-recover-") as tmp:
        work = Path(tmp)
        damaged, ref_path, out = work / "damaged.mp4", work / "reference.mp4", work / "recovered.mp4"
        ev.store.download_verified(obj.bucket, obj.key, obj.version_id, obj.sha256, damaged)
        if reference is not None:
            r = reference.obj
            ev.store.download_verified(r.bucket, r.key, r.version_id, r.sha256, ref_path)
        res = recover(damaged, out, ref_path if reference else None, progress=progress, verify=True)
        details = res.as_dict()
        details["damaged"] = {**details["damaged"], "name": display}
        if ref_record:
            details["reference"] = {**(details["reference"] or {}), **ref_record}
            details["reference"].pop("name", None)
        if details.get("output"):
            details["output"]["name"] = copy_name
        params = {"method": res.method or ("reference" if reference else "in-band"), "reference": ref_record,
                  "verify": True, **res.parameters, "source": src, **(context or {})}
        objects: list[dict[str, Any]] = [{**src, "size": obj.size, "role": "reference", "relation": "damaged"}]
        if ref_record:
            objects.append({**{k: ref_record[k] for k in ("bucket", "key", "version_id", "sha256", "size")},
                            "role": "reference", "relation": "codec reference", "exhibit_id": reference.exhibit.id})
        if res.status == "impossible":
            tried = [f"reference {ref_record['original_name']} ({ref_record['exhibit']}, sha256 {ref_record['sha256']})"
                     if ref_record else "in-band parameter sets (no reference given)"]
            event = ev.record(case, exhibit, IMPOSSIBLE, actor=actor, objects=objects, tools=res.tools,
                              parameters=params, details={**details, "tried": tried})
            return Outcome(obj, res.status, res.message, event, None)
        sha = res.output["sha256"] if res.output else ""
        same = [o for o in recovered_copies(ev, events, obj) if o.sha256 == sha]
        if same:
            earlier = same[0]
            objects.append({**_source_ref(earlier), "size": earlier.size, "role": "reference",
                            "relation": "identical earlier working copy"})
            event = ev.record(case, exhibit, REPEATED, actor=actor, objects=objects, tools=res.tools,
                              parameters=params, details={**details, "repeated_of_event": earlier.event_seq})
            copy = {**_source_ref(earlier), "size": earlier.size, "original_name": earlier.original_name}
            return Outcome(obj, res.status, res.message, event, copy, res.frames, earlier.event_seq)
        _, ref = ev.add_derived(case, exhibit, out, source=src, kind=RECOVERED_KIND, actor=actor,
                                content_type="video/mp4")
        ref.update({"status": res.status, "original_name": copy_name, "content_type": "video/mp4",
                    "info": {"label": "RECOVERED WORKING COPY (rebuilt from a damaged original; not the original)",
                             "recovery_status": res.status, "frames": res.frames, "keyframes": res.keyframes,
                             "audio_frames": res.audio_frames, "duration_s": res.duration_s, "codec": res.codec,
                             "method": params["method"], "message": res.message}})
        objects.append(ref)
        wc = _wallclock_start(events, obj)
        if wc and res.bytes_used.items and res.damaged.get("mdat") and \
                res.bytes_used.items[0][0] == res.damaged["mdat"][0][0]:
            params["wallclock_start"] = wc  # the copy starts where the original did: stills keep wall-clock times
        event = ev.record(case, exhibit, RECOVERED, actor=actor, objects=objects, tools=res.tools,
                          parameters=params, details=details)
        return Outcome(obj, res.status, res.message, event, ref, res.frames)

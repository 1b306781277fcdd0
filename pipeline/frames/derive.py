"""Frame extraction as a custody procedure: fetch the original (hash-checked at the hand-off), extract
stills, store each as a derived object pointing at its source WHILE extraction runs, and record one
`frames_extracted` event, once everything is stored, with every parameter and tool version so an
examiner can repeat it and get identical bytes.

Still names carry the exhibit, the first 8 hex digits of the source's SHA-256 and, for camera segments,
the wall-clock time, so the stills of every file of an exhibit have distinct names.

If storing fails, no `frames_extracted` event is written: a `frames_not_extracted` event says why and
lists what had been stored before the failure (`details.stored_before_failure`; those objects are under
retention and cannot be removed), then the error is raised.
"""

from __future__ import annotations

import json
import mimetypes
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import IntegrityError
from pipeline.evidence import Evidence, ExhibitObject

NON_VIDEO_PREFIXES = ("image/", "text/", "audio/", "application/json", "application/pdf", "application/zip")
SOURCE_ID_HEX = 8  # SHA-256 hex digits of the source in still names
# derived kinds that leave the system and so carry content credentials (C2PA), with the action preset
CREDENTIALED = {"still": "still", "contact_sheet": "contact_sheet"}


def is_candidate(obj: ExhibitObject) -> bool:
    """Worth trying as footage: not obviously a still/document, not empty."""
    if obj.size == 0 or obj.status == "empty":
        return False
    ctype = obj.info.get("content_type") or mimetypes.guess_type(obj.original_name or "")[0] or ""
    return not ctype.startswith(NON_VIDEO_PREFIXES)


def footage_objects(ev: Evidence, exhibit: Exhibit) -> tuple[list[ExhibitObject], list[dict[str, Any]]]:
    chain = ev.log.read(exhibit.id)
    if not chain.ok:
        raise IntegrityError(f"custody chain of exhibit {exhibit.ref} fails verification "
                             f"({'; '.join(map(str, chain.findings[:3]))}); not extracting from it")
    originals = [o for o in ev.objects(chain.events, roles=("original",)) if is_candidate(o)]
    return originals + recovered_footage(ev, chain.events), chain.events


def recovered_footage(ev: Evidence, events: list[dict[str, Any]]) -> list[ExhibitObject]:
    """Working copies rebuilt by `custody recover` are footage too: their stills point at the copy, which
    points at its damaged original (owned by pipeline.recovery.derive)."""
    from pipeline.recovery.derive import recovered_copies

    return [o for o in recovered_copies(ev, events) if is_candidate(o)]


def _wallclock_start(events: list[dict[str, Any]], obj: ExhibitObject) -> datetime | None:
    """Camera segments carry their wall-clock start in the event that stored them."""
    for e in events:
        for o in e.get("objects", []):
            if o.get("key") == obj.key and o.get("version_id") == obj.version_id:
                wc = (e.get("parameters") or {}).get("wallclock_start")
                return datetime.fromisoformat(wc.replace("Z", "+00:00")) if wc else None
    return None


def source_prefix(exhibit: Exhibit, obj: ExhibitObject, base: str | None = None) -> str:
    """`{exhibit ref}_{source sha256[:8]}`: unique per source file of the exhibit, portable."""
    return f"{base or exhibit.ref}_{obj.sha256[:SOURCE_ID_HEX]}"


def extract_object(ev: Evidence, case: Case, exhibit: Exhibit, obj: ExhibitObject, params: Any, *, actor: Actor,
                   workers: int | None = None, dask: Any = None, progress: Callable[[int, int], None] | None = None,
                   events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Extract stills from one original, store them as they come, and record them; returns the custody event.

    `progress(stored, total)` counts stills stored. `events`: the exhibit's chain if the caller has it.
    """
    from pipeline.frames import NotVideoError, extract_frames
    from pipeline.frames.uploads import Upload, Uploads

    src_ref = {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256}
    reference = {**src_ref, "size": obj.size, "role": "reference"}
    base = params.name_prefix if params.name_prefix != "frame" else None
    params = type(params)(**{**params.model_dump(), "name_prefix": source_prefix(exhibit, obj, base)})
    wallclock = _wallclock_start(events if events is not None else ev.log.events(exhibit.id), obj)
    total = [0]
    stamper = None
    if ev.settings.content_credentials:
        from pipeline.provenance.stamp import Stamper, source_record

        stamper = Stamper(ev.settings, source_record(case, exhibit, obj), "frames_extracted")
    credentials: dict[str, dict[str, Any]] = {}

    stamp_params = params.model_dump(mode="json")

    def store(item: Upload) -> dict[str, Any]:
        signed, facts = item.data, None
        if stamper is not None and item.kind in CREDENTIALED:  # signed in memory, stored from there
            # bytes the encoder handed over in memory carry its hash; a file is read and hashed again
            signed, facts = stamper.stamp_bytes(item.path, CREDENTIALED[item.kind], stamp_params, data=item.data,
                                                data_sha256=item.sha256 if item.data is not None else None)
        _, ref = ev.add_derived(case, exhibit, item.path, source=src_ref, kind=item.kind, actor=actor,
                                content_type=item.content_type, data=signed)
        if facts is not None:
            ref["encoder_sha256"] = facts["unsigned_sha256"]  # what Uploads checks against the encoder
            credentials[item.path.name] = facts
        return ref

    def stored(n: int) -> None:
        if progress and total[0]:
            progress(min(n // 2, total[0]), total[0])  # a still and its thumbnail

    with tempfile.TemporaryDirectory(prefix="custody-extract-") as tmp:
        work = Path(tmp)
        out = work / "out"
        ext = Path(obj.original_name or "").suffix.lower()
        local = work / f"source{ext if ext.isascii() and len(ext) <= 6 else ''}"
        ev.store.download_verified(obj.bucket, obj.key, obj.version_id, obj.sha256, local)
        uploads = Uploads(store, threads=ev.settings.upload_threads, on_stored=stored)

        def on_still(s: Any) -> None:  # a StillOut from the extractor (the PNG maybe in memory), or a Still
            uploads.offer(Upload(s.png, out / s.png, "still", "image/png", s.png_sha256, remove_after=True,
                                 data=getattr(s, "data", None)))
            uploads.offer(Upload(s.thumb, out / s.thumb, "thumbnail", "image/jpeg"))

        def extracted(done: int, n: int) -> None:
            total[0] = n

        try:
            try:
                result = extract_frames(local, out, params, workers=workers, progress=extracted, dask=dask,
                                        memory_mb=ev.settings.frames_memory_mb, wallclock_start=wallclock,
                                        on_still=on_still)
            except NotVideoError as exc:
                return ev.record(case, exhibit, "frames_not_extracted", actor=actor, objects=[reference],
                                 parameters=params.model_dump(mode="json"), details={"reason": str(exc)})
            for still in result.stills:  # a no-op for those already handed over
                on_still(still)
            for sheet in result.contact_sheets:
                uploads.offer(Upload(sheet, out / sheet, "contact_sheet", "image/png"))
            manifest = work / "frames.json"
            manifest.write_text(json.dumps(result.model_dump(mode="json", exclude={"source", "out_dir"}), indent=1,
                                           sort_keys=True))
            uploads.offer(Upload("frames.json", manifest, "frames_manifest", "application/json"))
            refs = uploads.done()
        except Exception as exc:
            uploads.close()
            if uploads.failed or uploads.stored():
                _record_failure(ev, case, exhibit, actor, reference, params, exc, uploads.stored(), uploads.failed)
            raise
        finally:
            uploads.close()
    for name, ref in refs.items():
        ref.pop("encoder_sha256", None)
        if name in credentials:
            ref["c2pa"] = credentials[name]
    objects: list[dict[str, Any]] = [reference]
    for still in result.stills:  # in presentation order, each still followed by its thumbnail
        ref = refs[still.png]
        ref["info"] = {**still.model_dump(mode="json", exclude={"png", "thumb"}),
                       **({"c2pa": ref.pop("c2pa")} if "c2pa" in ref else {})}
        tref = refs[still.thumb]
        tref["info"] = {"still_png_sha256": still.png_sha256, "pts_time": still.pts_time}
        objects += [ref, tref]
    for sheet in result.contact_sheets:
        if "c2pa" in refs[sheet]:
            refs[sheet]["info"] = {"c2pa": refs[sheet].pop("c2pa")}
    objects += [refs[s] for s in result.contact_sheets] + [refs["frames.json"]]
    c2pa = {"content_credentials": stamper.describe()} if stamper is not None else {}
    return ev.record(case, exhibit, "frames_extracted", actor=actor, objects=objects, tools=result.tool_versions,
                     parameters={**result.params, "source": src_ref, **c2pa},
                     details={"stills": len(result.stills), "complete": result.complete,
                              "decode_stopped_at": result.decode_stopped_at, "warnings": result.warnings,
                              "probe": result.probe})


def _record_failure(ev: Evidence, case: Case, exhibit: Exhibit, actor: Actor, reference: dict[str, Any],
                    params: Any, exc: BaseException, stored: list[dict[str, Any]], storing: bool) -> None:
    """Say in the chain that the extraction failed and what it had stored; best effort (the store may be
    what failed), the original error is what the caller sees."""
    stored_refs = [{k: r.get(k) for k in ("bucket", "key", "version_id", "sha256", "size", "kind", "original_name")}
                   for r in stored]
    try:
        ev.record(case, exhibit, "frames_not_extracted", actor=actor, objects=[reference],
                  parameters=params.model_dump(mode="json"),
                  details={"reason": f"{'storing the derived files' if storing else 'extraction'} failed: "
                                     f"{type(exc).__name__}: {exc}"[:500],
                           "stored_before_failure": sorted(stored_refs, key=lambda r: str(r["original_name"]))})
    except Exception:  # noqa: BLE001, S110 - the original failure matters more
        pass

"""Frame extraction as a custody procedure: fetch the original (hash-checked at
the hand-off), extract stills, store each as a derived object pointing at its
source, and record one `frames_extracted` event with every parameter and tool
version so an examiner can repeat it and get identical bytes."""

from __future__ import annotations

import json
import mimetypes
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import IntegrityError
from pipeline.evidence import Evidence, ExhibitObject

NON_VIDEO_PREFIXES = ("image/", "text/", "audio/", "application/json", "application/pdf", "application/zip")


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


def _wallclock_start(events: list[dict[str, Any]], obj: ExhibitObject) -> str | None:
    """Camera segments carry their wall-clock start in the event that stored them."""
    for e in events:
        for o in e.get("objects", []):
            if o.get("key") == obj.key and o.get("version_id") == obj.version_id:
                return (e.get("parameters") or {}).get("wallclock_start")
    return None


def extract_object(ev: Evidence, case: Case, exhibit: Exhibit, obj: ExhibitObject, params: Any, *, actor: Actor,
                   workers: int | None = None, dask: Any = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Extract stills from one original and record them; returns the custody event."""
    from datetime import datetime

    from pipeline.frames import NotVideoError, extract_frames

    events = ev.log.events(exhibit.id)
    src_ref = {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256}
    with tempfile.TemporaryDirectory(prefix="custody-extract-") as tmp:
        work = Path(tmp)
        ext = Path(obj.original_name or "").suffix.lower()
        local = work / f"source{ext if ext.isascii() and len(ext) <= 6 else ''}"
        ev.store.download_verified(obj.bucket, obj.key, obj.version_id, obj.sha256, local)
        wc = _wallclock_start(events, obj)
        kwargs: dict[str, Any] = {"workers": workers, "progress": progress,
                                  "memory_mb": ev.settings.frames_memory_mb}
        if dask is not None:
            kwargs["dask"] = dask  # a distributed.Client or scheduler address: same bytes as local
        if wc:
            kwargs["wallclock_start"] = datetime.fromisoformat(wc.replace("Z", "+00:00"))
        try:
            result = extract_frames(local, work / "out", params, **kwargs)
        except NotVideoError as exc:
            return ev.record(case, exhibit, "frames_not_extracted", actor=actor, objects=[{**src_ref,
                             "size": obj.size, "role": "reference"}], parameters=params.model_dump(mode="json"),
                             details={"reason": str(exc)})
        out = work / "out"
        refs: list[dict[str, Any]] = []
        for still in result.stills:
            _, ref = ev.add_derived(case, exhibit, out / still.png, source=src_ref, kind="still", actor=actor,
                                    content_type="image/png")
            ref["info"] = still.model_dump(mode="json", exclude={"png", "thumb"})
            refs.append(ref)
            _, tref = ev.add_derived(case, exhibit, out / still.thumb, source=src_ref, kind="thumbnail", actor=actor)
            tref["info"] = {"still_png_sha256": still.png_sha256, "pts_time": still.pts_time}
            refs.append(tref)
        for sheet in result.contact_sheets:
            _, ref = ev.add_derived(case, exhibit, out / sheet, source=src_ref, kind="contact_sheet", actor=actor,
                                    content_type="image/png")
            refs.append(ref)
        manifest = work / "frames.json"
        manifest.write_text(json.dumps(result.model_dump(mode="json", exclude={"source", "out_dir"}), indent=1,
                                       sort_keys=True))
        _, mref = ev.add_derived(case, exhibit, manifest, source=src_ref, kind="frames_manifest", actor=actor,
                                 content_type="application/json")
        refs.append(mref)
        return ev.record(case, exhibit, "frames_extracted", actor=actor,
                         objects=[{**src_ref, "size": obj.size, "role": "reference"}, *refs],
                         tools=result.tool_versions, parameters={**result.params, "source": src_ref},
                         details={"stills": len(result.stills), "complete": result.complete,
                                  "decode_stopped_at": result.decode_stopped_at, "warnings": result.warnings,
                                  "probe": result.probe})

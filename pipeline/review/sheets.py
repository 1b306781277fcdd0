"""Contact sheets of a whole exhibit in clock time, built from its stored thumbnails.

The frames core draws one sheet per file with media time from 0:00:00, so five camera segments gave five
sheets that each restart at zero. These pages put every still of the exhibit in wall-clock order, each
labelled with its UTC time and source file. Thumbnails are read hash-checked; each page is stored as a
derived object (kind `contact_sheet`, `info.clock` true) and one `contact_sheet_made` event lists them
with the stills they show.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import IntegrityError, NotFoundError
from pipeline.evidence import Evidence
from pipeline.review.draw import clock_label, contact_sheet_png
from pipeline.review.objects import checked_chain, find_object
from pipeline.review.timeline import build_timeline
from pipeline.review.timesource import parse_instant

ACTION = "contact_sheet_made"
PER_PAGE = 48
COLUMNS = 6


def read_checked(ev: Evidence, obj: Any) -> bytes:
    """A small object's bytes, refused if they differ from the custody record."""
    data = ev.store.get_bytes(obj.bucket, obj.key, obj.version_id)
    if hashlib.sha256(data).hexdigest() != obj.sha256:
        raise IntegrityError(f"{obj.key} does not match its custody record (run `custody verify`)")
    return data


def still_label(still: dict[str, Any]) -> list[str]:
    return [clock_label(parse_instant(still.get("wallclock"))) if still.get("wallclock") else
            f"{float(still.get('offset') or 0):.3f} s (no clock time)", str(still.get("source_name") or "")]


def make_sheets(ev: Evidence, case: Case, exhibit: Exhibit, *, actor: Actor,
                only: set[str] | None = None) -> dict[str, Any]:
    """Pages of the exhibit's stills (or the stills whose object IDs are in `only`) in clock order."""
    chain = checked_chain(ev, exhibit.id)
    timeline = build_timeline(exhibit.__dict__, chain.events)
    stills = [s for s in timeline["stills"] if s["thumb_object_id"] and (only is None or s["object_id"] in only)]
    if not stills:
        raise NotFoundError(f"exhibit {exhibit.ref} has no stills to put on a contact sheet")
    pages = [stills[i:i + PER_PAGE] for i in range(0, len(stills), PER_PAGE)]
    refs: list[dict[str, Any]] = []
    first = find_object(ev, chain.events, stills[0]["object_id"])
    src = {"bucket": first.bucket, "key": first.key, "version_id": first.version_id,  # type: ignore[union-attr]
           "sha256": first.sha256}  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory(prefix="custody-sheet-") as tmp:
        for n, page in enumerate(pages):
            cells = []
            for s in page:
                thumb = find_object(ev, chain.events, s["thumb_object_id"])
                if thumb is None:
                    continue
                cells.append((read_checked(ev, thumb), still_label(s)))
            title = (f"Exhibit {exhibit.ref} - stills in clock time (UTC) - page {n + 1} of {len(pages)} - "
                     f"{page[0].get('wallclock') or '?'} to {page[-1].get('wallclock') or '?'}")
            path = Path(tmp) / f"{exhibit.ref.replace('/', '_')}_clock_sheet_{n + 1:03d}.png"
            path.write_bytes(contact_sheet_png(title, cells, COLUMNS))
            stored, credential = path, None
            if ev.settings.content_credentials:  # a sheet leaves the system: it names its first still inside
                from pipeline.provenance.stamp import Stamper, source_record

                stored, credential = Stamper(ev.settings, source_record(case, exhibit, first), ACTION).stamp(
                    path, "contact_sheet", {"page": n + 1, "pages": len(pages), "stills": len(page)})
            _, ref = ev.add_derived(case, exhibit, stored, source=src, kind="contact_sheet", actor=actor,
                                    content_type="image/png")
            ref["original_name"] = path.name
            ref["info"] = {"clock": True, "page": n + 1, "pages": len(pages), "first": page[0].get("wallclock"),
                           "last": page[-1].get("wallclock"), "stills": [s["sha256"] for s in page],
                           **({"c2pa": credential} if credential else {})}
            refs.append(ref)
    return ev.record(case, exhibit, ACTION, actor=actor, objects=refs, tools={"pillow": _pillow()},
                     parameters={"order": "wall-clock time, then source file, then offset", "per_page": PER_PAGE,
                                 "columns": COLUMNS, "stills": len(stills), "selection": "chosen" if only else "all"})


def _pillow() -> str:
    import PIL

    return str(PIL.__version__)

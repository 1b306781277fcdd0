"""What goes in a bundle besides the originals: the derived material the investigator chose.

Originals always go. `derived="chosen"` (the default) adds only the objects named (the portal pre-selects
clips, clock-time contact sheets, stills taken at a chosen instant and metadata documents: review
material, not the bulk); `"none"` adds nothing; `"all"` adds everything derived (every still, thumbnail,
review copy and index: many times the size of the originals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.evidence import ExhibitObject
from pipeline.review.objects import object_id

MODES = ("chosen", "none", "all")
GROUPS = (("clip", "Clips"), ("contact_sheet", "Contact sheets"), ("still", "Stills"),
          ("metadata", "Metadata documents"), ("review_copy", "Review copies (browser working copies)"),
          ("activity_index", "Activity indexes"), ("thumbnail", "Thumbnails"),
          ("frames_manifest", "Frame extraction manifests"))


def preselected(obj: ExhibitObject) -> bool:
    """Review material chosen by default: small, and each item picked by a person, not by an interval."""
    kind = str(obj.info.get("kind") or "")
    info = obj.info.get("info") or {}
    if kind in ("clip", "metadata"):
        return True
    if kind == "contact_sheet":
        return bool(info.get("clock"))
    if kind == "still":
        return list(info.get("reasons") or []) == ["timestamp"]
    return False


def derived_choices(objects: list[ExhibitObject]) -> list[dict[str, Any]]:
    """The derived objects an investigator can choose from, grouped, with the default choice (for the form)."""
    out = []
    for kind, label in GROUPS:
        items = [o for o in objects if o.role == "derived" and o.info.get("kind") == kind]
        if items:
            out.append({"kind": kind, "label": label, "bytes": sum(o.size for o in items),
                        "items": [{"object_id": object_id(o.bucket, o.key), "name": o.original_name or kind,
                                   "size": o.size, "chosen": preselected(o), "info": o.info.get("info") or {}}
                                  for o in items]})
    return out


def keep_function(mode: str, chosen: set[str]) -> Callable[[ExhibitObject], bool] | None:
    """The filter `build_bundle(keep=...)` applies to derived objects (None keeps everything)."""
    if mode == "all":
        return None
    if mode == "none":
        return lambda _o: False
    return lambda o: object_id(o.bucket, o.key) in chosen


#: what `custody bundle --derived` offers (the portal's "chosen" needs a person to tick the items)
CLI_MODES = ("review", "none", "all")
REVIEW_MATERIAL = ("originals and the review material (clips, clock-time contact sheets, stills taken at a chosen "
                   "instant, metadata documents)")


def cli_choice(mode: str) -> tuple[Callable[[ExhibitObject], bool] | None, str]:
    """`--derived` of the CLI and the flow as (`keep`, `selection`) for `build_bundle`: "review" keeps what the
    portal pre-selects."""
    if mode not in CLI_MODES:
        from pipeline.errors import UsageError

        raise UsageError(f"--derived must be one of {', '.join(CLI_MODES)}, not {mode!r}")
    return (preselected if mode == "review" else keep_function(mode, set())), describe(mode, set())


def describe(mode: str, chosen: set[str]) -> str:
    return {"all": "originals and every derived object", "none": "originals only",
            "review": REVIEW_MATERIAL}.get(mode, f"originals and {len(chosen)} derived object(s) chosen by the "
                                                 "investigator")

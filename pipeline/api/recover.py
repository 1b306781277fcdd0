"""Power-loss recovery over HTTP: rebuild a working copy of a truncated original, recorded in custody.

Runs in the request (a worker thread): recovery streams the file once, at disk speed, and its result
is what the caller asked for. Every attempt, including an impossible one, is a custody event.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from pipeline.api.deps import (
    CASE_ID,
    EXHIBIT_ID,
    OBJECT_ID,
    Services,
    SvcDep,
    UserDep,
    actor,
    exhibit_for,
    load_exhibit,
    note,
)
from pipeline.custody.catalog import Case
from pipeline.errors import UsageError

router = APIRouter(prefix="/api")

CaseId = Annotated[str, Path(pattern=CASE_ID, description="Generated case ID (case-<32 hex>)")]
ExhibitId = Annotated[str, Path(pattern=EXHIBIT_ID, description="Generated exhibit ID (exh-<32 hex>)")]


class RecoverIn(BaseModel):
    """What to recover and from which reference; no reference: parameter sets in the stream are tried."""

    object_id: str | None = Field(default=None, pattern=OBJECT_ID,
                                  description="Original to recover (default: every original flagged truncated)")
    reference_object_id: str | None = Field(default=None, pattern=OBJECT_ID,
                                            description="A healthy original from the same camera, any exhibit "
                                                        "of the case")
    reference_exhibit_id: str | None = Field(default=None, pattern=EXHIBIT_ID,
                                             description="Exhibit holding the reference (with reference_name, or "
                                                         "alone if it holds one healthy recording)")
    reference_name: str | None = Field(default=None, min_length=1, max_length=255)
    note: str = Field(default="", max_length=500)


def resolve_reference(svc: Services, c: Case, body: RecoverIn) -> Any:
    """The reference the body names, as a custody record (None: in-band parameter sets)."""
    from pipeline.recovery.derive import find_reference

    if body.reference_object_id and (body.reference_exhibit_id or body.reference_name):
        raise UsageError("name the reference by reference_object_id, or by reference_exhibit_id [+ reference_name]")
    if body.reference_name and not body.reference_exhibit_id:
        raise UsageError("reference_name needs reference_exhibit_id")
    if body.reference_object_id:
        return find_reference(svc.ev, c, object_id_=body.reference_object_id)
    if body.reference_exhibit_id:
        ex = load_exhibit(svc, c, body.reference_exhibit_id)
        return find_reference(svc.ev, c, exhibit=ex, name=body.reference_name)
    return None


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/recover",
             summary="Rebuild a playable working copy of truncated footage (recorded as `recovered`, "
                     "`recovery_repeated` or `recovery_impossible`)")
def recover(request: Request, svc: SvcDep, user: UserDep, case_id: CaseId, exhibit_id: ExhibitId,
            body: RecoverIn) -> dict[str, Any]:
    from pipeline.recovery.derive import originals_to_recover, recover_object

    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "recovery.run")
    targets = originals_to_recover(svc.ev, e, body.object_id)
    ref = resolve_reference(svc, c, body)
    context = {"via": "api", "request_id": getattr(request.state, "request_id", None), "note": body.note}
    results = [recover_object(svc.ev, c, e, o, ref, actor=actor(user), context=context).as_dict() for o in targets]
    note(request, objects=[r["source_object_id"] for r in results], statuses=[r["status"] for r in results])
    return {"case_id": c.id, "exhibit_id": e.id, "reference": ref.record() if ref else None, "results": results}

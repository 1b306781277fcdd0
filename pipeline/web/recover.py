"""Power-loss recovery from the portal: a form on a truncated original, and the outcome.

The same permission (`recovery.run`) and the same procedure as `POST /api/.../recover`. The form offers
the exhibit's healthy recordings as references (usually files from the same card), or an object ID of an
original in another exhibit of the case, or none (parameter sets repeated in the stream).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pipeline.api.deps import OBJECT_ID, Services, actor, exhibit_for, note
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import NotFoundError
from pipeline.evidence import ExhibitObject, object_id
from pipeline.web.routes import CaseId, ExhibitId, ObjectId, router
from pipeline.web.session import FormDep, check_csrf, current, render


def _original(svc: Services, e: Exhibit, oid: str) -> tuple[ExhibitObject, list[ExhibitObject]]:
    originals = svc.ev.objects(svc.ev.log.events(e.id), roles=("original",))
    match = next((o for o in originals if object_id(o.bucket, o.key) == oid), None)
    if match is None:
        raise NotFoundError(f"object {oid} is not an original of exhibit {e.id}")
    return match, originals


def _context(svc: Services, c: Case, e: Exhibit, oid: str) -> dict[str, Any]:
    from pipeline.recovery.derive import recovered_copies

    obj, originals = _original(svc, e, oid)
    refs = [{"object_id": object_id(o.bucket, o.key), "name": o.original_name, "sha256": o.sha256}
            for o in originals if o.status == "ok" and (o.info.get("info") or {}).get("kind") == "video"]
    copies = [{"name": o.original_name, "status": o.status, "sha256": o.sha256, "event_seq": o.event_seq}
              for o in recovered_copies(svc.ev, svc.ev.log.events(e.id), obj)]
    return {"case": c, "exhibit": e, "obj": obj, "object_id": oid, "references": refs, "copies": copies,
            "outcome": None}


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/recover")
def recover_form(request: Request, case_id: CaseId, exhibit_id: ExhibitId, object_id: ObjectId) -> Response:
    """The form: `recovery.run` on the case, as the API."""
    svc, user, _ = current(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "recovery.run")
    return render(request, "recover.html", **_context(svc, c, e, object_id))


@router.post("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/recover")
def recover_run(request: Request, case_id: CaseId, exhibit_id: ExhibitId, object_id: ObjectId,
                form: FormDep) -> Response:
    """Run the recovery (in this request: it reads the file once) and show what it did."""
    from pipeline.recovery.derive import find_reference, recover_object

    svc, user, sess = current(request)
    check_csrf(request, sess, form.get("csrf"))
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "recovery.run")
    ctx = _context(svc, c, e, object_id)
    choice = (form.get("reference_object_id") or form.get("reference") or "").strip()
    ref = None
    if choice and choice != "none":
        if not re.fullmatch(OBJECT_ID, choice):
            raise NotFoundError("the reference must be an object ID (32 hex characters)")
        ref = find_reference(svc.ev, c, object_id_=choice)
    context = {"via": "portal", "request_id": getattr(request.state, "request_id", None)}
    outcome = recover_object(svc.ev, c, e, ctx["obj"], ref, actor=actor(user), context=context)
    note(request, object=ctx["obj"].key, status=outcome.status, event_seq=outcome.event["seq"])
    ctx["outcome"] = outcome.as_dict()
    ctx["copies"] = _context(svc, c, e, object_id)["copies"]
    return render(request, "recover.html", status_code=200, **ctx)

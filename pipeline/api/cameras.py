"""Camera status: per camera, recording now or not, last segment stored, next window, gaps in the last 24 h.

Read from this host's spool status files and `$CUSTODY_HOME/cameras.yaml` (never a path from the request).
Role `custody.read`; users limited to assigned cases see only the cameras recording for those cases.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from pipeline.access.auth import ALL_CASES, User
from pipeline.api.deps import Services, SvcDep, UserDep, authorize, note

router = APIRouter(prefix="/api")
log = logging.getLogger(__name__)


def cameras_for(request: Request, svc: Services, user: User) -> dict[str, Any]:
    """The status rows this user may see (shared by the API and the portal page)."""
    from pipeline.capture import InventoryError, load_inventory
    from pipeline.capture.status import camera_status

    authorize(request, svc, user, "custody.read")
    settings = svc.ev.settings
    path = settings.home / "cameras.yaml"
    inventory, problem = None, None
    if path.exists():
        try:
            inventory = load_inventory(path)
        except InventoryError as exc:  # the operator's file, not the caller's request: report, don't fail
            problem = str(exc)
            log.warning("camera status without schedule: %s", exc)
    rows = camera_status(settings, inventory)
    if user.role not in ALL_CASES:
        assigned = svc.auth.assigned_case_ids(user.name)
        refs = {r["case"] for r in rows if r["case"]}
        allowed = {ref for ref in refs if (c := svc.ev.catalog.find_case(ref)) is not None and c.id in assigned}
        rows = [r for r in rows if r["case"] in allowed]
    note(request, cameras=len(rows))
    return {"generated_at": datetime.now(UTC).isoformat(), "cameras": rows, "inventory_problem": problem}


@router.get("/cameras/status", summary="Per camera: recording now, last segment stored, next window, gaps in 24 h")
def cameras_status(request: Request, svc: SvcDep, user: UserDep) -> dict[str, Any]:
    return cameras_for(request, svc, user)

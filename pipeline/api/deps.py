"""Shared request plumbing: services, the bearer-token user, permission checks, lookups by ID.

Handlers note what they touched (`note(request, ...)`); the audit middleware
writes that with the outcome, so refused and failed requests are audited the
same way as served ones.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.access.audit import AuditTrail
from pipeline.access.auth import AccessDenied, AuthStore, User
from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import NotFoundError
from pipeline.evidence import Evidence
from pipeline.settings import Settings

CASE_ID = r"^case-[0-9a-f]{32}$"
EXHIBIT_ID = r"^exh-[0-9a-f]{32}$"
OBJECT_ID = r"^[0-9a-f]{32}$"
REQUEST_ID = r"^req-[0-9a-f]{32}$"


class Services:
    """One Evidence facade, auth store and audit trail per API process (thread-safe clients)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.ev = Evidence(settings)
        self.audit = AuditTrail(self.ev.store, self.ev.signer)
        self.auth = AuthStore(self.ev.store, self.ev.signer, on_alert=self.audit.alert)


def services(request: Request) -> Services:
    svc = getattr(request.app.state, "services", None)
    if svc is None:  # created lazily so building the app (e.g. for the OpenAPI spec) needs no S3
        svc = request.app.state.services = Services(request.app.state.settings)
    return svc


def note(request: Request, **facts: Any) -> None:
    """Record facts about this request for its audit entry."""
    audit = getattr(request.state, "audit", None)
    if audit is None:
        audit = {}
        request.state.audit = audit
    audit.update({k: v for k, v in facts.items() if v is not None})


bearer = HTTPBearer(auto_error=False, description="API token issued by `custody user add` / `POST /api/users`")


def current_user(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                 svc: Annotated[Services, Depends(services)]) -> User:
    user = svc.auth.authenticate(creds.credentials if creds else None)
    note(request, user=user.name, role=user.role)
    return user


SvcDep = Annotated[Services, Depends(services)]
UserDep = Annotated[User, Depends(current_user)]


def authorize(request: Request, svc: Services, user: User, permission: str, case_id: str | None = None) -> None:
    note(request, permission=permission, case_id=case_id)
    ok, reason = svc.auth.allowed(user, permission, case_id)
    note(request, decision=reason)
    if not ok:
        raise AccessDenied(reason)


def actor(user: User) -> Actor:
    return Actor(user.name, user.role)


def _get_json(svc: Services, key: str) -> dict[str, Any] | None:
    data = svc.ev.store.try_get_bytes(svc.ev.store.buckets["custody"], key)
    return json.loads(data) if data else None


def load_case(svc: Services, case_id: str) -> Case:
    if not re.fullmatch(CASE_ID, case_id):
        raise NotFoundError("no such case")
    rec = _get_json(svc, f"cases/{case_id}/case.json")
    if not rec:
        raise NotFoundError(f"case {case_id} does not exist")
    return Case(**rec)


def load_exhibit(svc: Services, case: Case, exhibit_id: str) -> Exhibit:
    if not re.fullmatch(EXHIBIT_ID, exhibit_id):
        raise NotFoundError("no such exhibit")
    rec = _get_json(svc, f"exhibits/{exhibit_id}/exhibit.json")
    if not rec or rec.get("case_id") != case.id:
        raise NotFoundError(f"exhibit {exhibit_id} does not exist in case {case.id}")
    return Exhibit(**rec)


def case_for(request: Request, svc: Services, user: User, case_id: str, permission: str) -> Case:
    """Role check, then existence, then assignment: unassigned users learn nothing about contents."""
    note(request, case_id=case_id, permission=permission)
    ok, reason = svc.auth.allowed(user, permission)
    if not ok:
        note(request, decision=reason)
        raise AccessDenied(reason)
    case = load_case(svc, case_id)
    authorize(request, svc, user, permission, case.id)
    note(request, case_ref=case.ref)
    return case


def exhibit_for(request: Request, svc: Services, user: User, case_id: str, exhibit_id: str,
                permission: str) -> tuple[Case, Exhibit]:
    case = case_for(request, svc, user, case_id, permission)
    ex = load_exhibit(svc, case, exhibit_id)
    note(request, exhibit_id=ex.id, exhibit_ref=ex.ref)
    return case, ex

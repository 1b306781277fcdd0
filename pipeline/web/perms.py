"""What a page may offer: the API's own permission decisions (never a rule of the portal's own)."""

from __future__ import annotations

from pipeline.access.auth import User
from pipeline.api.deps import Services
from pipeline.custody.catalog import Case


def can(svc: Services, user: User, permission: str, case_id: str | None = None) -> bool:
    return svc.auth.allowed(user, permission, case_id)[0]


def perms_for(svc: Services, user: User, c: Case) -> dict[str, bool]:
    """The buttons a case page shows, keyed for the templates (`evidence_read`, ...)."""
    return {p.replace(".", "_"): can(svc, user, p, c.id) for p in
            ("evidence.read", "evidence.download", "custody.read", "evidence.upload", "exhibit.create",
             "bundle.request", "recovery.run")}

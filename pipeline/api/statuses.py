"""Which HTTP status each project exception becomes, and how the audit trail names the outcome.

Shared by the JSON API and the portal, so a refusal is the same refusal whichever asked.
"""

from __future__ import annotations

from pipeline.access.auth import AccessDenied, Unauthenticated
from pipeline.errors import (
    ChainConflict,
    CustodyError,
    InfrastructureError,
    IntegrityError,
    NotFoundError,
    UsageError,
)

# most specific first
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthenticated, 401),
    (AccessDenied, 403),
    (NotFoundError, 404),
    (IntegrityError, 422),
    (ChainConflict, 409),
    (UsageError, 400),
    (InfrastructureError, 503),
    (CustodyError, 503),
)


def status_for(exc: Exception) -> int:
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def outcome(status: int) -> str:
    if status in (401, 403):
        return "refused"
    if status < 400:
        return "allowed"
    return "failed"

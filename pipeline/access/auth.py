"""Users, API tokens, roles and per-case assignments.

Stored as JSON in the custody bucket under `auth/` (not a local database) so
several API hosts behind a load balancer share one truth. Tokens are random
(256 bits) and only their SHA-256 is stored: a copy of the bucket does not
yield a usable token. The bucket is versioned and locked, so every change to a
user or assignment leaves its earlier version behind — an audit of its own.

Roles and what they may do (`PERMISSIONS`):
  officer       uploads to, creates exhibits in and records clock offsets for assigned cases
  investigator  reads, downloads, sees custody timelines and requests frames/bundles for assigned cases
  supervisor    reads and downloads all cases, sees custody and the audit trail, requests work
  auditor       reads all cases' records, custody and the audit trail (no downloads)
  admin         users, cases and assignments, and everything else (all of it audited)
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pipeline.custody.catalog import Case
from pipeline.errors import UsageError
from pipeline.storage.store import EvidenceStore

ROLES = ("officer", "investigator", "supervisor", "auditor", "admin")
ALL_CASES = frozenset({"supervisor", "auditor", "admin"})  # not limited to assigned cases

PERMISSIONS: dict[str, frozenset[str]] = {
    "case.read": frozenset(ROLES),
    "case.create": frozenset({"admin"}),
    "exhibit.create": frozenset({"officer", "admin"}),
    "evidence.upload": frozenset({"officer", "admin"}),
    "evidence.read": frozenset({"investigator", "supervisor", "auditor", "admin"}),
    "evidence.download": frozenset({"investigator", "supervisor", "admin"}),
    "custody.read": frozenset({"investigator", "supervisor", "auditor", "admin"}),
    "clock.record": frozenset({"officer", "supervisor", "admin"}),
    "frames.request": frozenset({"investigator", "supervisor", "admin"}),
    "bundle.request": frozenset({"investigator", "supervisor", "admin"}),
    "recovery.run": frozenset({"investigator", "supervisor", "admin"}),
    "users.manage": frozenset({"admin"}),
    "audit.read": frozenset({"supervisor", "auditor", "admin"}),
}

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
TOKEN_PREFIX = "cust_"  # noqa: S105 - a prefix that makes leaked tokens greppable, not a secret


class Unauthenticated(UsageError):
    """No token, or a token we do not know (or revoked): HTTP 401."""


class AccessDenied(UsageError):
    """Authenticated, but the role or case assignment does not allow it: HTTP 403."""


@dataclass
class User:
    name: str
    role: str
    created: str
    created_by: str
    disabled: bool = False


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_user_name(name: str) -> str:
    name = name.strip()
    if not USER_NAME.fullmatch(name):
        raise UsageError(f"user name {name!r} is invalid: letters, digits, space and . _ @ - (max 64)")
    return name


def validate_role(role: str) -> str:
    role = role.strip().lower()
    if role not in ROLES:
        raise UsageError(f"role {role!r} is invalid; choose from {', '.join(ROLES)}")
    return role


class AuthStore:
    """User, token and assignment records in `<custody bucket>/auth/`."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]

    def _get(self, key: str) -> dict | None:
        data = self.store.try_get_bytes(self.bucket, key)
        return json.loads(data) if data else None

    def _put(self, key: str, doc: dict, if_absent: bool = False) -> None:
        self.store.put_bytes(self.bucket, key, json.dumps(doc, sort_keys=True).encode(), if_absent=if_absent)

    @staticmethod
    def _user_key(name: str) -> str:
        return f"auth/users/{_h(name)}.json"

    # ---- users -----------------------------------------------------------
    def get_user(self, name: str) -> User | None:
        doc = self._get(self._user_key(validate_user_name(name)))
        return User(**doc) if doc else None

    def add_user(self, name: str, role: str, created_by: str) -> tuple[User, str]:
        """Create a user and return their first token (shown once, stored only hashed)."""
        from pipeline.errors import ChainConflict

        name, role = validate_user_name(name), validate_role(role)
        user = User(name, role, _now(), created_by)
        try:
            self._put(self._user_key(name), asdict(user), if_absent=True)
        except ChainConflict:
            raise UsageError(f"user {name!r} already exists; issue a new token with `custody user token`") from None
        return user, self.issue_token(name, created_by)

    def list_users(self) -> list[User]:
        out = []
        for key in self.store.list_keys(self.bucket, "auth/users/"):
            doc = self._get(key)
            if doc:
                out.append(User(**doc))
        return sorted(out, key=lambda u: u.name)

    def set_disabled(self, name: str, disabled: bool) -> User:
        user = self.require_user(name)
        user.disabled = disabled
        self._put(self._user_key(user.name), asdict(user))
        return user

    def require_user(self, name: str) -> User:
        user = self.get_user(name)
        if not user:
            from pipeline.errors import NotFoundError

            raise NotFoundError(f"user {name!r} does not exist")
        return user

    # ---- tokens ----------------------------------------------------------
    def issue_token(self, name: str, issued_by: str) -> str:
        user = self.require_user(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._put(f"auth/tokens/{_h(token)}.json", {"user": user.name, "issued": _now(), "issued_by": issued_by,
                                                     "revoked": False}, if_absent=True)
        return token

    def revoke_token(self, token: str) -> None:
        key = f"auth/tokens/{_h(token)}.json"
        doc = self._get(key)
        if doc:
            self._put(key, {**doc, "revoked": True, "revoked_at": _now()})

    def authenticate(self, token: str | None) -> User:
        """The user a bearer token belongs to; Unauthenticated for anything else."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise Unauthenticated("missing or malformed bearer token")
        digest = _h(token)
        doc = self._get(f"auth/tokens/{digest}.json")
        # looked up by the token's hash: response timing can't reveal a prefix of a valid token
        if not doc or doc.get("revoked"):
            raise Unauthenticated("unknown or revoked token")
        user = self.get_user(doc["user"])
        if not user or user.disabled:
            raise Unauthenticated("user disabled or removed")
        return user

    # ---- assignments -------------------------------------------------------
    def _assign_key(self, name: str, case_id: str) -> str:
        return f"auth/assignments/{_h(name)}/{case_id}.json"

    def assign(self, name: str, case: Case, by: str, active: bool = True) -> None:
        user = self.require_user(name)
        self._put(self._assign_key(user.name, case.id), {"user": user.name, "case_id": case.id,
                                                         "case_ref": case.ref, "by": by, "time": _now(),
                                                         "active": active})

    def assigned_case_ids(self, name: str) -> set[str]:
        out = set()
        for key in self.store.list_keys(self.bucket, f"auth/assignments/{_h(name)}/"):
            doc = self._get(key)
            if doc and doc.get("active"):
                out.add(doc["case_id"])
        return out

    # ---- decisions -----------------------------------------------------------
    def allowed(self, user: User, permission: str, case_id: str | None = None) -> tuple[bool, str]:
        """(allowed, reason): the role must carry the permission and, for scoped roles, the case be assigned."""
        roles = PERMISSIONS.get(permission)
        if roles is None or user.role not in roles:
            return False, f"role {user.role!r} may not {permission}"
        if case_id is None or user.role in ALL_CASES:
            return True, "role"
        if case_id in self.assigned_case_ids(user.name):
            return True, "assigned"
        return False, f"user {user.name!r} is not assigned to this case"

    def require(self, user: User, permission: str, case_id: str | None = None) -> None:
        ok, reason = self.allowed(user, permission, case_id)
        if not ok:
            raise AccessDenied(reason)

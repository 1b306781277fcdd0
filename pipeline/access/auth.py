"""Users, API tokens, roles and per-case assignments: administration kept as evidence.

Everything about a user (created with a role, disabled or enabled, each token issued or revoked by
its SHA-256, each case assigned or unassigned) is a signed, hash-chained record in their own chain
`auth/users/<sha256(name)>/records/<seq>.json`, on the custody machinery (`records.RecordChains`:
canonical JSON, Ed25519, conditional writes). A user's state is the fold of their chain, and the
chain is checked on every load: a record rewritten, added or hidden by someone holding only the S3
keys fails the check, that user is refused service (`TamperedRecord`, HTTP 401) and an alert goes
into the audit trail. Records name their subject, so a chain copied onto another user fails too.

Tokens are random (256 bits) and only their SHA-256 is stored. `auth/tokens/<sha256>.json` only
says which user's chain to look in; a token counts only if that chain records it issued and not
revoked, so planting an index entry grants nothing. Several API hosts share this one truth.

Roles and what they may do (`PERMISSIONS`):
  officer       uploads to, creates exhibits in and records clock offsets for assigned cases
  investigator  reads, downloads, sees custody timelines and requests frames/bundles for assigned cases
  supervisor    reads and downloads all cases, sees custody and the audit trail, requests work
  auditor       reads all cases' records, custody and the audit trail (no downloads)
  (supervisors and auditors alone, with admins, may search for identical bytes across cases)
  admin         users, cases and assignments, and everything else (all of it audited)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.access.records import RecordChains, trusted_keys
from pipeline.custody.catalog import Case
from pipeline.custody.signing import Signer
from pipeline.errors import ChainConflict, NotFoundError, UsageError
from pipeline.storage.store import EvidenceStore

log = logging.getLogger(__name__)
SCHEMA = "custody.admin/1"

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
    "duplicates.search": frozenset({"supervisor", "auditor", "admin"}),  # identical bytes across cases
}

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
TOKEN_PREFIX = "cust_"  # noqa: S105 - a prefix that makes leaked tokens greppable, not a secret


class Unauthenticated(UsageError):
    """No token, or a token we do not know (or revoked): HTTP 401."""


class AccessDenied(UsageError):
    """Authenticated, but the role or case assignment does not allow it: HTTP 403."""


class TamperedRecord(Unauthenticated):
    """The user's administration records do not verify: service refused, alert raised."""


@dataclass
class User:
    name: str
    role: str
    created: str
    created_by: str
    disabled: bool = False
    cases: frozenset[str] = frozenset()  # assigned case ids
    tokens: dict[str, bool] = field(default_factory=dict, repr=False)  # token sha256 -> active
    tampered: list[str] = field(default_factory=list)  # findings; non-empty: refused service


def fold(name: str, records: list[dict[str, Any]]) -> User | None:
    """A user's state from their chain of records (None when the chain holds no creation)."""
    user: User | None = None
    cases: set[str] = set()
    for r in records:
        p = r.get("parameters") or {}
        if (r.get("subject") or {}).get("name") != name:
            raise ValueError(f"record {r.get('seq')} is about {r.get('subject')!r}, not user {name!r}")
        action = r.get("action")
        if action == "user_created":
            user = User(name, p["role"], r["time"], (r.get("actor") or {}).get("name", ""))
            continue
        if user is None:
            raise ValueError(f"record {r.get('seq')} ({action}) comes before the user was created")
        if action == "role_set":
            user.role = p["role"]
        elif action in ("user_disabled", "user_enabled"):
            user.disabled = action == "user_disabled"
        elif action == "token_issued":
            user.tokens[p["token_sha256"]] = True
        elif action == "token_revoked":
            user.tokens[p["token_sha256"]] = False
        elif action == "assigned":
            cases.add(p["case_id"])
        elif action == "unassigned":
            cases.discard(p["case_id"])
        else:
            raise ValueError(f"record {r.get('seq')} has unknown action {action!r}")
    if user is not None:
        user.cases = frozenset(cases)
    return user


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
    """Users, tokens and assignments as signed record chains in `<custody bucket>/auth/`."""

    def __init__(self, store: EvidenceStore, signer: Signer | None = None, *,
                 on_alert: Callable[..., None] | None = None) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self.signer = signer or Signer.load_or_create(store.settings.signing_key_path)
        self._trusted: dict[str, Any] | None = None
        self.chains = RecordChains(store, self.signer, self.trusted, SCHEMA)
        self.on_alert = on_alert
        self._alerted: set[tuple[str, tuple[str, ...]]] = set()
        self._token_users: dict[str, str] = {}  # token sha256 -> user name (the index is write-once)
        self._lock = threading.Lock()

    def trusted(self) -> dict[str, Any]:
        if self._trusted is None:
            self._trusted = trusted_keys(self.store.settings, self.signer)
        return self._trusted

    @staticmethod
    def _prefix(name: str) -> str:
        return f"auth/users/{_h(name)}/records/"

    def _append(self, name: str, action: str, by: str, by_role: str, require_new: bool = False,
                **parameters: Any) -> dict[str, Any]:
        return self.chains.append(self._prefix(name), {"subject": {"kind": "user", "name": name},
                                                       "parameters": parameters},
                                  actor={"name": by, "role": by_role}, action=action, require_new=require_new)

    # ---- users -----------------------------------------------------------
    def load_user(self, name: str) -> User | None:
        """The user's state from their chain, checked now; `tampered` lists what failed (and alerts once)."""
        name = validate_user_name(name)
        loaded = self.chains.load(self._prefix(name))
        findings = [str(f) for f in loaded.report.findings]
        user = None
        try:
            user = fold(name, loaded.records)
        except (ValueError, KeyError, TypeError) as exc:
            findings.append(f"records do not make sense: {exc}")
        if findings:
            user = user or User(name, "(unknown)", "", "")
            user.tampered = findings
            self._alert(name, findings)
        return user

    def _alert(self, name: str, findings: list[str]) -> None:
        key = (name, tuple(findings))
        with self._lock:
            if key in self._alerted:
                return
            self._alerted.add(key)
        log.error("administration records of user %r do not verify: %s", name, "; ".join(findings[:3]))
        if self.on_alert:
            self.on_alert("admin_record_tampered", subject=name, findings=findings[:20])

    def get_user(self, name: str) -> User | None:
        return self.load_user(name)

    def add_user(self, name: str, role: str, created_by: str, by_role: str = "operator") -> tuple[User, str]:
        """Create a user and return their first token (shown once, stored only hashed)."""
        name, role = validate_user_name(name), validate_role(role)
        try:
            self._append(name, "user_created", created_by, by_role, require_new=True, role=role)
        except ChainConflict:
            raise UsageError(f"user {name!r} already exists; issue a new token with `custody user token`") from None
        return self.require_user(name), self.issue_token(name, created_by, by_role)

    def list_users(self) -> list[User]:
        hashes = sorted({k.split("/")[2] for k in self.store.list_keys(self.bucket, "auth/users/")
                         if k.count("/") == 4 and k.split("/")[3] == "records"})
        out = []
        for h in hashes:
            first = self.store.try_get_bytes(self.bucket, f"auth/users/{h}/records/00000000.json")
            try:
                name = json.loads(first or b"{}")["event"]["subject"]["name"]
                if _h(name) != h:
                    raise ValueError("name does not hash to its folder")
            except (ValueError, KeyError, TypeError):
                out.append(User(f"(unreadable record chain {h[:12]})", "(unknown)", "", "",
                                tampered=["first record unreadable or misplaced"]))
                continue
            user = self.load_user(name)
            if user:
                out.append(user)
        return sorted(out, key=lambda u: u.name)

    def set_disabled(self, name: str, disabled: bool, by: str = "", by_role: str = "operator") -> User:
        user = self.require_user(name)
        self._append(user.name, "user_disabled" if disabled else "user_enabled", by, by_role)
        return self.require_user(name)

    def require_user(self, name: str) -> User:
        user = self.get_user(name)
        if not user:
            raise NotFoundError(f"user {name!r} does not exist")
        if user.tampered:
            raise TamperedRecord(f"the administration records of user {user.name!r} do not verify; service "
                                 f"refused and an alert raised ({user.tampered[0]})")
        return user

    # ---- tokens ----------------------------------------------------------
    def issue_token(self, name: str, issued_by: str, by_role: str = "operator") -> str:
        user = self.require_user(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _h(token)
        self._append(user.name, "token_issued", issued_by, by_role, token_sha256=digest)
        self.store.put_bytes(self.bucket, f"auth/tokens/{digest}.json",
                             json.dumps({"user": user.name, "issued": _now(), "issued_by": issued_by,
                                         "revoked": False}, sort_keys=True).encode(), if_absent=True)
        return token

    def _token_user(self, digest: str) -> str | None:
        with self._lock:
            if digest in self._token_users:
                return self._token_users[digest]
        data = self.store.try_get_bytes(self.bucket, f"auth/tokens/{digest}.json")
        try:
            name = str(json.loads(data)["user"]) if data else None
        except (ValueError, KeyError, TypeError):
            name = None
        if name:
            with self._lock:
                self._token_users[digest] = name
        return name

    def revoke_token(self, token: str, by: str = "", by_role: str = "operator") -> None:
        digest = _h(token)
        name = self._token_user(digest)
        if not name:
            raise NotFoundError("no such token")
        user = self.require_user(name)
        if digest not in user.tokens:
            raise NotFoundError("no such token")
        self._append(user.name, "token_revoked", by, by_role, token_sha256=digest)
        # the index is only a pointer (the chain decides), but keep it from saying otherwise
        self.store.put_bytes(self.bucket, f"auth/tokens/{digest}.json",
                             json.dumps({"user": user.name, "revoked": True, "revoked_at": _now()},
                                        sort_keys=True).encode())

    def authenticate(self, token: str | None) -> User:
        """The user a bearer token belongs to; Unauthenticated for anything else (TamperedRecord if records fail)."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise Unauthenticated("missing or malformed bearer token")
        digest = _h(token)
        # looked up by the token's hash: response timing can't reveal a prefix of a valid token
        name = self._token_user(digest)
        if not name:
            raise Unauthenticated("unknown or revoked token")
        try:
            user = self.load_user(name)
        except UsageError:
            raise Unauthenticated("unknown or revoked token") from None
        if user and user.tampered:
            raise TamperedRecord(f"the administration records of user {name!r} do not verify; service refused "
                                 "and an alert raised")
        if not user or not user.tokens.get(digest):
            raise Unauthenticated("unknown or revoked token")
        if user.disabled:
            raise Unauthenticated("user disabled or removed")
        return user

    # ---- assignments -------------------------------------------------------
    def assign(self, name: str, case: Case, by: str, active: bool = True, by_role: str = "operator") -> None:
        user = self.require_user(name)
        self._append(user.name, "assigned" if active else "unassigned", by, by_role, case_id=case.id,
                     case_ref=case.ref)

    def assigned_case_ids(self, name: str) -> set[str]:
        user = self.load_user(name)
        return set(user.cases) if user and not user.tampered else set()

    # ---- decisions -----------------------------------------------------------
    def allowed(self, user: User, permission: str, case_id: str | None = None) -> tuple[bool, str]:
        """(allowed, reason): the role must carry the permission and, for scoped roles, the case be assigned."""
        if user.tampered:
            return False, f"administration records of user {user.name!r} do not verify"
        roles = PERMISSIONS.get(permission)
        if roles is None or user.role not in roles:
            return False, f"role {user.role!r} may not {permission}"
        if case_id is None or user.role in ALL_CASES:
            return True, "role"
        if case_id in user.cases:
            return True, "assigned"
        return False, f"user {user.name!r} is not assigned to this case"

    def require(self, user: User, permission: str, case_id: str | None = None) -> None:
        ok, reason = self.allowed(user, permission, case_id)
        if not ok:
            raise AccessDenied(reason)

    def verify_all(self) -> list[dict[str, Any]]:
        """Every user's chain checked: for `custody audit verify`."""
        return [{"user": u.name, "ok": not u.tampered, "findings": u.tampered} for u in self.list_users()]

"""Health, the caller's identity, users, assignments and the access audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from pipeline.access.auth import ROLES, USER_NAME
from pipeline.api.deps import CASE_ID, SvcDep, UserDep, authorize, load_case, note

router = APIRouter(prefix="/api")
UserName = Annotated[str, Path(pattern=f"^{USER_NAME.pattern}$", description="User name")]


class UserIn(BaseModel):
    name: str = Field(pattern=f"^{USER_NAME.pattern}$")
    role: str = Field(description=f"One of {', '.join(ROLES)}", pattern=f"^({'|'.join(ROLES)})$")


class AssignIn(BaseModel):
    case_id: str = Field(pattern=CASE_ID)


@router.get("/health", summary="Liveness (no token, not audited)")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/me", summary="Who the token belongs to and which cases they are assigned")
def me(svc: SvcDep, user: UserDep) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "assigned_cases": sorted(user.cases)}


@router.get("/users", summary="Users (admin)")
def list_users(request: Request, svc: SvcDep, user: UserDep) -> list[dict[str, Any]]:
    authorize(request, svc, user, "users.manage")
    return [{"name": u.name, "role": u.role, "created": u.created, "disabled": u.disabled,
             "records_verify": not u.tampered} for u in svc.auth.list_users()]


@router.post("/users", status_code=201, summary="Create a user; the token is returned once and stored hashed (admin)")
def add_user(request: Request, svc: SvcDep, user: UserDep, body: UserIn) -> dict[str, Any]:
    authorize(request, svc, user, "users.manage")
    new, token = svc.auth.add_user(body.name, body.role, user.name, user.role)
    note(request, subject=new.name)
    return {"name": new.name, "role": new.role, "token": token}


@router.post("/users/{name}/tokens", status_code=201, summary="Issue another token for a user (admin)")
def issue_token(request: Request, svc: SvcDep, user: UserDep, name: UserName) -> dict[str, Any]:
    authorize(request, svc, user, "users.manage")
    note(request, subject=name)
    return {"name": name, "token": svc.auth.issue_token(name, user.name, user.role)}


@router.post("/users/{name}/assignments", status_code=201, summary="Assign a user to a case (admin)")
def assign(request: Request, svc: SvcDep, user: UserDep, name: UserName, body: AssignIn) -> dict[str, Any]:
    authorize(request, svc, user, "users.manage")
    case = load_case(svc, body.case_id)
    svc.auth.assign(name, case, user.name, by_role=user.role)
    note(request, subject=name, case_id=case.id)
    return {"name": name, "case_id": case.id, "case": case.ref, "active": True}


@router.delete("/users/{name}/assignments/{case_id}", summary="Remove a user from a case (admin)")
def unassign(request: Request, svc: SvcDep, user: UserDep, name: UserName,
             case_id: Annotated[str, Path(pattern=CASE_ID)]) -> dict[str, Any]:
    authorize(request, svc, user, "users.manage")
    case = load_case(svc, case_id)
    svc.auth.assign(name, case, user.name, active=False, by_role=user.role)
    note(request, subject=name, case_id=case.id)
    return {"name": name, "case_id": case.id, "case": case.ref, "active": False}


@router.get("/audit", summary="Access audit entries of one UTC day, newest first (supervisor, auditor, admin)")
def audit(request: Request, svc: SvcDep, user: UserDep,
          day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          user_name: Annotated[str | None, Query(alias="user", max_length=64)] = None,
          outcome: Annotated[str | None, Query(max_length=20)] = None,
          request_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None) -> list[dict[str, Any]]:
    authorize(request, svc, user, "audit.read")
    return svc.audit.read(day, limit, user_name, outcome, request_id)

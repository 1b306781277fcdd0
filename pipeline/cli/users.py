"""`custody user ...`: API users, tokens and case assignments (admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import CaseOpt, JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say

user_app = typer.Typer(no_args_is_help=True, help="API users, tokens and case assignments (admin).")


def _auth():  # type: ignore[no-untyped-def]
    """The auth store signing with this home's key; a tampered record raises an alert in the audit trail."""
    from pipeline.access.audit import AuditTrail
    from pipeline.access.auth import AuthStore

    ev = evidence()
    audit = AuditTrail(ev.store, ev.signer)
    return ev, AuthStore(ev.store, ev.signer, on_alert=lambda kind, **f: audit.alert(kind, via="cli", **f))


@user_app.command("add")
def user_add(name: Annotated[str, typer.Argument(help="User name.")],
             role: Annotated[str, typer.Option(help="officer, investigator, supervisor, auditor or admin.")],
             json_out: JsonOpt = False) -> None:
    """Create an API user; prints their token once (only its hash is stored)."""
    ev, auth = _auth()
    user, token = auth.add_user(name, role, actor_for(ev).name)
    if json_out:
        emit_json({"name": user.name, "role": user.role, "token": token})
    else:
        say(f"user {user.name} ({user.role}) created; token (shown once, store it safely):")
        print(token)


@user_app.command("token")
def user_token(name: Annotated[str, typer.Argument()], json_out: JsonOpt = False) -> None:
    """Issue another token for a user (e.g. a lost one; revoke the old with `custody user revoke`)."""
    ev, auth = _auth()
    token = auth.issue_token(name, actor_for(ev).name)
    if json_out:
        emit_json({"name": name, "token": token})
    else:
        print(token)


@user_app.command("revoke")
def user_revoke(token: Annotated[str, typer.Option("--token", help="The token to revoke.")]) -> None:
    """Revoke one token."""
    ev, auth = _auth()
    auth.revoke_token(token, actor_for(ev).name)
    say("revoked")


@user_app.command("disable")
def user_disable(name: Annotated[str, typer.Argument()],
                 enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False) -> None:
    """Disable (or re-enable) a user: all their tokens stop working."""
    ev, auth = _auth()
    u = auth.set_disabled(name, not enable, actor_for(ev).name)
    say(f"user {u.name} {'disabled' if u.disabled else 'enabled'}")


@user_app.command("assign")
def user_assign(name: Annotated[str, typer.Argument()], case: CaseOpt,
                remove: Annotated[bool, typer.Option("--remove", help="Remove the assignment.")] = False,
                json_out: JsonOpt = False) -> None:
    """Assign a user to a case (officers and investigators only see assigned cases)."""
    ev, auth = _auth()
    c = ev.catalog.get_case(case)
    auth.assign(name, c, actor_for(ev).name, active=not remove)
    if json_out:
        emit_json({"name": name, "case": c.ref, "case_id": c.id, "active": not remove})
    else:
        say(f"{name} {'removed from' if remove else 'assigned to'} {c.ref}")


@user_app.command("list")
def user_list(json_out: JsonOpt = False) -> None:
    """Users with role, cases and whether their administration records verify."""
    _ev, auth = _auth()
    users = auth.list_users()
    if json_out:
        emit_json([{"name": u.name, "role": u.role, "created": u.created, "disabled": u.disabled,
                    "cases": sorted(u.cases), "records_verify": not u.tampered, "findings": u.tampered}
                   for u in users])
    else:
        for u in users:
            flag = "  (RECORDS DO NOT VERIFY: refused service)" if u.tampered else ""
            say(f"{u.name}\t{u.role}{'  (disabled)' if u.disabled else ''}{flag}")



def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")

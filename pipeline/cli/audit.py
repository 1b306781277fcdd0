"""`custody audit verify` and `custody audit matches`: the access audit trail and administration, checked.

`verify` re-reads every audit entry (every version, hidden ones too) and every user's administration
records, and checks them as custody chains are checked; one hidden (delete marker), overwritten or
edited entry fails it (exit 1). `matches` is the supervisory search for identical bytes held in other
cases: it is written to the audit trail before it answers.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say
from pipeline.errors import UsageError, VerificationFailed

audit_app = typer.Typer(no_args_is_help=True, help="Check the access audit trail and administration records.")


@audit_app.command("verify")
def verify(day: Annotated[list[str] | None, typer.Option("--day", help="UTC day YYYY-MM-DD (repeatable); "
                                                          "default: every day with entries.")] = None,
           json_out: JsonOpt = False) -> None:
    """Every audit entry signed, chained and visible; every user's administration records intact."""
    from pipeline.access.audit import AuditTrail
    from pipeline.access.auth import AuthStore
    from pipeline.access.records import trusted_keys

    ev = evidence()
    trail = AuditTrail(ev.store, ev.signer)
    trusted = trusted_keys(ev.settings, ev.signer)
    days = [trail.verify_day(d, trusted) for d in (day or trail.days())]
    users = AuthStore(ev.store, ev.signer).verify_all()
    ok = all(d.ok for d in days) and all(u["ok"] for u in users)
    doc = {"ok": ok, "days": [d.as_dict() for d in days], "users": users}
    if json_out:
        emit_json(doc)
    else:
        for d in days:
            say(f"{'PASS' if d.ok else 'FAIL'} audit {d.day}: {d.entries} entries from {len(d.writers)} writer(s)")
            for f in d.findings:
                say(f"  {f}")
        bad = [u for u in users if not u["ok"]]
        say(f"{'PASS' if not bad else 'FAIL'} administration records of {len(users)} user(s)")
        for u in bad:
            say(f"  user {u['user']}: {'; '.join(u['findings'][:5])}")
    if not ok:
        raise typer.Exit(VerificationFailed.exit_code)


@audit_app.command("matches")
def matches(sha256: Annotated[str, typer.Option("--sha256", help="SHA-256 of the bytes to look for.")],
            reason: Annotated[str, typer.Option("--reason", help="Why you are searching (recorded).")],
            json_out: JsonOpt = False) -> None:
    """Which cases hold these exact bytes (supervisory search across cases; audited before it answers)."""
    from pipeline.access.audit import AuditTrail
    from pipeline.intake.dedupe import HashIndex
    from pipeline.text import clean_human_text

    if len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise UsageError("--sha256 must be 64 hex digits")
    ev = evidence()
    who = actor_for(ev)
    why = clean_human_text(reason, "reason", 500, required=True)
    found = HashIndex(ev.store).matches(sha256)
    AuditTrail(ev.store, ev.signer).write({"via": "cli", "user": who.name, "role": "operator (S3 keys)",
                                           "method": "CLI", "path": "custody audit matches",
                                           "permission": "duplicates.search", "outcome": "allowed",
                                           "sha256": sha256.lower(), "reason": why, "matches": len(found),
                                           "case_ids": [m["case_id"] for m in found]})
    cases = {c.id: c.ref for c in ev.catalog.list_cases()}
    out = [{**m, "case": cases.get(m["case_id"])} for m in found]
    if json_out:
        emit_json({"sha256": sha256.lower(), "matches": out})
    else:
        say(f"{len(out)} case(s) hold these bytes")
        for m in out:
            say(f"  {m['case']} ({m['case_id']}) exhibit {m['exhibit_id']} since {m['time']}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")

"""`custody case ...`, `custody exhibit ...` and `custody hold`."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import CaseOpt, ExhibitOpt, JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say, say_styled
from pipeline.errors import UsageError

case_app = typer.Typer(no_args_is_help=True, help="Cases.")
exhibit_app = typer.Typer(no_args_is_help=True, help="Exhibits.")


@case_app.command("create")
def case_create(ref: Annotated[str, typer.Option("--ref", help="Case reference.")],
                title: Annotated[str, typer.Option(help="Short description.")] = "",
                json_out: JsonOpt = False) -> None:
    """Open a case (an existing reference is reported, not duplicated)."""
    ev = evidence()
    case, created = ev.create_case(ref, actor_for(ev), title)
    if json_out:
        emit_json({"case": case.ref, "case_id": case.id, "created": created, "title": case.title})
    else:
        say(f"case {case.ref} {'created' if created else 'already exists'} ({case.id})")


@case_app.command("list")
def case_list(json_out: JsonOpt = False) -> None:
    ev = evidence()
    cases = ev.catalog.list_cases()
    if json_out:
        emit_json([{"case": c.ref, "case_id": c.id, "title": c.title, "created": c.created} for c in cases])
    else:
        for c in cases:
            say(f"{c.ref}\t{c.title}")


@exhibit_app.command("create")
def exhibit_create(case: CaseOpt, exhibit: ExhibitOpt,
                   officer: Annotated[str, typer.Option(help="Officer producing the exhibit.")],
                   description: str = "", json_out: JsonOpt = False) -> None:
    ev = evidence()
    c, e = ev.ensure_exhibit(case, exhibit, officer, actor_for(ev, officer, "officer"), description, create_case=False)
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "exhibit_id": e.id, "officer": e.officer})
    else:
        say(f"exhibit {e.ref} in case {c.ref} ({e.id})")


@exhibit_app.command("list")
def exhibit_list(case: CaseOpt, json_out: JsonOpt = False) -> None:
    """Exhibits of a case."""
    ev = evidence()
    c = ev.catalog.get_case(case)
    items = [{"exhibit": e.ref, "exhibit_id": e.id, "officer": e.officer, "description": e.description,
              "created": e.created} for e in ev.catalog.list_exhibits(c)]
    if json_out:
        emit_json(items)
    else:
        for i in items:
            say(f"{i['exhibit']}\t{i['officer']}\t{i['description']}")


@exhibit_app.command("show")
def exhibit_show(case: CaseOpt, exhibit: ExhibitOpt, json_out: JsonOpt = False) -> None:
    """An exhibit's objects and custody timeline."""
    from pipeline.review.views import exhibit_view

    ev = evidence()
    view = exhibit_view(ev, case, exhibit)
    if json_out:
        emit_json(view)
        return
    say_styled("[bold]{} / {}[/] officer {}", view["case"], view["exhibit"], view["officer"])
    for o in view["objects"]:
        say(f"  {o['role']:8} {o['status']:10} {o['size']:>12}  {o['sha256']}  {o['original_name']}")
    for e in view["events"]:
        say(f"  #{e['seq']:<4} {e['time']}  {e['action']:16} {e['actor']['name']}")
    if not view["chain"]["ok"]:
        say_styled("[red]custody chain problems: {}[/]", "; ".join(view["chain"]["findings"]))


def hold(case: CaseOpt, exhibit: ExhibitOpt,
         on: Annotated[bool, typer.Option("--on/--off", help="Place or release a legal hold.")] = True,
         reason: Annotated[str, typer.Option(help="Why (recorded in custody).")] = "",
         json_out: JsonOpt = False) -> None:
    """Place or release an S3 legal hold on every original of an exhibit."""
    from pipeline.text import clean_human_text

    reason = clean_human_text(reason, "reason", 500)
    ev = evidence()
    who = actor_for(ev)  # before any hold is set: a missing actor must not leave holds unrecorded
    c, e = ev.get(case, exhibit)
    if not ev.store.lock_supported:
        raise UsageError("this S3 server has no Object Lock, so legal holds are not available")
    chain = ev.log.read(e.id)
    objs = [o for o in ev.objects(chain.events, roles=("original",))]
    for o in objs:
        ev.store.set_legal_hold(o.bucket, o.key, o.version_id, on)
    ev.record(c, e, "legal_hold_on" if on else "legal_hold_off", actor=who,
              objects=[{"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256,
                        "size": o.size, "role": "reference"} for o in objs], parameters={"reason": reason})
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "legal_hold": on, "objects": len(objs)})
    else:
        say(f"legal hold {'placed on' if on else 'released from'} {len(objs)} original(s)")



def register(app: typer.Typer) -> None:
    app.add_typer(case_app, name="case")
    app.add_typer(exhibit_app, name="exhibit")
    app.command("hold")(hold)

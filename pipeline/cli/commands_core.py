"""Cases, exhibits, ingest and verify."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from pipeline.cli.output import emit_json, err, say
from pipeline.custody import Actor
from pipeline.errors import UsageError
from pipeline.evidence import Evidence
from pipeline.settings import load_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
CaseOpt = Annotated[str, typer.Option("--case", help="Case reference, e.g. OP-NIGHTJAR/26.")]
ExhibitOpt = Annotated[str, typer.Option("--exhibit", help="Exhibit reference, e.g. JB/1.")]

case_app = typer.Typer(no_args_is_help=True, help="Cases.")
exhibit_app = typer.Typer(no_args_is_help=True, help="Exhibits.")


def _evidence() -> Evidence:
    return Evidence(load_settings())


def _actor(ev: Evidence, name: str | None = None, role: str = "operator") -> Actor:
    return Actor(name or ev.settings.actor or Actor.default(ev.settings).name, role)


def walk_files(paths: list[Path]) -> list[Path]:
    """Expand directories (sorted, symlinks not followed) into files; refuse what isn't there."""
    out: list[Path] = []
    for p in paths:
        if p.is_symlink() and p.is_dir():
            raise UsageError(f"{p} is a symlink to a directory; give the real path")
        if p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs.sort()
                out.extend(Path(root) / f for f in sorted(files) if (Path(root) / f).is_file())
        elif p.is_file():
            out.append(p)
        elif not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        else:
            raise UsageError(f"{p}: not a regular file")
    if not out:
        raise UsageError("no files to ingest")
    return out


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


@case_app.command("create")
def case_create(ref: Annotated[str, typer.Option("--ref", help="Case reference.")],
                title: Annotated[str, typer.Option(help="Short description.")] = "",
                json_out: JsonOpt = False) -> None:
    """Open a case (an existing reference is reported, not duplicated)."""
    ev = _evidence()
    case, created = ev.create_case(ref, _actor(ev), title)
    if json_out:
        emit_json({"case": case.ref, "case_id": case.id, "created": created, "title": case.title})
    else:
        say(f"case {case.ref} {'created' if created else 'already exists'} ({case.id})")


@case_app.command("list")
def case_list(json_out: JsonOpt = False) -> None:
    ev = _evidence()
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
    ev = _evidence()
    c, e = ev.ensure_exhibit(case, exhibit, officer, _actor(ev, officer, "officer"), description, create_case=False)
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "exhibit_id": e.id, "officer": e.officer})
    else:
        say(f"exhibit {e.ref} in case {c.ref} ({e.id})")


@exhibit_app.command("list")
def exhibit_list(case: CaseOpt, json_out: JsonOpt = False) -> None:
    """Exhibits of a case."""
    ev = _evidence()
    c = ev.catalog.get_case(case)
    items = [{"exhibit": e.ref, "exhibit_id": e.id, "officer": e.officer, "description": e.description,
              "created": e.created} for e in ev.catalog.list_exhibits(c)]
    if json_out:
        emit_json(items)
    else:
        for i in items:
            say(f"{i['exhibit']}\t{i['officer']}\t{i['description']}")


def exhibit_view(ev: Evidence, case_ref: str, exhibit_ref: str) -> dict[str, Any]:
    c, e = ev.get(case_ref, exhibit_ref)
    chain = ev.log.read(e.id)
    objs = ev.objects(chain.events, roles=("original", "derived", "bundle", "metadata"))
    return {
        "case": c.ref, "case_id": c.id, "exhibit": e.ref, "exhibit_id": e.id, "officer": e.officer,
        "description": e.description, "created": e.created,
        "objects": [{"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256,
                     "size": o.size, "role": o.role, "status": o.status, "original_name": o.original_name,
                     "source": o.source, "event_seq": o.event_seq, **o.info} for o in objs],
        "events": chain.events,
        "chain": {"ok": chain.ok, "length": len(chain.events), "head": chain.head_hash,
                  "findings": [str(f) for f in chain.findings]},
    }


@exhibit_app.command("show")
def exhibit_show(case: CaseOpt, exhibit: ExhibitOpt, json_out: JsonOpt = False) -> None:
    """An exhibit's objects and custody timeline."""
    ev = _evidence()
    view = exhibit_view(ev, case, exhibit)
    if json_out:
        emit_json(view)
        return
    say(f"[bold]{view['case']} / {view['exhibit']}[/] officer {view['officer']}")
    for o in view["objects"]:
        say(f"  {o['role']:8} {o['status']:10} {o['size']:>12}  {o['sha256']}  {o['original_name']}")
    for e in view["events"]:
        say(f"  #{e['seq']:<4} {e['time']}  {e['action']:16} {e['actor']['name']}")
    if not view["chain"]["ok"]:
        say("[red]custody chain problems: " + "; ".join(view["chain"]["findings"]) + "[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(case_app, name="case")
    app.add_typer(exhibit_app, name="exhibit")
    app.command("ingest")(ingest)
    app.command("verify")(verify)
    app.command("hold")(hold)


def ingest(files: Annotated[list[Path], typer.Argument(help="Files or directories to store as originals.")],
           case: CaseOpt, exhibit: ExhibitOpt,
           officer: Annotated[str, typer.Option(help="Officer who produced the exhibit.")],
           description: Annotated[str, typer.Option(help="Exhibit description (new exhibits).")] = "",
           also_hash: Annotated[str, typer.Option("--also-hash", help="Extra digests: md5,sha1")] = "",
           json_out: JsonOpt = False) -> None:
    """Store local files as locked originals, each with its custody event."""
    algorithms = ("sha256", *[a.strip().lower() for a in also_hash.split(",") if a.strip()])
    paths = walk_files(files)
    ev = _evidence()
    actor = _actor(ev, officer, "officer")
    c, e = ev.ensure_exhibit(case, exhibit, officer, actor, description)
    results = []
    total = sum(p.stat().st_size for p in paths)
    with progress_bar() as prog:
        overall = prog.add_task("total", total=total)
        for p in paths:
            task = prog.add_task(p.name[:40], total=p.stat().st_size)

            def adv(n: int, task: Any = task) -> None:
                prog.advance(task, n)
                prog.advance(overall, n)

            obj, event = ev.add_original(c, e, p, actor=actor, original_name=p.name, algorithms=algorithms,
                                         progress=adv, parameters={"source": "local-file"})
            results.append({**obj.ref(), "original_name": p.name, "digests": obj.digests, "event_seq": event["seq"],
                            "status": "ok"})
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "exhibit_id": e.id, "objects": results})
    else:
        for r in results:
            say(f"stored {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes)")


def verify(target: Annotated[Path | None, typer.Argument(help="A bundle .zip to verify offline.")] = None,
           case: Annotated[str | None, typer.Option("--case")] = None,
           exhibit: Annotated[str | None, typer.Option("--exhibit")] = None,
           trusted_key: Annotated[list[Path] | None, typer.Option(
               "--trusted-key", help="Bundle only: public key (PEM) the sender gave you out of band.")] = None,
           json_out: JsonOpt = False) -> None:
    """Re-hash every object and check every link and signature; PASS or what failed."""
    if target is not None:
        from pipeline.bundle_verify import verify_bundle_cli

        raise typer.Exit(verify_bundle_cli(target, json_out, trusted_key or None))
    if not case and not exhibit:
        raise UsageError("give --case C [--exhibit E], --exhibit E, or a bundle file")
    from pipeline.cli.commands_extract import find_exhibit
    from pipeline.verify import verify_exhibit

    ev = _evidence()
    if case:
        c = ev.catalog.get_case(case)
        exhibits = [ev.catalog.get_exhibit(c, exhibit)] if exhibit else ev.catalog.list_exhibits(c)
    else:
        c, e1 = find_exhibit(ev, exhibit, None)
        exhibits = [e1]
    reports = []
    with err.status("verifying") as status:
        for e in exhibits:
            reports.append(verify_exhibit(ev, c, e, progress=lambda s: status.update(f"re-hashing {s[:80]}")))
    ok = all(r.ok for r in reports)
    if json_out:
        emit_json({"result": "PASS" if ok else "FAIL", "case": c.ref, "exhibits": [r.as_dict() for r in reports]})
    else:
        for r in reports:
            if r.ok:
                say(f"[green]PASS[/] {c.ref} {r.exhibit_ref}: {r.events} events, {r.objects} objects, "
                    f"{r.bytes_hashed} bytes re-hashed")
            else:
                say(f"[red]FAIL[/] {c.ref} {r.exhibit_ref}:")
                for f in r.findings:
                    say(f"  - {f}")
        print("PASS" if ok else "FAIL")
    if not ok:
        raise typer.Exit(1)


def hold(case: CaseOpt, exhibit: ExhibitOpt,
         on: Annotated[bool, typer.Option("--on/--off", help="Place or release a legal hold.")] = True,
         reason: Annotated[str, typer.Option(help="Why (recorded in custody).")] = "",
         json_out: JsonOpt = False) -> None:
    """Place or release an S3 legal hold on every original of an exhibit."""
    ev = _evidence()
    c, e = ev.get(case, exhibit)
    if not ev.store.lock_supported:
        raise UsageError("this S3 server has no Object Lock, so legal holds are not available")
    chain = ev.log.read(e.id)
    objs = [o for o in ev.objects(chain.events, roles=("original",))]
    for o in objs:
        ev.store.set_legal_hold(o.bucket, o.key, o.version_id, on)
    ev.record(c, e, "legal_hold_on" if on else "legal_hold_off", actor=_actor(ev),
              objects=[{"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256,
                        "size": o.size, "role": "reference"} for o in objs], parameters={"reason": reason})
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "legal_hold": on, "objects": len(objs)})
    else:
        say(f"legal hold {'placed on' if on else 'released from'} {len(objs)} original(s)")

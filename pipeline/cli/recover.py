"""`custody recover`: a playable working copy of footage whose camera lost power before finishing the file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.common import JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, err, say
from pipeline.errors import UsageError


def recover(exhibit: Annotated[str, typer.Argument(help="Exhibit reference, e.g. JB/1.")],
            case: Annotated[str | None, typer.Option("--case", help="Case reference (needed if ambiguous).")] = None,
            obj: Annotated[str | None, typer.Option(
                "--object", help="Original to recover: file name or object ID (default: every original "
                                 "flagged truncated).")] = None,
            reference: Annotated[str | None, typer.Option(
                "--reference", help="Object ID of a healthy original from the same camera, in any exhibit of the "
                                    "case.")] = None,
            reference_exhibit: Annotated[str | None, typer.Option(
                "--reference-exhibit", help="Exhibit holding the reference (with --reference-name, or alone if it "
                                            "holds one healthy recording); with --reference-file, the exhibit "
                                            "the file is stored in first.")] = None,
            reference_name: Annotated[str | None, typer.Option(
                "--reference-name", help="File name of the reference within --reference-exhibit.")] = None,
            reference_file: Annotated[Path | None, typer.Option(
                "--reference-file", help="A local healthy recording: stored as an original of --reference-exhibit "
                                         "first, so the recovery names it by its custody record.")] = None,
            json_out: JsonOpt = False) -> None:
    """Rebuild a playable working copy from a recording without its index (moov); the original is untouched.

    Without a reference, parameter sets repeated in the stream are used if the camera wrote them. Exit code 2
    when nothing could be recovered (the attempt is still recorded in custody).
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.recovery.derive import (
        RecoveryImpossible,
        find_reference,
        ingest_reference,
        originals_to_recover,
        recover_object,
    )

    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    actor = actor_for(ev, role="examiner")
    if sum(x is not None for x in (reference, reference_file, reference_name)) > 1:
        raise UsageError("name the reference one way: --reference ID, --reference-exhibit [--reference-name], "
                         "or --reference-file with --reference-exhibit")
    targets = originals_to_recover(ev, e, obj)
    ref = None
    if reference_file is not None:
        if not reference_exhibit:
            raise UsageError("--reference-file needs --reference-exhibit: the exhibit the reference is stored in")
        ref = ingest_reference(ev, c, reference_file, reference_exhibit, actor)
    elif reference is not None or reference_exhibit is not None:
        rex = ev.catalog.get_exhibit(c, reference_exhibit) if reference_exhibit else None
        ref = find_reference(ev, c, object_id_=reference, exhibit=rex, name=reference_name)
    outcomes: list[dict[str, Any]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=err) as prog:
        for o in targets:
            task = prog.add_task((o.original_name or o.key)[:40], total=None)

            def cb(n: int, total: int, task: Any = task) -> None:
                prog.update(task, completed=n, total=total)

            outcomes.append(recover_object(ev, c, e, o, ref, actor=actor, progress=cb).as_dict())
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "reference": ref.record() if ref else None,
                   "results": outcomes})
    else:
        for r in outcomes:
            say(f"{r['source']}: {r['status']} (event #{r['event_seq']} {r['action']})")
            say(f"  {r['message']}")
            if r["recovered"]:
                copy = r["recovered"]
                say(f"  working copy {copy['original_name']}  sha256 {copy['sha256']}  ({copy['size']} bytes)"
                    + (f", identical to event #{r['repeated_of_event']}'s" if r["repeated_of_event"] else ""))
    failed = [r for r in outcomes if r["status"] == "impossible"]
    if failed:
        raise RecoveryImpossible("; ".join(f"{r['source']}: {r['message']} (recorded as event #{r['event_seq']})"
                                           for r in failed))


def register(app: typer.Typer) -> None:
    app.command("recover")(recover)

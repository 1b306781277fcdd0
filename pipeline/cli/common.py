"""What every command shares: option types, the evidence facade, the actor, progress bars.

Kept free of heavy imports (no video libraries, no Prefect, no web framework): each command imports
what it needs inside its function, so `custody exhibit list` costs no more than the store client.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.progress import Progress

    from pipeline.cli.lineprogress import LineProgress
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
CaseOpt = Annotated[str, typer.Option("--case", help="Case reference, e.g. OP-NIGHTJAR/26.")]
ExhibitOpt = Annotated[str, typer.Option("--exhibit", help="Exhibit reference, e.g. JB/1.")]


def evidence() -> Evidence:
    from pipeline.cli.finishing import after_command
    from pipeline.evidence import Evidence
    from pipeline.settings import load_settings

    ev = Evidence(load_settings())
    after_command(ev.flush)  # what this command appended reaches the transparency log as the command ends
    return ev


def actor_for(ev: Evidence, name: str | None = None, role: str = "operator") -> Actor:
    """The named actor: `name` (e.g. --officer), else --actor / CUSTODY_ACTOR / settings, else asked once on a
    terminal (and kept in settings.json); without a terminal the command fails saying how to set it (exit 2)."""
    from pipeline.custody.actor import Actor, NoActor, validate_actor_name

    if name and name.strip():
        return Actor(validate_actor_name(name), role)
    try:
        return Actor(Actor.default(ev.settings).name, role)
    except NoActor:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise
    who = validate_actor_name(typer.prompt("Who is acting? This name is recorded in every custody event "
                                           "(kept in settings.json)", err=True))
    remember_actor(ev.settings.home, who)
    ev.settings.actor = who
    return Actor(who, role)


def remember_actor(home: Path, name: str) -> None:
    """Write `actor` into $CUSTODY_HOME/settings.json, keeping every other setting."""
    import json
    import os

    path = home / "settings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["actor"] = name
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".settings.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


def progress_bar() -> Progress | LineProgress:
    """rich's live bar on a terminal; plain lines every few seconds in a log (see `lineprogress`)."""
    import sys

    if not sys.stderr.isatty():
        from pipeline.cli.lineprogress import LineProgress

        return LineProgress()
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from pipeline.cli.output import err

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)

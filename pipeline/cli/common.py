"""What every command shares: option types, the evidence facade, the actor, progress bars.

Kept free of heavy imports (no video libraries, no Prefect, no web framework): each command imports
what it needs inside its function, so `custody exhibit list` costs no more than the store client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.progress import Progress

    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
CaseOpt = Annotated[str, typer.Option("--case", help="Case reference, e.g. OP-NIGHTJAR/26.")]
ExhibitOpt = Annotated[str, typer.Option("--exhibit", help="Exhibit reference, e.g. JB/1.")]


def evidence() -> Evidence:
    import atexit

    from pipeline.evidence import Evidence
    from pipeline.settings import load_settings

    ev = Evidence(load_settings())
    atexit.register(ev.flush)  # what this command appended reaches the transparency log before it exits
    return ev


def actor_for(ev: Evidence, name: str | None = None, role: str = "operator") -> Actor:
    from pipeline.custody.actor import Actor

    return Actor(name or ev.settings.actor or Actor.default(ev.settings).name, role)


def progress_bar() -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from pipeline.cli.output import err

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)

"""`custody bundle`: export exhibits as a BagIt bundle a recipient can verify offline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import JsonOpt, actor_for, evidence, progress_bar
from pipeline.cli.output import emit_json, say


def bundle(case: Annotated[str, typer.Option("--case", help="Case reference.")],
           out: Annotated[Path, typer.Option("--out", help="Bundle file to write (.zip).")],
           recipient: Annotated[str, typer.Option("--recipient", help="Who receives it (required, recorded).")],
           reason: Annotated[str, typer.Option("--reason", help="Why it is disclosed (required, recorded).")],
           exhibit: Annotated[list[str] | None, typer.Option("--exhibit", help="Exhibit reference (repeatable); "
                                                              "default: every exhibit of the case.")] = None,
           working_copies: Annotated[bool, typer.Option("--working-copies", help="Label the footage as working "
                                                        "copies (byte-identical) instead of originals.")] = False,
           link_minutes: Annotated[int, typer.Option("--link-minutes", help="Also issue a presigned download "
                                                     "link valid this many minutes (recorded).")] = 0,
           derived: Annotated[str, typer.Option("--derived", help="Derived material besides the originals: "
                                                "review (clips, clock-time contact sheets, stills taken at a "
                                                "chosen instant, metadata), none, or all (every still and "
                                                "thumbnail: many times the originals).")] = "review",
           json_out: JsonOpt = False) -> None:
    """Stream a case's exhibits into a BagIt zip, lock it in the bundles bucket, record `exported`."""
    from pipeline.errors import UsageError
    from pipeline.export.bundle import build_bundle
    from pipeline.export.links import presign_bundle_download
    from pipeline.review import selection

    if not recipient.strip() or not reason.strip():
        raise UsageError("--recipient and --reason are required: say who receives the bundle and why")
    keep, chosen = selection.cli_choice(derived)
    ev = evidence()
    who = actor_for(ev)
    with progress_bar() as prog:
        task = prog.add_task("bundle", total=None)

        def adv(label: str, n: int) -> None:
            prog.update(task, description=label[:40], advance=n)

        def phase(name: str, total: int) -> None:
            prog.reset(task, total=total, description=name)

        res = build_bundle(ev, case, exhibit or None, out, actor=who, working_copies=working_copies,
                           recipient=recipient, reason=reason, progress=adv, plan=phase, keep=keep,
                           selection=chosen)
    data = res.as_dict()
    if link_minutes:
        data["download_url"] = presign_bundle_download(ev, res.case, res.object_ref(), who,
                                                        timedelta(minutes=link_minutes))
    if json_out:
        emit_json(data)
        return
    say(f"bundle {res.path} ({res.size} bytes, {res.payload_files} payload files) sha256 {res.sha256}")
    say(f"stored under Object Lock at {res.bucket}/{res.key}; `exported` recorded on {', '.join(res.exhibits)}")
    say(f"signing key id(s) for the recipient to confirm out of band: {', '.join(res.key_ids)}")
    if link_minutes:
        say(f"download link (valid {link_minutes} min): {data['download_url']}")


def register(app: typer.Typer) -> None:
    app.command("bundle")(bundle)

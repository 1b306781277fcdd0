"""`custody ingest` and `custody upload`: originals from local files (or through a remote API)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.common import CaseOpt, ExhibitOpt, JsonOpt, actor_for, evidence, progress_bar
from pipeline.cli.output import emit_json, say
from pipeline.errors import UsageError


def ingest(files: Annotated[list[Path], typer.Argument(help="Files or directories to store as originals.")],
           case: CaseOpt, exhibit: ExhibitOpt,
           officer: Annotated[str, typer.Option(help="Officer who produced the exhibit.")],
           description: Annotated[str, typer.Option(help="Exhibit description (new exhibits).")] = "",
           also_hash: Annotated[str, typer.Option("--also-hash", help="Extra digests: md5,sha1")] = "",
           json_out: JsonOpt = False) -> None:
    """Store local files as locked originals, each with its custody event (and what they are: probe, EXIF)."""
    from pipeline.intake.files import walk_files

    paths = walk_files(files)
    ev = evidence()
    who = actor_for(ev, officer, "officer")
    c, e = ev.ensure_exhibit(case, exhibit, officer, who, description)
    results = store_files(ev, c, e, paths, "local-file", {}, _algorithms(also_hash), who)
    if json_out:
        emit_json({"case": c.ref, "case_id": c.id, "exhibit": e.ref, "exhibit_id": e.id, "objects": results})
    else:
        _print_results(results)


def _algorithms(also_hash: str) -> tuple[str, ...]:
    return ("sha256", *[a.strip().lower() for a in also_hash.split(",") if a.strip()])


def store_files(ev: Any, c: Any, e: Any, files: list[Path], source: str, params: dict[str, Any],
                algorithms: tuple[str, ...], who: Any, limit_mb_s: float | None = None) -> list[dict[str, Any]]:
    """Each file through the one intake path, with a progress bar per file and in total."""
    from pipeline.intake.upload import offer, store_original

    def one(p: Path, adv: Callable[[int], None]) -> dict[str, Any]:
        return store_original(ev, c, e, p, offer(p.name, source, params), actor=who, algorithms=algorithms,
                              progress=adv, limit_mb_s=limit_mb_s).as_dict()

    return each_with_progress(files, one)


def each_with_progress(files: list[Path], fn: Callable[[Path, Callable[[int], None]], dict[str, Any]]
                       ) -> list[dict[str, Any]]:
    """Run `fn(file, advance)` for each file with a progress bar per file and one for the total."""
    results: list[dict[str, Any]] = []
    with progress_bar() as prog:
        overall = prog.add_task(f"total ({len(files)} files)", total=sum(p.stat().st_size for p in files))
        for p in files:
            task = prog.add_task(p.name[:40], total=p.stat().st_size)

            def adv(n: int, task: Any = task) -> None:
                prog.advance(task, n)
                prog.advance(overall, n)

            results.append(fn(p, adv))
    return results


def _print_results(results: list[dict[str, Any]]) -> None:
    for r in results:
        extra = " (linked to an identical earlier upload)" if r["linked"] else ""
        extra += f" (resumed: {r['resumed_parts']} parts reused)" if r["resumed_parts"] else ""
        say(f"{r['status']:20} {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes){extra}")
        if r["status"] != "ok":
            say(f"  {r['message']}")


def upload(paths: Annotated[list[Path], typer.Argument(help="Files or directories; each file is its own original.")],
           case: CaseOpt, exhibit: ExhibitOpt,
           officer: Annotated[str, typer.Option(help="Officer who seized / produced the exhibit.")],
           seized_at: Annotated[str | None, typer.Option("--seized-at", help="When seized (ISO 8601).")] = None,
           location: Annotated[str | None, typer.Option(help="Where seized.")] = None,
           device: Annotated[str | None, typer.Option(help="Camera or device the footage came from.")] = None,
           description: Annotated[str, typer.Option(help="Exhibit description (new exhibits).")] = "",
           limit_rate: Annotated[float | None, typer.Option("--limit-rate", min=0.1,
                                                            help="Cap the upload at this many MB/s.")] = None,
           also_hash: Annotated[str, typer.Option("--also-hash", help="Extra digests: md5,sha1")] = "",
           api: Annotated[str | None, typer.Option("--api", help="Upload through this custody API base URL "
                                                                 "instead of S3 directly.")] = None,
           token: Annotated[str | None, typer.Option("--token", envvar="CUSTODY_API_TOKEN",
                                                     help="API token (or CUSTODY_API_TOKEN).")] = None,
           json_out: JsonOpt = False) -> None:
    """Upload field footage as originals: resumable (rerun after an interruption), hashed while sent.

    Bad input (empty, not media, truncated, broken EXIF) is stored all the same and flagged with a status.
    """
    from pipeline.intake.files import walk_files
    from pipeline.intake.seizure import seizure_parameters

    files = walk_files(paths)
    params = seizure_parameters(seized_at, location, device)
    if api:
        _upload_via_api(api, token, files, case, exhibit, officer, description, params, json_out)
        return
    ev = evidence()
    who = actor_for(ev, officer, "officer")
    c, e = ev.ensure_exhibit(case, exhibit, officer, who, description)
    results = store_files(ev, c, e, files, "field-upload", params, _algorithms(also_hash), who, limit_rate)
    if json_out:
        emit_json({"case": c.ref, "case_id": c.id, "exhibit": e.ref, "exhibit_id": e.id, "objects": results})
    else:
        _print_results(results)


def _upload_via_api(api: str, token: str | None, files: list[Path], case: str, exhibit: str, officer: str,
                    description: str, params: dict[str, Any], json_out: bool) -> None:
    """The same upload through the HTTP API (not resumable: a rerun sends the file again)."""
    from pipeline.intake.api_client import ApiClient

    if not token:
        raise UsageError("--api needs --token (or CUSTODY_API_TOKEN)")
    client = ApiClient(api, token)
    case_id, exhibit_id = client.exhibit(case, exhibit, officer, description)
    results = each_with_progress(files, lambda p, adv: client.upload(case_id, exhibit_id, p, params, adv))
    if json_out:
        emit_json({"case": case, "case_id": case_id, "exhibit": exhibit, "exhibit_id": exhibit_id,
                   "objects": results})
    else:
        for r in results:
            say(f"{r['status']:20} {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes)")



def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("upload")(upload)

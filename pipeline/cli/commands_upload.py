"""`custody upload`, `custody serve`, `custody user ...` and `custody exhibit clock`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.commands_core import (
    CaseOpt,
    ExhibitOpt,
    JsonOpt,
    _actor,
    _evidence,
    exhibit_app,
    progress_bar,
    walk_files,
)
from pipeline.cli.output import emit_json, say
from pipeline.errors import UsageError

user_app = typer.Typer(no_args_is_help=True, help="API users, tokens and case assignments (admin).")


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
    from pipeline.upload import seizure_parameters, upload_file

    algorithms = ("sha256", *[a.strip().lower() for a in also_hash.split(",") if a.strip()])
    files = walk_files(paths)
    params = seizure_parameters(seized_at, location, device)
    if api:
        _upload_via_api(api, token, files, case, exhibit, officer, description, params, json_out)
        return
    ev = _evidence()
    actor = _actor(ev, officer, "officer")
    c, e = ev.ensure_exhibit(case, exhibit, officer, actor, description)
    results: list[dict[str, Any]] = []
    total = sum(p.stat().st_size for p in files)
    with progress_bar() as prog:
        overall = prog.add_task(f"total ({len(files)} files)", total=total)
        for p in files:
            task = prog.add_task(p.name[:40], total=p.stat().st_size)

            def adv(n: int, task: Any = task) -> None:
                prog.advance(task, n)
                prog.advance(overall, n)

            r = upload_file(ev, c, e, p, actor=actor, parameters=params, algorithms=algorithms, progress=adv,
                            limit_mb_s=limit_rate)
            results.append(r.as_dict())
    if json_out:
        emit_json({"case": c.ref, "case_id": c.id, "exhibit": e.ref, "exhibit_id": e.id, "objects": results})
        return
    for r in results:
        extra = " (linked to an identical earlier upload)" if r["linked"] else ""
        extra += f" (resumed: {r['resumed_parts']} parts reused)" if r["resumed_parts"] else ""
        say(f"{r['status']:20} {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes){extra}")
        if r["status"] != "ok":
            say(f"  {r['message']}")


def _upload_via_api(api: str, token: str | None, files: list[Path], case: str, exhibit: str, officer: str,
                    description: str, params: dict[str, Any], json_out: bool) -> None:
    """The same upload through the HTTP API (not resumable: a rerun sends the file again)."""
    from pipeline.upload import ApiClient

    if not token:
        raise UsageError("--api needs --token (or CUSTODY_API_TOKEN)")
    client = ApiClient(api, token)
    case_id, exhibit_id = client.exhibit(case, exhibit, officer, description)
    results = []
    with progress_bar() as prog:
        overall = prog.add_task(f"total ({len(files)} files)", total=sum(p.stat().st_size for p in files))
        for p in files:
            task = prog.add_task(p.name[:40], total=p.stat().st_size)

            def adv(n: int, task: Any = task) -> None:
                prog.advance(task, n)
                prog.advance(overall, n)

            results.append(client.upload(case_id, exhibit_id, p, params, adv))
    if json_out:
        emit_json({"case": case, "case_id": case_id, "exhibit": exhibit, "exhibit_id": exhibit_id,
                   "objects": results})
    else:
        for r in results:
            say(f"{r['status']:20} {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes)")


def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535)] = 8700,
          certfile: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM).")] = None,
          keyfile: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
          log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning") -> None:
    """Run the HTTP API (JSON under /api/, OpenAPI at /api/openapi.json)."""
    import uvicorn

    from pipeline.api import create_app
    from pipeline.settings import is_loopback, load_settings

    if not is_loopback(host) and not (certfile and keyfile):
        raise UsageError(f"refusing to serve on {host} without TLS: bearer tokens and evidence would cross the "
                         "network in clear; give --tls-cert and --tls-key (or listen on 127.0.0.1 behind a proxy)")
    settings = load_settings()
    say(f"custody API on {'https' if certfile else 'http'}://{host}:{port}/api/ (OpenAPI: /api/openapi.json)")
    # bounded graceful shutdown: idle keep-alive clients must not hold a stopping server open
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                ssl_certfile=str(certfile) if certfile else None, ssl_keyfile=str(keyfile) if keyfile else None)


def _auth():  # type: ignore[no-untyped-def]
    from pipeline.auth import AuthStore

    ev = _evidence()
    return ev, AuthStore(ev.store)


@user_app.command("add")
def user_add(name: Annotated[str, typer.Argument(help="User name.")],
             role: Annotated[str, typer.Option(help="officer, investigator, supervisor, auditor or admin.")],
             json_out: JsonOpt = False) -> None:
    """Create an API user; prints their token once (only its hash is stored)."""
    ev, auth = _auth()
    user, token = auth.add_user(name, role, _actor(ev).name)
    if json_out:
        emit_json({"name": user.name, "role": user.role, "token": token})
    else:
        say(f"user {user.name} ({user.role}) created; token (shown once, store it safely):")
        print(token)


@user_app.command("token")
def user_token(name: Annotated[str, typer.Argument()], json_out: JsonOpt = False) -> None:
    """Issue another token for a user (e.g. a lost one; revoke the old with `custody user revoke`)."""
    ev, auth = _auth()
    token = auth.issue_token(name, _actor(ev).name)
    if json_out:
        emit_json({"name": name, "token": token})
    else:
        print(token)


@user_app.command("revoke")
def user_revoke(token: Annotated[str, typer.Option("--token", help="The token to revoke.")]) -> None:
    """Revoke one token."""
    _ev, auth = _auth()
    auth.revoke_token(token)
    say("revoked")


@user_app.command("disable")
def user_disable(name: Annotated[str, typer.Argument()],
                 enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False) -> None:
    """Disable (or re-enable) a user: all their tokens stop working."""
    _ev, auth = _auth()
    u = auth.set_disabled(name, not enable)
    say(f"user {u.name} {'disabled' if u.disabled else 'enabled'}")


@user_app.command("assign")
def user_assign(name: Annotated[str, typer.Argument()], case: CaseOpt,
                remove: Annotated[bool, typer.Option("--remove", help="Remove the assignment.")] = False,
                json_out: JsonOpt = False) -> None:
    """Assign a user to a case (officers and investigators only see assigned cases)."""
    ev, auth = _auth()
    c = ev.catalog.get_case(case)
    auth.assign(name, c, _actor(ev).name, active=not remove)
    if json_out:
        emit_json({"name": name, "case": c.ref, "case_id": c.id, "active": not remove})
    else:
        say(f"{name} {'removed from' if remove else 'assigned to'} {c.ref}")


@user_app.command("list")
def user_list(json_out: JsonOpt = False) -> None:
    _ev, auth = _auth()
    users = auth.list_users()
    if json_out:
        emit_json([{"name": u.name, "role": u.role, "created": u.created, "disabled": u.disabled,
                    "cases": sorted(auth.assigned_case_ids(u.name))} for u in users])
    else:
        for u in users:
            say(f"{u.name}\t{u.role}{'  (disabled)' if u.disabled else ''}")


def exhibit_clock(case: CaseOpt, exhibit: ExhibitOpt,
                  camera_time: Annotated[str, typer.Option("--camera-time", help="What the camera showed.")],
                  reference_time: Annotated[str, typer.Option("--reference-time", help="Reference clock, same "
                                                                                       "instant.")],
                  note: Annotated[str, typer.Option(help="How the check was made.")] = "",
                  json_out: JsonOpt = False) -> None:
    """Record the camera clock against a reference clock; displayed times apply the offset."""
    from pipeline.mediainfo import CLOCK_ACTION, clock_parameters

    ev = _evidence()
    c, e = ev.get(case, exhibit)
    params = clock_parameters(camera_time, reference_time, note)
    event = ev.record(c, e, CLOCK_ACTION, actor=_actor(ev), parameters=params)
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "event_seq": event["seq"], **params})
    else:
        say(f"camera clock offset {params['offset_ms'] / 1000:+.3f} s recorded (event #{event['seq']})")


def exhibit_metadata_cmd(case: CaseOpt, exhibit: ExhibitOpt, json_out: JsonOpt = False) -> None:
    """Extracted metadata of an exhibit's originals; camera times also shown corrected by the clock offset."""
    from pipeline.upload import exhibit_metadata

    ev = _evidence()
    _c, e = ev.get(case, exhibit)
    md = exhibit_metadata(ev, e)
    if json_out:
        emit_json(md)
        return
    if md["clock_offset_ms"] is not None:
        say(f"camera clock offset {md['clock_offset_ms'] / 1000:+.3f} s (corrected times are on the reference clock)")
    for item in md["items"]:
        m = item["metadata"]
        say(f"{item['status']:20} {item['kind']:6} sha256 {(item['source'] or {}).get('sha256', '')[:16]}…")
        for k in sorted(m):
            say(f"    {k}: {m[k]}")


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
    exhibit_app.command("clock")(exhibit_clock)
    exhibit_app.command("metadata")(exhibit_metadata_cmd)

"""`custody stack up|down|status`: the embedded services for one CUSTODY_HOME."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.output import emit_json, say
from pipeline.secrets import embedded_credentials
from pipeline.settings import load_settings
from pipeline.stack import read_state, start_s3, stop_s3
from pipeline.store import EvidenceStore

app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the embedded stack.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _status(settings) -> dict:  # type: ignore[no-untyped-def]
    from pipeline.orchestration import prefect_api_url

    info: dict = {"home": str(settings.home), "embedded": settings.embedded, "buckets": settings.buckets,
                  "prefect_api_url": settings.prefect_api_url or prefect_api_url(settings)}
    if settings.embedded:
        state = read_state(settings)
        info["running"] = bool(state)
        info["endpoint"] = f"http://{state.endpoint}" if state else None
        info["pid"] = state.pid if state else None
        access, secret = embedded_credentials(settings.secrets_dir)
        info["access_key"], info["secret_key"] = access, secret
    else:
        info["running"] = True
        info["endpoint"] = settings.s3_endpoint
        info["access_key"] = settings.s3_access_key.get_secret_value() if settings.s3_access_key else None
        info["secret_key"] = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
    return info


@app.command()
def up(prefect: Annotated[bool, typer.Option("--prefect", help="Also start a Prefect server for flows.")] = False,
       json_out: JsonOpt = False) -> None:
    """Start the embedded S3 server (or check the external endpoint) and create buckets."""
    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.embedded:
        state = start_s3(settings)
        say(f"S3 (SeaweedFS) running at http://{state.endpoint} (pid {state.pid})")
    store = EvidenceStore.connect(settings)
    for w in store.warnings:
        say(f"[yellow]{w}[/]")
    if prefect:
        from pipeline.orchestration import start_prefect

        say("starting Prefect server (about 20 s)...")
        say(f"Prefect API at {start_prefect(settings)}")
    info = _status(settings)
    info["object_lock"] = store.lock_supported
    if json_out:
        emit_json(info)
    else:
        say(f"buckets: {', '.join(settings.buckets.values())}; object lock: {store.lock_supported}")


@app.command()
def down(json_out: JsonOpt = False) -> None:
    """Stop the embedded services of this CUSTODY_HOME (data is kept)."""
    from pipeline.orchestration import stop_prefect

    settings = load_settings()
    stop_prefect(settings)
    stopped = stop_s3(settings) if settings.embedded else False
    if json_out:
        emit_json({"stopped": stopped})
    else:
        say("stopped" if stopped else "nothing was running")


@app.command()
def status(json_out: JsonOpt = False) -> None:
    """Endpoint, credentials and buckets; exit 3 when the store is not running."""
    settings = load_settings()
    info = _status(settings)
    if json_out:
        emit_json(info)
    else:
        secret = "****" if info.get("secret_key") else None
        say(f"home: {info['home']}\nrunning: {info['running']}\nendpoint: {info['endpoint']}\n"
            f"access key: {info.get('access_key')}\nsecret key: {secret} (use --json to reveal)\n"
            f"buckets: {', '.join(info['buckets'].values())}")
    if not info["running"]:
        raise typer.Exit(3)

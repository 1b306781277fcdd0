"""`custody stack up|down|status`: the embedded services for one CUSTODY_HOME."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.output import emit_json, say
from pipeline.errors import InfrastructureError, UsageError
from pipeline.ops.stack import read_state, start_s3, start_tsa, stop_s3, stop_tsa, tsa_status
from pipeline.secrets import embedded_credentials
from pipeline.settings import load_settings
from pipeline.storage.store import EvidenceStore

app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the embedded stack.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _status(settings) -> dict:  # type: ignore[no-untyped-def]
    from pipeline.capture import emulator_status
    from pipeline.ops.prefect import prefect_api_url

    info: dict = {"home": str(settings.home), "embedded": settings.embedded, "buckets": settings.buckets,
                  "prefect_api_url": settings.prefect_api_url or prefect_api_url(settings),
                  "cameras": emulator_status(settings.home / "emulator"), "tsa": tsa_status(settings)}
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
       cameras: Annotated[int, typer.Option("--cameras", help="Also start N emulated RTSP cameras cam1..camN.")] = 0,
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
    if not settings.tsa_urls:
        tsa = start_tsa(settings)
        say(f"local time-stamp authority at {tsa['url']} (CA {tsa['ca']}; give that CA to verifiers)")
    if cameras:
        from pipeline.capture import EmulatorError, emulator_status, start_emulator

        try:
            start_emulator(settings.home / "emulator", cameras)
        except EmulatorError as exc:
            raise InfrastructureError(f"camera emulator: {exc}") from None
        for name, url in emulator_status(settings.home / "emulator").get("urls", {}).items():
            say(f"camera {name}: {url}")
    if prefect:
        from pipeline.ops.prefect import start_prefect

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
    from pipeline.capture import stop_emulator
    from pipeline.ops.prefect import stop_prefect

    settings = load_settings()
    stop_emulator(settings.home / "emulator")
    stop_prefect(settings)
    stop_tsa(settings)
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
            f"buckets: {', '.join(info['buckets'].values())}\n"
            f"time-stamp authorities: {', '.join(info['tsa']['urls']) or '(none)'}; trusted TSA roots: "
            f"{', '.join(info['tsa']['roots']) or '(none)'}")
    if not info["running"]:
        raise typer.Exit(3)


@app.command()
def camera(name: Annotated[str, typer.Argument(help="Emulated camera, e.g. cam1.")],
           stop: Annotated[bool, typer.Option("--stop", help="Drop the stream (clients see it end).")] = False,
           start: Annotated[bool, typer.Option("--start", help="Serve it again.")] = False,
           stall: Annotated[bool, typer.Option("--stall", help="Keep connections open, send nothing.")] = False,
           json_out: JsonOpt = False) -> None:
    """Drive faults on an emulated camera, for drills and tests."""
    from pipeline.capture import EmulatorError, EmulatorNotRunning, control_camera

    chosen = [a for a, on in (("stop", stop), ("start", start), ("stall", stall)) if on]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --stop, --start, --stall")
    settings = load_settings()
    try:
        res = control_camera(settings.home / "emulator", name, chosen[0])  # type: ignore[arg-type]
    except EmulatorNotRunning:
        raise InfrastructureError("no camera emulator running; start it with `custody stack up --cameras N`") from None
    except EmulatorError as exc:
        raise UsageError(str(exc)) from None
    if json_out:
        emit_json(res)
    else:
        say(f"{name}: {chosen[0]}")

"""`custody stack up|down|status`: the embedded services for one CUSTODY_HOME."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.output import emit_json, say, say_styled
from pipeline.errors import UsageError
from pipeline.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the embedded stack.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _status(settings, show_secrets: bool = False) -> dict:  # type: ignore[no-untyped-def]
    """What is running where; the S3 secret key only with `show_secrets` (it unlocks every piece of evidence)."""
    from pipeline.capture import emulator_status
    from pipeline.cli import command_control
    from pipeline.ops.prefect import prefect_api_url, ui_url
    from pipeline.ops.stack import read_state, tsa_status
    from pipeline.secrets import embedded_credentials

    api = settings.prefect_api_url or prefect_api_url(settings)
    info: dict = {"home": str(settings.home), "embedded": settings.embedded, "buckets": settings.buckets,
                  "prefect_api_url": api, "prefect_ui_url": ui_url(api) if api else None,
                  "cameras": emulator_status(settings.home / "emulator"), "tsa": tsa_status(settings),
                  "command_server": command_control.status(settings.stack_dir)}
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
    if not show_secrets:
        from pipeline.access.redact import redact_text

        info["secret_key"] = None
        info["secret_key_hidden"] = True
        info["endpoint"] = redact_text(info["endpoint"]) if info.get("endpoint") else info.get("endpoint")
    return info


def _start_command_server(settings) -> None:  # type: ignore[no-untyped-def]
    """The warm command server (a warning, not a failure, if it cannot start: commands then run on their own)."""
    from pipeline.cli import command_control

    if not settings.command_server:
        command_control.stop(settings.stack_dir)
        return
    try:
        st = command_control.start(settings.stack_dir)
    except command_control.CommandServerError as exc:
        say_styled("[yellow]{}[/]", str(exc))
        return
    say(f"command server ready (pid {st['pid']}): commands start without importing")


@app.command()
def up(prefect: Annotated[bool, typer.Option("--prefect/--no-prefect",
                                              help="Start this home's Prefect server (flows, schedules, UI).")] = True,
       cameras: Annotated[int, typer.Option("--cameras", help="Also start N emulated RTSP cameras cam1..camN.")] = 0,
       json_out: JsonOpt = False) -> None:
    """Start the embedded S3 server (or check the external endpoint), Prefect, and create buckets."""
    from pipeline.ops.stack import start_s3
    from pipeline.storage.store import EvidenceStore

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    starting = None
    if prefect and not settings.prefect_api_url:  # a configured external server is not ours to start
        from pipeline.ops.prefect import spawn_prefect

        starting = spawn_prefect(settings)  # 10-25 s to answer: it starts while the rest comes up
    if settings.embedded:
        state = start_s3(settings)
        say(f"S3 (SeaweedFS) running at http://{state.endpoint} (pid {state.pid})")
    store = EvidenceStore.connect(settings)
    for w in store.warnings:
        say_styled("[yellow]{}[/]", w)
    if not settings.tsa_urls:
        from pipeline.ops.stack import start_tsa

        tsa = start_tsa(settings)
        say(f"local time-stamp authority at {tsa['url']} (CA {tsa['ca']}; give that CA to verifiers)")
    if cameras:
        from pipeline.capture import emulator_status, start_emulator

        start_emulator(settings.home / "emulator", cameras)  # EmulatorError carries its own exit code
        for name, url in emulator_status(settings.home / "emulator").get("urls", {}).items():
            say(f"camera {name}: {url}")
    _start_command_server(settings)
    if starting is not None:
        from pipeline.ops.prefect import ui_url, wait_prefect

        if starting.proc is not None:
            say("starting Prefect server (10-25 s; `--no-prefect` to skip)...")
        url = wait_prefect(settings, starting)
        say(f"Prefect API at {url}, UI at {ui_url(url)}")
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
    from pipeline.cli import command_control
    from pipeline.ops.prefect import stop_prefect
    from pipeline.ops.stack import stop_s3, stop_tsa

    settings = load_settings()
    command_control.stop(settings.stack_dir)
    stop_emulator(settings.home / "emulator")
    stop_prefect(settings)
    stop_tsa(settings)
    stopped = stop_s3(settings) if settings.embedded else False
    if json_out:
        emit_json({"stopped": stopped})
    else:
        say("stopped" if stopped else "nothing was running")


@app.command()
def status(json_out: JsonOpt = False,
           show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Include the S3 secret key (it "
                                                      "unlocks all evidence: keep it off screens and logs).")]
           = False) -> None:
    """Endpoint, access key and buckets (the secret key only with --show-secrets); exit 3 when not running."""
    settings = load_settings()
    info = _status(settings, show_secrets)
    if json_out:
        emit_json(info)
    else:
        secret = info["secret_key"] if show_secrets else "(hidden; --show-secrets to print it)"
        say(f"home: {info['home']}\nrunning: {info['running']}\nendpoint: {info['endpoint']}\n"
            f"access key: {info.get('access_key')}\nsecret key: {secret}\n"
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
    from pipeline.capture import control_camera

    chosen = [a for a, on in (("stop", stop), ("start", start), ("stall", stall)) if on]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --stop, --start, --stall")
    settings = load_settings()
    # EmulatorError and its kinds carry their exit codes: unknown camera 2, emulator down or failing 3
    res = control_camera(settings.home / "emulator", name, chosen[0])  # type: ignore[arg-type]
    if json_out:
        emit_json(res)
    else:
        say(f"{name}: {chosen[0]}")

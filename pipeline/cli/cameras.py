"""`custody cameras run|serve|status`: one-off and scheduled camera recording, and what the cameras are doing.

Recording never waits for the orchestrator: ffmpeg starts first, then Prefect is imported and the run reported
as a `camera_ingest` flow run (flows/reporter.py).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.output import emit_json, err, say
from pipeline.durations import parse_duration
from pipeline.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Record covert cameras as evidence.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
InventoryOpt = Annotated[Path | None, typer.Option(help="Camera inventory YAML (default: $CUSTODY_HOME/cameras.yaml).")]


def _log_to_stderr(level: int) -> None:
    """The project's own log lines on stderr (Prefect configures its loggers separately)."""
    logger = logging.getLogger("pipeline")
    if not any(getattr(h, "_custody", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        handler._custody = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    for name in ("pipeline", "flows"):
        logging.getLogger(name).setLevel(level)
    flows = logging.getLogger("flows")
    flows.handlers = logger.handlers
    logger.propagate = flows.propagate = False


@app.command()
def run(camera: Annotated[str, typer.Option("--camera", help="Camera id (inventory or emulator).")],
        duration: Annotated[str, typer.Option(help="How long to record, e.g. 30s, 10m.")] = "30s",
        case: Annotated[str, typer.Option("--case", help="Case reference (default: the inventory's).")] = "",
        segment: Annotated[str, typer.Option(help="Segment length.")] = "10s",
        stall_timeout: Annotated[str, typer.Option(help="No data for this long = drop-out.")] = "10s",
        inventory: InventoryOpt = None,
        url: Annotated[str | None, typer.Option(help="RTSP URL (no password in it).")] = None,
        no_prefect: Annotated[bool, typer.Option("--no-prefect", help="Do not report the run to Prefect.")] = False,
        json_out: JsonOpt = False) -> None:
    """Record one camera window now; reported to this home's Prefect server as a `camera_ingest` flow run."""
    from pipeline.capture.plan import resolve_camera, start_run

    settings = load_settings()
    dur, seg, stall = parse_duration(duration), parse_duration(segment), parse_duration(stall_timeout)
    _log_to_stderr(logging.WARNING)
    plan = resolve_camera(settings, camera, inventory, url)
    rec = start_run(settings, plan, case_ref=case, duration=dur, segment_seconds=seg, stall_timeout=stall)
    try:
        rec.launched.wait(5.0)  # ffmpeg first: importing Prefect meanwhile would only slow its start (GIL)
        if not no_prefect:
            from flows.reporter import PrefectReporter

            reporter = PrefectReporter(settings, start_server=False)
            reporter.connect()  # says so (a warning) if there is no server: the recording goes on unreported
            if not reporter.failed:
                reporter.report(rec, name=f"{camera}-{rec.began:%Y%m%dT%H%M%SZ}",
                                inventory=str(inventory) if inventory else None, url=url, segment_seconds=seg,
                                stall_timeout=stall, wait=True)
        report = rec.wait().as_dict()
    except KeyboardInterrupt:
        say("stopping: closing the last segment and storing what was recorded...")
        rec.stop()
        report = rec.wait().as_dict()
    if json_out:
        emit_json(report)
    else:
        say(f"{report['camera']} → {report['case']} {report['exhibit']}: {report['segments_stored']} segments stored, "
            f"{len(report['gaps'])} gap(s), {report['pending']} pending in the spool")
    if report["pending"] or report["errors"]:
        raise typer.Exit(1)


@app.command()
def serve(inventory: Annotated[Path, typer.Option(help="Camera inventory YAML with recording windows.")],
          limit: Annotated[int, typer.Option(help="Concurrent camera recordings at most.")] = 64,
          no_prefect: Annotated[bool, typer.Option("--no-prefect", help="Do not report runs to Prefect.")] = False,
          ) -> None:
    """Record every camera window on its cron schedule, catching up on windows under way; runs until stopped.

    Reports each run to Prefect (starting this home's server if none is running); the recordings never wait
    for it. SIGTERM or Ctrl-C stops the recordings cleanly: last segments closed, stored, coverage written."""
    from pipeline.capture import load_inventory
    from pipeline.capture.command import ffmpeg_version
    from pipeline.capture.scheduler import Scheduler
    from pipeline.errors import UsageError

    settings = load_settings()
    inv = load_inventory(inventory)  # a bad file exits 2 naming the line, before anything starts
    cams = [c for c in inv.cameras if c.windows]
    if not cams:
        raise UsageError(f"{inventory}: no camera has recording windows; nothing to serve")
    for cam in cams:
        cam.resolved_url()  # a credential variable not set: exit 2 now, not at 22:00
    ffmpeg_version()  # FfmpegNotFound now; and cached, so no window pays for it
    reporter = None
    if not no_prefect:
        from flows.reporter import PrefectReporter, check_configured_server

        check_configured_server(settings)
        reporter = PrefectReporter(settings, start_server=True)
    _log_to_stderr(logging.INFO)

    def report(run: Any, cam: Any) -> None:
        if reporter is not None:
            reporter.report(run, name=f"{cam.id}-{run.window_start:%Y%m%dT%H%M%SZ}", inventory=str(inventory.resolve()),
                            segment_seconds=cam.segment_seconds, stall_timeout=cam.stall_timeout)

    sched = Scheduler(settings, inv, report=report, limit=limit)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    n = sum(len(c.windows) for c in cams)
    say(f"serving {n} recording window(s) of {len(cams)} camera(s); SIGTERM or Ctrl-C to stop")
    sched.start()  # catch-up recordings begin here, before Prefect is even imported
    if reporter is not None:
        reporter.connect(background=True)
    sched.run(stop)
    say(f"stopped: {len(sched.finished)} run(s) finished")
    if reporter is not None:
        reporter.join()


@app.command()
def status(inventory: InventoryOpt = None, json_out: JsonOpt = False) -> None:
    """Per camera: recording now or not, last segment stored, next window, gaps in the last 24 h."""
    from pipeline.capture import load_inventory
    from pipeline.capture.status import camera_status

    settings = load_settings()
    path = inventory or settings.home / "cameras.yaml"
    inv = load_inventory(path) if inventory or path.exists() else None
    rows = camera_status(settings, inv)
    if json_out:
        emit_json(rows)
        return
    from rich.table import Table

    def short(value: str | None) -> str:
        return value.replace("T", " ")[:19] if value else "-"

    table = Table(title="cameras (times UTC)")
    for col in ("camera", "case", "recording", "last segment stored", "next window", "gaps 24 h"):
        table.add_column(col)
    for r in rows:
        nxt = r["next_window"]
        table.add_row(r["camera"], r["case"] or "-", f"yes, since {short(r['recording_since'])}" if r["recording"]
                      else "no", short(r["last_segment_end"]),
                      (("under way: " if nxt["under_way"] else "") + f"{nxt['label']} ({nxt['start'][:10]})")
                      if nxt else "none scheduled",
                      f"{r['gaps_24h']} ({r['gap_seconds_24h']:g} s)" if r["gaps_24h"] else "none")
    err.print(table)

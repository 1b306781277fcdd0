"""`custody cameras run|serve`: scheduled and one-off camera recording."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.output import emit_json, say
from pipeline.durations import parse_duration
from pipeline.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Record covert cameras as evidence.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@app.command()
def run(camera: Annotated[str, typer.Option("--camera", help="Camera id (inventory or emulator).")],
        duration: Annotated[str, typer.Option(help="How long to record, e.g. 30s, 10m.")] = "30s",
        case: Annotated[str, typer.Option("--case", help="Case reference (default: the inventory's).")] = "",
        segment: Annotated[str, typer.Option(help="Segment length.")] = "10s",
        stall_timeout: Annotated[str, typer.Option(help="No data for this long = drop-out.")] = "10s",
        inventory: Annotated[Path | None, typer.Option(help="Camera inventory YAML.")] = None,
        url: Annotated[str | None, typer.Option(help="RTSP URL (no password in it).")] = None,
        no_prefect: Annotated[bool, typer.Option("--no-prefect", help="Run in-process, without Prefect.")] = False,
        json_out: JsonOpt = False) -> None:
    """Record one camera window now, as the `camera_ingest` flow."""
    settings = load_settings()
    dur, seg, stall = parse_duration(duration), parse_duration(segment), parse_duration(stall_timeout)
    inv = str(inventory) if inventory else None
    if no_prefect:
        from flows.camera_ingest import record_window

        report = record_window.fn(camera, case, dur, seg, stall, inv, url)
    else:
        from pipeline.ops.prefect import apply_prefect_env

        apply_prefect_env(settings)
        if "PREFECT_API_URL" not in os.environ:
            say("no Prefect server for this home: using an ephemeral one (start one with `custody stack up --prefect`)")
        from flows.camera_ingest import camera_ingest

        report = camera_ingest(camera, case, dur, seg, stall, inv, url)
    if json_out:
        emit_json(report)
    else:
        say(f"{report['camera']} → {report['case']} {report['exhibit']}: {report['segments_stored']} segments stored, "
            f"{len(report['gaps'])} gap(s), {report['pending']} pending in the spool")
    if report["pending"] or report["errors"]:
        raise typer.Exit(1)


@app.command()
def serve(inventory: Annotated[Path, typer.Option(help="Camera inventory YAML with recording windows.")],
          limit: Annotated[int, typer.Option(help="Concurrent camera recordings at most.")] = 8) -> None:
    """Serve one Prefect deployment per camera window, on its cron schedule."""
    from pipeline.capture import load_inventory
    from pipeline.ops.prefect import apply_prefect_env

    settings = load_settings()
    apply_prefect_env(settings)
    inv = load_inventory(inventory)
    from prefect import serve as prefect_serve

    from flows.camera_ingest import camera_ingest

    deployments = []
    for cam in inv.cameras:
        for i, w in enumerate(cam.windows):
            deployments.append(camera_ingest.to_deployment(
                name=f"{cam.id}-window{i}", cron=w.cron,
                parameters={"camera_id": cam.id, "case_ref": cam.case_ref, "duration": w.duration,
                            "segment_seconds": cam.segment_seconds, "stall_timeout": cam.stall_timeout,
                            "inventory": str(inventory.resolve())},
                tags=["camera", cam.id]))
    if not deployments:
        raise typer.BadParameter("the inventory has no recording windows")
    say(f"serving {len(deployments)} camera deployment(s), at most {limit} at once")
    prefect_serve(*deployments, limit=limit)

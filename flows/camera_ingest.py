"""Flow `camera_ingest`: record one camera window as evidence.

1. Resolve the camera (inventory entry, credentials from the environment).
2. Record its stream without re-encoding into spooled segments, each hashed
   when it closes; drain them into the store as they close, each with a
   `segment_recorded` custody event; record every outage as a `gap` event and
   what the window covered as `coverage` events.
3. Optionally extract stills from what was recorded (`extract_frames`).

Run by a Prefect worker (a deployment), the flow records itself. `custody cameras run` and `cameras serve`
start the recording first and then run this flow with `recording=<run id>`: it attaches to that recording
instead of starting another, so the orchestrator's start-up never delays ffmpeg (see `report_run`).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger, tags, task

from pipeline.capture.command import redact_url
from pipeline.capture.ingest import IngestRun, get_run
from pipeline.capture.plan import resolve_camera as _resolve
from pipeline.capture.plan import start_run
from pipeline.errors import UsageError
from pipeline.settings import load_settings

log = logging.getLogger(__name__)


def resolve_camera(camera_id: str, inventory: str | None, url: str | None) -> dict[str, Any]:
    """Camera settings from the inventory, an explicit URL, or the local emulator."""
    return _resolve(load_settings(), camera_id, inventory, url).as_dict()


@task(name="record-camera-window")
def record_window(camera_id: str, case_ref: str, duration: float, segment_seconds: float, stall_timeout: float,
                  inventory: str | None, url: str | None, recording: str | None = None) -> dict[str, Any]:
    if recording:
        run = get_run(recording)
        if run is None:
            raise UsageError(f"recording {recording} is not running in this process; a retried flow run must "
                             "not record again (start a new run)")
        return run.wait().as_dict()
    settings = load_settings()
    plan = _resolve(settings, camera_id, inventory, url)
    run = start_run(settings, plan, case_ref=case_ref, duration=duration, segment_seconds=segment_seconds,
                    stall_timeout=stall_timeout)
    return run.wait().as_dict()


@flow(name="camera_ingest", log_prints=True)
def camera_ingest(camera_id: str, case_ref: str = "", duration: float = 60.0, segment_seconds: float = 10.0,
                  stall_timeout: float = 10.0, inventory: str | None = None, url: str | None = None,
                  extract_every: float | None = None, recording: str | None = None) -> dict[str, Any]:
    """One recording window of one camera (`recording`: attach to one already started in this process)."""
    logger = get_run_logger()
    report = record_window(camera_id, case_ref, duration, segment_seconds, stall_timeout, inventory, url, recording)
    logger.info("camera %s: %d segments stored, %d gaps, %d pending, ffmpeg started %s", camera_id,
                report["segments_stored"], len(report["gaps"]), report["pending"], report["ffmpeg_started"])
    if extract_every:
        from flows.extract_frames import extract_frames_flow

        extract_frames_flow(report["case"], report["exhibit"], {"every_seconds": extract_every,
                                                               "name_prefix": report["exhibit"]})
    return report


def report_run(run: IngestRun, *, name: str, inventory: str | None = None, url: str | None = None,
               duration: float | None = None, segment_seconds: float = 10.0, stall_timeout: float = 10.0) -> bool:
    """Run the flow for an already-recording `run` (blocks until it ends). False if Prefect failed: the
    recording is unaffected and its custody record complete either way."""
    dur = duration if duration is not None else ((run.end - run.began).total_seconds() if run.end else 0.0)
    try:
        with tags("camera", run.camera):
            camera_ingest.with_options(flow_run_name=name)(
                run.camera, run.case_ref, dur, segment_seconds, stall_timeout, inventory,
                redact_url(url) if url else None, None, run.id)
        return True
    except Exception as exc:  # noqa: BLE001 - the orchestrator failing must never touch the recording
        log.warning("%s: not reported to Prefect (%s: %s); the recording goes on", run.camera,
                    type(exc).__name__, exc)
        return False

"""Flow `camera_ingest`: record one camera window as evidence.

1. Resolve the camera (inventory entry, credentials from the environment).
2. Record its stream without re-encoding into spooled segments, each hashed
   when it closes; drain them into the store as they close, each with a
   `segment_recorded` custody event; record every outage as a `gap` event.
3. Optionally extract stills from what was recorded (`extract_frames`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from pipeline.capture.ingest import ingest_camera
from pipeline.settings import load_settings


def resolve_camera(camera_id: str, inventory: str | None, url: str | None) -> dict[str, Any]:
    """Camera settings from the inventory, an explicit URL, or the local emulator."""
    settings = load_settings()
    inv_path = Path(inventory) if inventory else settings.home / "cameras.yaml"
    if url:
        return {"url": url, "exhibit_prefix": camera_id.upper(), "segment_seconds": None, "stall_timeout": None}
    if inventory or inv_path.exists():
        from pipeline.capture import load_inventory

        cam = load_inventory(inv_path).camera(camera_id)
        return {"url": cam.resolved_url(), "exhibit_prefix": cam.exhibit_prefix, "case_ref": cam.case_ref,
                "segment_seconds": cam.segment_seconds, "stall_timeout": cam.stall_timeout}
    from pipeline.capture import emulator_status
    from pipeline.errors import UsageError

    st = emulator_status(settings.home / "emulator")
    if st.get("running") and camera_id in st.get("urls", {}):
        return {"url": st["urls"][camera_id], "exhibit_prefix": camera_id.upper(), "segment_seconds": None,
                "stall_timeout": None}
    raise UsageError(f"camera {camera_id!r} is not in {inv_path} and no emulated camera has that name "
                     "(`custody stack up --cameras N`, or pass --inventory / --url)")


@task(name="record-camera-window")
def record_window(camera_id: str, case_ref: str, duration: float, segment_seconds: float, stall_timeout: float,
                  inventory: str | None, url: str | None) -> dict[str, Any]:
    cam = resolve_camera(camera_id, inventory, url)
    report = ingest_camera(load_settings(), camera=camera_id, url=cam["url"], case_ref=case_ref or cam["case_ref"],
                           exhibit_prefix=cam["exhibit_prefix"], duration=duration,
                           segment_seconds=cam["segment_seconds"] or segment_seconds,
                           stall_timeout=cam["stall_timeout"] or stall_timeout)
    return report.as_dict()


@flow(name="camera_ingest", log_prints=True)
def camera_ingest(camera_id: str, case_ref: str = "", duration: float = 60.0, segment_seconds: float = 10.0,
                  stall_timeout: float = 10.0, inventory: str | None = None, url: str | None = None,
                  extract_every: float | None = None) -> dict[str, Any]:
    """One recording window of one camera."""
    logger = get_run_logger()
    report = record_window(camera_id, case_ref, duration, segment_seconds, stall_timeout, inventory, url)
    logger.info("camera %s: %d segments stored, %d gaps, %d pending", camera_id, report["segments_stored"],
                len(report["gaps"]), report["pending"])
    if extract_every:
        from flows.extract_frames import extract_frames_flow

        extract_frames_flow(report["case"], report["exhibit"], {"every_seconds": extract_every,
                                                               "name_prefix": report["exhibit"]})
    return report

"""Which camera to record and how: from the inventory, an explicit URL, or the home's emulator.

Prefect-free on purpose: `custody cameras run` resolves the camera and starts ffmpeg before Prefect is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.settings import Settings

from .ingest import IngestRun
from .inventory import Camera, RecordingWindow, load_inventory


@dataclass
class CameraPlan:
    camera: str
    url: str  # may carry credentials from the environment: never log or store it
    exhibit_prefix: str
    case_ref: str | None = None
    segment_seconds: float | None = None
    stall_timeout: float | None = None
    camera_clock: bool = True
    windows: list[RecordingWindow] = field(default_factory=list)

    @classmethod
    def from_inventory(cls, cam: Camera) -> CameraPlan:
        return cls(cam.id, cam.resolved_url(), cam.exhibit_prefix, cam.case_ref, cam.segment_seconds,
                   cam.stall_timeout, cam.camera_clock, list(cam.windows))

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "exhibit_prefix": self.exhibit_prefix, "case_ref": self.case_ref,
                "segment_seconds": self.segment_seconds, "stall_timeout": self.stall_timeout,
                "camera_clock": self.camera_clock}


def resolve_camera(settings: Settings, camera_id: str, inventory: str | Path | None, url: str | None) -> CameraPlan:
    """Camera settings from the inventory, an explicit URL, or the local emulator."""
    inv_path = Path(inventory) if inventory else settings.home / "cameras.yaml"
    if url:
        return CameraPlan(camera_id, url, camera_id.upper())
    if inventory or inv_path.exists():
        return CameraPlan.from_inventory(load_inventory(inv_path).camera(camera_id))
    from .emulator_control import emulator_status

    st = emulator_status(settings.home / "emulator")
    if st.get("running") and camera_id in st.get("urls", {}):
        return CameraPlan(camera_id, st["urls"][camera_id], camera_id.upper())
    raise UsageError(f"camera {camera_id!r} is not in {inv_path} and no emulated camera has that name "
                     "(`custody stack up --cameras N`, or pass --inventory / --url)")


def start_run(settings: Settings, plan: CameraPlan, *, case_ref: str = "", duration: float | None = None,
              segment_seconds: float = 10.0, stall_timeout: float = 10.0,
              window: tuple[datetime, datetime] | None = None, drain_interval: float = 1.0) -> IngestRun:
    """Start recording now (the inventory's segment length and stall timeout win over the defaults given)."""
    case = case_ref or plan.case_ref
    if not case:
        raise UsageError(f"camera {plan.camera!r} has no case in an inventory: pass --case")
    return IngestRun(settings, camera=plan.camera, url=plan.url, case_ref=case, exhibit_prefix=plan.exhibit_prefix,
                     duration=duration, segment_seconds=plan.segment_seconds or segment_seconds,
                     stall_timeout=plan.stall_timeout or stall_timeout, camera_clock=plan.camera_clock,
                     window=window, schedule=plan.windows, drain_interval=drain_interval).start()

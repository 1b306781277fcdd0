"""Live capture: camera recorder, durable spool, camera inventory, camera sources and the emulator's controls."""

from __future__ import annotations

from .backoff import Backoff
from .command import FfmpegNotFound
from .emulator_control import (
    EmulatorError,
    EmulatorInfo,
    EmulatorNotRunning,
    EmulatorUsageError,
    UnknownEmulatorCamera,
    camera_url,
    control_camera,
    emulator_status,
    start_emulator,
    stop_emulator,
)
from .errors import RecorderError, SourceError
from .inventory import Camera, Inventory, InventoryError, MissingCredential, load_inventory, parse_inventory
from .models import DropoutInfo, GapInfo, RecordingSummary, SegmentInfo
from .recorder import record
from .rtcp import CameraClock, ClockUnavailable, measure_camera_clock
from .segments import sha256_file
from .sources import CameraSource, register, source_for
from .spool import DrainResult, Spool, SpoolBusy, SpoolError, SpoolIntegrityError, SpoolItem, UploadReceipt

__all__ = [
    "Backoff", "Camera", "CameraClock", "CameraSource", "ClockUnavailable", "DrainResult", "DropoutInfo",
    "EmulatorError", "EmulatorInfo", "EmulatorNotRunning", "EmulatorUsageError", "FfmpegNotFound", "GapInfo",
    "Inventory", "InventoryError", "MissingCredential", "RecorderError", "RecordingSummary", "SegmentInfo",
    "SourceError", "Spool", "SpoolBusy", "SpoolError", "SpoolIntegrityError", "SpoolItem", "UnknownEmulatorCamera",
    "UploadReceipt", "camera_url", "control_camera", "emulator_status", "load_inventory", "measure_camera_clock",
    "parse_inventory", "record", "register", "sha256_file", "source_for", "start_emulator", "stop_emulator",
]

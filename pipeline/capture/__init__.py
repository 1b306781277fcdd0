"""Live capture: RTSP recorder, durable spool, camera inventory and the test camera emulator's controls."""

from __future__ import annotations

from .emulator_control import (
    EmulatorError,
    EmulatorInfo,
    EmulatorNotRunning,
    camera_url,
    control_camera,
    emulator_status,
    start_emulator,
    stop_emulator,
)
from .inventory import Camera, Inventory, InventoryError, MissingCredential, load_inventory, parse_inventory
from .models import DropoutInfo, GapInfo, RecordingSummary, SegmentInfo
from .recorder import RecorderError, record
from .segments import sha256_file
from .spool import DrainResult, Spool, SpoolBusy, SpoolError, SpoolIntegrityError, SpoolItem, UploadReceipt

__all__ = [
    "DrainResult", "DropoutInfo", "EmulatorError", "EmulatorInfo", "EmulatorNotRunning", "GapInfo",
    "Camera", "Inventory", "InventoryError", "MissingCredential", "load_inventory", "parse_inventory",
    "RecorderError", "RecordingSummary", "SegmentInfo", "Spool", "SpoolBusy", "SpoolError", "SpoolIntegrityError",
    "SpoolItem", "UploadReceipt", "camera_url", "control_camera", "emulator_status", "record", "sha256_file",
    "start_emulator", "stop_emulator",
]

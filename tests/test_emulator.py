"""The RTSP camera emulator: real GstRtspServer, steered over its loopback control channel."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.capture.emulator_control import (
    EmulatorError,
    EmulatorNotRunning,
    camera_url,
    control_camera,
    emulator_status,
    start_emulator,
    stop_emulator,
)


def ffprobe(url: str, timeout: float = 20) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
                          "stream=codec_name,width,height", "-of", "json", url],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def emulator(tmp_path: Path):
    info = start_emulator(tmp_path / "emu", cameras=2)
    yield info
    stop_emulator(tmp_path / "emu")


def test_two_cameras_serve_h264(emulator) -> None:
    for name in ("cam1", "cam2"):
        streams = ffprobe(camera_url(emulator, name))["streams"]
        assert streams == [{"codec_name": "h264", "width": 640, "height": 360}]


def test_control_stop_start_stall(emulator, tmp_path: Path) -> None:
    state = tmp_path / "emu"
    assert emulator_status(state)["cameras"] == {"cam1": "running", "cam2": "running"}
    assert control_camera(state, "cam1", "stop")["state"] == "stopped"
    refused = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", camera_url(emulator, "cam1")],
                             capture_output=True, text=True, timeout=20)
    assert refused.returncode != 0 and "404" in refused.stderr
    ffprobe(camera_url(emulator, "cam2"))  # the other camera is unaffected
    assert control_camera(state, "cam1", "start")["state"] == "running"
    ffprobe(camera_url(emulator, "cam1"))
    assert control_camera(state, "cam2", "stall")["state"] == "stalled"
    assert emulator_status(state)["cameras"]["cam2"] == "stalled"
    with pytest.raises(EmulatorError, match="no camera 'cam9'"):
        control_camera(state, "cam9", "stop")


def test_start_is_idempotent_and_stop_cleans_up(emulator, tmp_path: Path) -> None:
    state = tmp_path / "emu"
    again = start_emulator(state, cameras=2)
    assert again.pid == emulator.pid and again.rtsp_port == emulator.rtsp_port
    assert stop_emulator(state) is True
    assert emulator_status(state)["running"] is False
    assert stop_emulator(state) is False
    with pytest.raises(EmulatorNotRunning):
        control_camera(state, "cam1", "start")


def test_parallel_emulators_get_distinct_ports(emulator, tmp_path: Path) -> None:
    other = start_emulator(tmp_path / "emu2", cameras=1)
    try:
        assert {other.rtsp_port, other.control_port}.isdisjoint({emulator.rtsp_port, emulator.control_port})
        ffprobe(camera_url(other, "cam1"))
    finally:
        stop_emulator(tmp_path / "emu2")

"""The RTSP camera emulator: real GstRtspServer, steered over its loopback control channel."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
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


def hide_plugin(tmp_path: Path, plugin: str) -> dict[str, str]:
    """GStreamer environment of a machine without one plugin package's library (as a fresh Debian lacks
    gstreamer1.0-x): every system plugin but that one, and a registry of its own."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for so in Path("/usr/lib/x86_64-linux-gnu/gstreamer-1.0").glob("*.so"):
        if so.name != plugin:
            (plugins / so.name).symlink_to(so)
    return {"GST_PLUGIN_SYSTEM_PATH_1_0": str(plugins), "GST_REGISTRY_1_0": str(tmp_path / "registry.bin")}


def test_missing_element_fails_start_naming_it_and_its_package(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in hide_plugin(tmp_path, "libgstpango.so").items():
        monkeypatch.setenv(k, v)
    with pytest.raises(EmulatorError) as err:
        start_emulator(tmp_path / "emu", cameras=1)
    assert "camera cam1: missing GStreamer element clockoverlay (install Debian package gstreamer1.0-x)" \
        in str(err.value)
    assert err.value.exit_code == 3
    assert not (tmp_path / "emu" / "emulator.json").exists()  # never reported ready


def test_broken_launch_line_fails_start_loudly(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match=r"camera cam1: missing GStreamer element nosuchelement \(.*"
                                            r"ELEMENT_PACKAGES"):
        start_emulator(tmp_path / "a", cameras=1, extra_elements=["nosuchelement"])
    # every element exists but the pipeline cannot run: only a real DESCRIBE finds that out
    with pytest.raises(EmulatorError, match=r"not serving: camera cam1: RTSP DESCRIBE answered "
                                            r"'RTSP/1.0 503 Service Unavailable'; pipeline error: "):
        start_emulator(tmp_path / "b", cameras=1, extra_elements=["identity error-after=1"])
    assert emulator_status(tmp_path / "b")["running"] is False


def test_ports_stay_the_same_across_restart_unless_taken(tmp_path: Path) -> None:
    state = tmp_path / "emu"
    first = start_emulator(state, cameras=1)
    stop_emulator(state)
    again = start_emulator(state, cameras=1)
    try:
        assert (again.rtsp_port, again.control_port) == (first.rtsp_port, first.control_port)
    finally:
        stop_emulator(state)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first.rtsp_port))
        squatter.listen()
        moved = start_emulator(state, cameras=1)
        try:
            assert moved.rtsp_port != first.rtsp_port and moved.control_port == first.control_port
            ffprobe(camera_url(moved, "cam1"))
        finally:
            stop_emulator(state)


def test_control_answers_with_the_emulators_own_times(emulator, tmp_path: Path) -> None:
    state = tmp_path / "emu"
    before = time.time()
    stopped = control_camera(state, "cam1", "stop")
    started = control_camera(state, "cam1", "start")
    assert before <= stopped["at"] <= started["at"] <= time.time()
    ffprobe(camera_url(emulator, "cam1"))
    events = emulator_status(state)["events"]["cam1"]
    assert [w for _, w in events][-3:] == ["stop", "start", "play"]
    assert events[-1][0] >= started["at"]


def test_a_second_client_does_not_disturb_the_first(emulator) -> None:
    """A live camera cannot seek: a client joining with PLAY Range: npt=0- must not freeze the others' stream."""
    url = camera_url(emulator, "cam2")
    proc = subprocess.Popen(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
                             "-i", url, "-c", "copy", "-f", "null", "-t", "5", "-progress", "pipe:1",
                             "-stats_period", "0.1", "-"], stdout=subprocess.PIPE, text=True)
    offsets: list[float] = []
    joiner = threading.Thread(target=ffprobe, args=(url,))  # joins the shared media with Range: npt=0.000-
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("out_time_us=") and line.strip() != "out_time_us=N/A" and int(line[12:]) > 0:
            offsets.append(time.time() - int(line[12:]) / 1e6)
            if len(offsets) == 10:
                joiner.start()
    proc.wait(timeout=20)
    joiner.join(timeout=20)
    steady = offsets[5:]
    assert len(steady) > 20 and max(steady) - min(steady) < 1.0, steady  # the seek froze it for ~2 s

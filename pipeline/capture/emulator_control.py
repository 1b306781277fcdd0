"""Start, stop and steer the RTSP camera emulator (`deploy/camera_emulator.py`) from the venv.

The emulator needs GStreamer's Python bindings, which only Debian's /usr/bin/python3 has, so it runs as a
detached child process. It writes `<state_dir>/emulator.json` only once every camera really serves (see the
emulator's readiness check); `start_emulator` waits for that file and a successful control call, so callers
never guess with sleeps. Ports: the state dir's last ports (`ports.json`) are reused while free, so a
cameras.yaml naming the emulator keeps working across stop/start; otherwise free ones are picked, so parallel
homes never clash.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import InfrastructureError, UsageError
from pipeline.ops.ports import port_free
from pipeline.ops.processes import alive as _alive
from pipeline.ops.processes import cmdline_has, forget, track
from pipeline.ops.processes import kill as _kill

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = ROOT / "deploy" / "camera_emulator.py"
SYSTEM_PYTHON = "/usr/bin/python3"
STATE_FILE = "emulator.json"
PORTS_FILE = "ports.json"  # last ports used, kept across stop/start

Action = Literal["stop", "start", "stall"]

class EmulatorError(InfrastructureError):
    """The emulator could not be started or controlled; the message says what to check (exit 3)."""


class EmulatorNotRunning(EmulatorError):
    """No live emulator for this state dir; run start_emulator (custody stack up --cameras N) first."""


class EmulatorUsageError(UsageError, EmulatorError):
    """A bad request to the emulator (exit 2)."""


class UnknownEmulatorCamera(EmulatorUsageError):
    """The emulator serves no camera of that name."""


@dataclass(frozen=True)
class EmulatorInfo:
    pid: int
    rtsp_port: int
    control_port: int
    cameras: tuple[str, ...]
    state_dir: Path
    host: str = "127.0.0.1"


def camera_url(info: EmulatorInfo, name: str) -> str:
    """rtsp://127.0.0.1:<port>/<name>; raises KeyError-like EmulatorError for an unknown camera."""
    if name not in info.cameras:
        raise UnknownEmulatorCamera(f"emulator has no camera {name!r}; it serves {', '.join(info.cameras)}")
    return f"rtsp://{info.host}:{info.rtsp_port}/{name}"


def _is_emulator(pid: int) -> bool:
    """Guard against pid reuse: only signal a process that is really our emulator."""
    return cmdline_has(pid, "camera_emulator.py")


def _read_info(state_dir: Path) -> EmulatorInfo | None:
    try:
        d = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return EmulatorInfo(int(d["pid"]), int(d["rtsp_port"]), int(d["control_port"]), tuple(d["cameras"]),
                        state_dir)


def _http(info: EmulatorInfo, method: str, path: str, timeout: float = 10) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{info.host}:{info.control_port}{path}", method=method, data=b"" if
                                 method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback http only
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        raise EmulatorError(f"emulator control {method} {path} -> HTTP {exc.code}: {body}") from exc
    except OSError as exc:
        raise EmulatorNotRunning(f"emulator control port {info.control_port} not answering ({exc}); "
                                 f"is the emulator in {info.state_dir} running?") from exc


def emulator_status(state_dir: Path) -> dict[str, Any]:
    """{'running': bool, ...ports, 'cameras': {name: running|stalled|stopped}, 'events': {name: [[t, what]]}}.

    Never raises for 'down'. `events` are the emulator's own wall-clock times of stop/stall/start and of each
    client's PLAY, the reference for checking a recorder's gap bounds."""
    info = _read_info(Path(state_dir))
    if info is None or not _alive(info.pid):
        return {"running": False, "state_dir": str(state_dir)}
    try:
        st = _http(info, "GET", "/status", timeout=5)
    except EmulatorError as exc:
        return {"running": False, "pid": info.pid, "error": str(exc), "state_dir": str(state_dir)}
    return {"running": True, "pid": info.pid, "rtsp_port": info.rtsp_port, "control_port": info.control_port,
            "cameras": st["cameras"], "events": st.get("events", {}),
            "urls": {n: camera_url(info, n) for n in info.cameras}, "state_dir": str(state_dir)}


def _last_ports(state_dir: Path) -> tuple[int, int]:
    """The ports this state dir used last time, where still free, so a cameras.yaml naming them keeps working."""
    try:
        d = json.loads((state_dir / PORTS_FILE).read_text())
        ports = int(d.get("rtsp_port", 0)), int(d.get("control_port", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0, 0
    return tuple(p if 0 < p < 65536 and port_free(p) else 0 for p in ports)  # type: ignore[return-value]


def _spawn(state_dir: Path, cmd: list[str]) -> tuple[subprocess.Popen, int]:
    log_path = state_dir / "emulator.log"
    with open(log_path, "ab") as logf:
        offset = logf.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    track(proc)
    return proc, offset


def _failure(state_dir: Path, offset: int) -> str:
    """What the emulator said about its failure: its own `camera_emulator:` lines, else the log's tail."""
    try:
        with open(state_dir / "emulator.log", "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    own = [ln.removeprefix("camera_emulator: ") for ln in lines if ln.startswith("camera_emulator: ")]
    return " | ".join(own or lines[-5:])


def start_emulator(state_dir: Path, cameras: int, rtsp_port: int | None = None, control_port: int | None = None,
                   *, file_cameras: dict[str, Path] | None = None, timeout: float = 20.0,
                   extra_elements: Sequence[str] = ()) -> EmulatorInfo:
    """Spawn the emulator detached and wait until it serves; idempotent if one is already running there.

    Without explicit ports it reuses the state dir's last ports when they are free. It is ready only once
    every camera's pipeline builds and answers DESCRIBE; otherwise EmulatorError carries the emulator's own
    message (e.g. the missing GStreamer element and its Debian package). `extra_elements` is a test hook that
    adds elements to the live cameras' launch line."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = _read_info(state_dir)
    if existing is not None and _alive(existing.pid) and _is_emulator(existing.pid):
        return existing
    if not Path(SYSTEM_PYTHON).exists():
        raise EmulatorError(f"{SYSTEM_PYTHON} not found; the emulator needs Debian's python3 with python3-gi and "
                            "gir1.2-gst-rtsp-server-1.0")
    if cameras < 0 or (cameras == 0 and not file_cameras):
        raise EmulatorUsageError(f"cameras must be >= 1 (or give file cameras), got {cameras}")
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    preferred = _last_ports(state_dir) if rtsp_port is None and control_port is None else (0, 0)
    ports = (rtsp_port or preferred[0], control_port or preferred[1])
    base = [SYSTEM_PYTHON, str(EMULATOR), "--state-dir", str(state_dir), "--cameras", str(cameras)]
    for name, path in (file_cameras or {}).items():
        base += ["--file-camera", f"{name}={Path(path).resolve()}"]
    for element in extra_elements:
        base += ["--extra-element", element]
    proc, offset = _spawn(state_dir, [*base, "--port", str(ports[0]), "--control-port", str(ports[1])])
    deadline = time.monotonic() + timeout
    last_err = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = _failure(state_dir, offset)
            if "cannot listen" in why and ports != (rtsp_port or 0, control_port or 0):
                # a remembered port was taken between our check and the emulator's bind: any free port will do
                forget(proc.pid)
                ports = (rtsp_port or 0, control_port or 0)
                proc, offset = _spawn(state_dir, [*base, "--port", str(ports[0]), "--control-port", str(ports[1])])
                continue
            raise EmulatorError(f"emulator exited with {proc.returncode} during start-up: {why} "
                                f"(log: {state_dir / 'emulator.log'})")
        info = _read_info(state_dir)
        if info is not None and info.pid == proc.pid:
            try:
                _http(info, "GET", "/status", timeout=2)
                (state_dir / "emulator.pid").write_text(f"{proc.pid}\n")
                (state_dir / PORTS_FILE).write_text(json.dumps({"rtsp_port": info.rtsp_port,
                                                                 "control_port": info.control_port}))
                return info
            except EmulatorError as exc:
                last_err = str(exc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)  # condition poll with a bounded wait, not a fixed sleep
    _kill(proc.pid)
    raise EmulatorError(f"emulator not ready within {timeout:g} s ({last_err or 'no state file'}): "
                        f"{_failure(state_dir, offset)} (log: {state_dir / 'emulator.log'})")


def stop_emulator(state_dir: Path) -> bool:
    """Stop the emulator of this state dir; returns False if none was running."""
    state_dir = Path(state_dir)
    info = _read_info(state_dir)
    if info is None or not _alive(info.pid):
        return False
    if not _is_emulator(info.pid):
        raise EmulatorError(f"pid {info.pid} in {state_dir / STATE_FILE} is not a camera emulator (stale file?); "
                            "remove the file by hand after checking")
    _kill(info.pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    (state_dir / "emulator.pid").unlink(missing_ok=True)
    return True


def control_camera(state_dir: Path, name: str, action: Action) -> dict[str, Any]:
    """stop: mount removed and clients disconnected; stall: connection kept, no RTP; start: back to normal.

    Returns {'camera', 'state', 'at'}: `at` is the emulator's wall-clock time when the change took effect."""
    if action not in ("stop", "start", "stall"):
        raise EmulatorUsageError(f"unknown action {action!r}; use stop, start or stall")
    info = _read_info(Path(state_dir))
    if info is None or not _alive(info.pid):
        raise EmulatorNotRunning(f"no emulator running in {state_dir}; start it with start_emulator() "
                                 "(custody stack up --cameras N)")
    camera_url(info, name)  # validates the name with a clear message
    return _http(info, "POST", f"/camera/{name}/{action}")

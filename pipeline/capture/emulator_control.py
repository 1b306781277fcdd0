"""Start, stop and steer the RTSP camera emulator (`deploy/camera_emulator.py`) from the venv.

The emulator needs GStreamer's Python bindings, which only Debian's /usr/bin/python3 has, so it runs as a
detached child process. It picks free ports itself (bind to port 0) and writes them to
`<state_dir>/emulator.json` only once both servers listen; `start_emulator` waits for that file and a
successful control call, so callers never guess with sleeps and parallel homes never clash.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = ROOT / "deploy" / "camera_emulator.py"
SYSTEM_PYTHON = "/usr/bin/python3"
STATE_FILE = "emulator.json"

Action = Literal["stop", "start", "stall"]

_children: dict[int, subprocess.Popen] = {}


class EmulatorError(RuntimeError):
    """The emulator could not be started or controlled; the message says what to check."""


class EmulatorNotRunning(EmulatorError):
    """No live emulator for this state dir; run start_emulator (custody stack up --cameras N) first."""


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
        raise EmulatorError(f"emulator has no camera {name!r}; it serves {', '.join(info.cameras)}")
    return f"rtsp://{info.host}:{info.rtsp_port}/{name}"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_emulator(pid: int) -> bool:
    """Guard against pid reuse: only signal a process that is really our emulator."""
    try:
        return "camera_emulator.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


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
    """{'running': bool, ...ports, 'cameras': {name: running|stalled|stopped}} — never raises for 'down'."""
    info = _read_info(Path(state_dir))
    if info is None or not _alive(info.pid):
        return {"running": False, "state_dir": str(state_dir)}
    try:
        st = _http(info, "GET", "/status", timeout=5)
    except EmulatorError as exc:
        return {"running": False, "pid": info.pid, "error": str(exc), "state_dir": str(state_dir)}
    return {"running": True, "pid": info.pid, "rtsp_port": info.rtsp_port, "control_port": info.control_port,
            "cameras": st["cameras"], "urls": {n: camera_url(info, n) for n in info.cameras},
            "state_dir": str(state_dir)}


def start_emulator(state_dir: Path, cameras: int, rtsp_port: int | None = None, control_port: int | None = None,
                   *, file_cameras: dict[str, Path] | None = None, timeout: float = 20.0) -> EmulatorInfo:
    """Spawn the emulator detached and wait until it serves; idempotent if one is already running there."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = _read_info(state_dir)
    if existing is not None and _alive(existing.pid) and _is_emulator(existing.pid):
        return existing
    if not Path(SYSTEM_PYTHON).exists():
        raise EmulatorError(f"{SYSTEM_PYTHON} not found; the emulator needs Debian's python3 with python3-gi and "
                            "gir1.2-gst-rtsp-server-1.0")
    if cameras < 0 or (cameras == 0 and not file_cameras):
        raise EmulatorError(f"cameras must be >= 1 (or give file cameras), got {cameras}")
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    cmd = [SYSTEM_PYTHON, str(EMULATOR), "--state-dir", str(state_dir), "--cameras", str(cameras),
           "--port", str(rtsp_port or 0), "--control-port", str(control_port or 0)]
    for name, path in (file_cameras or {}).items():
        cmd += ["--file-camera", f"{name}={Path(path).resolve()}"]
    with open(state_dir / "emulator.log", "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    _children[proc.pid] = proc
    deadline = time.monotonic() + timeout
    last_err = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError(f"emulator exited with {proc.returncode} during start-up; see "
                                f"{state_dir / 'emulator.log'}: {_tail(state_dir / 'emulator.log')}")
        info = _read_info(state_dir)
        if info is not None and info.pid == proc.pid:
            try:
                _http(info, "GET", "/status", timeout=2)
                (state_dir / "emulator.pid").write_text(f"{proc.pid}\n")
                return info
            except EmulatorError as exc:
                last_err = str(exc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)  # condition poll with a bounded wait, not a fixed sleep
    _kill(proc.pid)
    raise EmulatorError(f"emulator not ready within {timeout:g} s ({last_err or 'no state file'}); "
                        f"see {state_dir / 'emulator.log'}")


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _kill(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # not our child: nothing to wait() on, poll /proc
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
    """stop: mount removed and clients disconnected; stall: connection kept, no RTP; start: back to normal."""
    if action not in ("stop", "start", "stall"):
        raise EmulatorError(f"unknown action {action!r}; use stop, start or stall")
    info = _read_info(Path(state_dir))
    if info is None or not _alive(info.pid):
        raise EmulatorNotRunning(f"no emulator running in {state_dir}; start it with start_emulator() "
                                 "(custody stack up --cameras N)")
    camera_url(info, name)  # validates the name with a clear message
    return _http(info, "POST", f"/camera/{name}/{action}")

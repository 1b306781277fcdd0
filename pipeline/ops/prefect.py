"""Prefect wiring: one Prefect server per stack, state kept inside CUSTODY_HOME.

A flow run with no API configured starts a temporary server every time
(~20 s here), so the stack starts one server and every command points at it.
The core library never needs Prefect: single operations stay cheap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.errors import InfrastructureError
from pipeline.ops.stack import port_free
from pipeline.secrets import write_private
from pipeline.settings import Settings
from pipeline.storage.embedded import pid_alive


def _state_path(settings: Settings) -> Path:
    return settings.stack_dir / "prefect.json"


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment for Prefect in this home: its own PREFECT_HOME and, if known, its server."""
    env = {"PREFECT_HOME": str(settings.home / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    url = settings.prefect_api_url or prefect_api_url(settings)
    if url:
        env["PREFECT_API_URL"] = url
    return env


def apply_prefect_env(settings: Settings) -> None:
    """Set the Prefect environment for this process (before importing prefect)."""
    for k, v in prefect_env(settings).items():
        os.environ.setdefault(k, v)


def prefect_api_url(settings: Settings) -> str | None:
    path = _state_path(settings)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state["url"] if pid_alive(state["pid"]) else None


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:  # noqa: S310 - loopback URL we built
            return r.status == 200
    except OSError:
        return False


def start_prefect(settings: Settings, timeout: float = 120.0) -> str:
    """Start `prefect server` on loopback for this home (idempotent); return its API URL."""
    url = prefect_api_url(settings)
    if url and healthy(url):
        return url
    port = next((p for p in range(4200 + hash(str(settings.home)) % 500, 4800) if port_free(p)), None)
    if port is None:
        raise InfrastructureError("no free port for the Prefect server")
    env = {**os.environ, **prefect_env(settings)}
    env.pop("PREFECT_API_URL", None)
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.stack_dir / "prefect.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfrastructureError(f"Prefect server exited ({proc.returncode}); "
                                      f"see {settings.stack_dir}/prefect.log")
        if healthy(url):
            write_private(_state_path(settings), json.dumps({"pid": proc.pid, "url": url}).encode())
            return url
        time.sleep(0.25)
    proc.kill()
    raise InfrastructureError(f"Prefect server not healthy after {timeout:.0f}s; see {settings.stack_dir}/prefect.log")


def stop_prefect(settings: Settings) -> bool:
    path = _state_path(settings)
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    path.unlink(missing_ok=True)
    if not pid_alive(state["pid"]):
        return False
    os.killpg(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pid_alive(state["pid"]):
        time.sleep(0.1)
    if pid_alive(state["pid"]):
        os.killpg(state["pid"], signal.SIGKILL)
    return True

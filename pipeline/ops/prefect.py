"""Prefect wiring: one Prefect server per stack, state kept inside CUSTODY_HOME.

A flow run with no API configured starts a temporary server every time
(~20 s here), so the stack starts one server and every command points at it.
The core library never needs Prefect: single operations stay cheap, and a
camera recording starts before Prefect is even imported (flows/camera_ingest).

The server's UI is told its own API address (`PREFECT_UI_API_URL`): left unset
it calls 127.0.0.1:4200 whatever port the server runs on. Its port is stable
per home (ops/ports.py), so a bookmarked UI keeps working across restarts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InfrastructureError
from pipeline.ops.ports import remember, stable_port
from pipeline.ops.processes import alive, cmdline_has, kill, tail, track
from pipeline.secrets import write_private
from pipeline.settings import Settings

PREFECT_BASE_PORT = 4200


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


def _read_state(settings: Settings) -> dict | None:
    try:
        state = json.loads(_state_path(settings).read_text())
        return {"pid": int(state["pid"]), "url": str(state["url"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prefect_api_url(settings: Settings) -> str | None:
    """The stack's own Prefect server, if its process is alive (not necessarily answering yet)."""
    state = _read_state(settings)
    return state["url"] if state and alive(state["pid"]) else None


def prefect_pid(settings: Settings) -> int | None:
    state = _read_state(settings)
    return state["pid"] if state and alive(state["pid"]) else None


def ui_url(api_url: str) -> str:
    return api_url.removesuffix("/api")


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as r:  # noqa: S310 - loopback URL we built
            return r.status == 200
    except OSError:
        return False


def reachable_api_url(settings: Settings) -> str | None:
    """The Prefect API this home uses (the configured one, else the stack's), if it answers now."""
    url = settings.prefect_api_url or prefect_api_url(settings)
    return url if url and healthy(url) else None


@dataclass
class PrefectStart:
    """A server being started: spawn it early, do other work, then `wait_prefect`."""

    url: str
    proc: subprocess.Popen | None  # None: it was already running
    started: float


def spawn_prefect(settings: Settings) -> PrefectStart:
    """Launch `prefect server start` on loopback for this home unless one runs; do not wait for it."""
    url = prefect_api_url(settings)
    if url:
        return PrefectStart(url, None, time.monotonic())
    port = stable_port(settings, "prefect", PREFECT_BASE_PORT)
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **prefect_env(settings), "PREFECT_UI_API_URL": url}
    env.pop("PREFECT_API_URL", None)  # the server must not think it is a client of another one
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.stack_dir / "prefect.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    track(proc)
    write_private(_state_path(settings), json.dumps({"pid": proc.pid, "url": url}).encode())
    remember(settings, "prefect", port)
    return PrefectStart(url, proc, time.monotonic())


def wait_prefect(settings: Settings, start: PrefectStart, timeout: float = 120.0) -> str:
    """Wait until the server answers /health; return its API URL."""
    log = settings.stack_dir / "prefect.log"
    deadline = start.started + timeout
    while time.monotonic() < deadline:
        if start.proc is not None and start.proc.poll() is not None:
            _state_path(settings).unlink(missing_ok=True)
            raise InfrastructureError(f"Prefect server exited ({start.proc.returncode}); see {log}: {tail(log, 3)}")
        if healthy(start.url):
            return start.url
        if start.proc is None and not prefect_api_url(settings):
            raise InfrastructureError(f"this home's Prefect server went away while starting; see {log}")
        time.sleep(0.25)
    if start.proc is not None:
        kill(start.proc.pid, group=True)
        _state_path(settings).unlink(missing_ok=True)
    raise InfrastructureError(f"Prefect server not healthy after {timeout:.0f}s; see {log}: {tail(log, 3)}")


def start_prefect(settings: Settings, timeout: float = 120.0) -> str:
    """Start (or find) this home's Prefect server and wait until it answers; return its API URL."""
    return wait_prefect(settings, spawn_prefect(settings), timeout)


def stop_prefect(settings: Settings) -> bool:
    state = _read_state(settings)
    _state_path(settings).unlink(missing_ok=True)
    if state is None or not alive(state["pid"]) or not cmdline_has(state["pid"], "prefect"):
        return False  # gone, or the pid now belongs to something else
    kill(state["pid"], timeout=20, group=True)
    return True

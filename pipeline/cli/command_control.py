"""Start, stop and inspect a home's warm command server (`pipeline.cli.command_server`) for `custody stack`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli.command_server import LOCK_FILE, LOG_FILE, MODULE, SERVER_ARGS, STATE_FILE
from pipeline.cli.launcher import SOCKET_NAME
from pipeline.errors import InfrastructureError


class CommandServerError(InfrastructureError):
    """The command server could not be started (the message names its log)."""


def _state(stack_dir: Path) -> dict[str, Any] | None:
    from pipeline.ops.processes import alive, cmdline_has

    try:
        d = json.loads((stack_dir / STATE_FILE).read_text())
        pid = int(d["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return d if alive(pid) and cmdline_has(pid, MODULE) else None


def status(stack_dir: Path) -> dict[str, Any]:
    st = _state(stack_dir)
    return {"running": bool(st and (stack_dir / SOCKET_NAME).exists()), "pid": st["pid"] if st else None,
            "socket": str(stack_dir / SOCKET_NAME), "log": str(stack_dir / LOG_FILE)}


def start(stack_dir: Path, timeout: float = 30.0) -> dict[str, Any]:
    """Start this home's command server (idempotent) and wait until it listens."""
    import subprocess

    from pipeline.ops.processes import await_ready, track

    if len(str(stack_dir / SOCKET_NAME)) > 100:
        raise CommandServerError(f"the home's path is too long for a Unix socket ({stack_dir}); commands run "
                                 "without the command server")
    current = status(stack_dir)
    if current["running"]:
        return current
    stack_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = stack_dir / LOG_FILE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTODY_S3_", "PREFECT_API_KEY"))}
    with open(log, "ab") as logf:
        proc = subprocess.Popen([sys.executable, *SERVER_ARGS, "--home", str(stack_dir.parent)], env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                                cwd=stack_dir)
    track(proc)

    def ready() -> dict[str, Any] | None:
        st = status(stack_dir)
        return st if st["running"] and st["pid"] == proc.pid else None

    try:
        return await_ready(proc, ready, timeout=timeout, log=log, what="command server", error=CommandServerError)
    except CommandServerError:
        deadline = time.monotonic() + timeout
        while _lock_held(stack_dir) and time.monotonic() < deadline:  # another `stack up` started one just now
            current = status(stack_dir)
            if current["running"]:
                return current
            time.sleep(0.02)  # polling another process's start-up, with a deadline
        raise


def records(log: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The per-command records (pid, command word, status, wall, CPU, peak RSS) in a server's log from byte
    `offset` on: the log's JSON lines, after their time-stamp."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        _, _, rest = line.partition(" ")
        if rest.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(rest))
    return out


def _lock_held(stack_dir: Path) -> bool:
    import fcntl

    try:
        fd = os.open(stack_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def stop(stack_dir: Path) -> bool:
    """Stop taking commands (running ones finish in their own processes); False if none was running.
    Commands still finishing their transparency-log round (`finishing`) are waited for first, so the
    services they need are stopped only after them."""
    from pipeline.cli.finishing import settle
    from pipeline.ops.processes import kill

    settle(stack_dir)
    st = _state(stack_dir)
    if st is None:
        return False
    kill(int(st["pid"]), timeout=5.0)
    for name in (SOCKET_NAME, STATE_FILE):
        with contextlib.suppress(OSError):
            (stack_dir / name).unlink()
    return True

"""Detached helper processes (S3 server, Prefect server, camera emulator, local TSA): one copy of the
is-it-alive / stop-it / what-did-it-say code for all of them.

Children this process started are tracked (`track`) so they can be reaped with wait() instead of left as
zombies; anything else (a server started by an earlier command) is watched through /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_children: dict[int, subprocess.Popen] = {}


def track(proc: subprocess.Popen) -> subprocess.Popen:
    """Remember a child we started, so `alive` polls it and `kill` reaps it."""
    _children[proc.pid] = proc
    return proc


def forget(pid: int) -> None:
    _children.pop(pid, None)


def alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) is not alive."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # the name in (...) may hold spaces


def cmdline_has(pid: int, text: str) -> bool:
    """Guard against pid reuse: is `text` part of that process's command line?"""
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def kill(pid: int, timeout: float = 10.0, *, group: bool = False) -> None:
    """SIGTERM (to its process group with `group`), wait up to `timeout`, then SIGKILL."""
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(pid, signal.SIGTERM)
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                send(pid, signal.SIGKILL)
            child.wait()
            return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # not our child: nothing to wait() on, poll /proc
    if alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(pid, signal.SIGKILL)


def tail(path: Path, n: int = 5) -> str:
    """The last `n` lines of a log, joined for an error message ('' if unreadable)."""
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def await_ready(proc: subprocess.Popen, ready: Callable[[], T | None], *, timeout: float, log: Path, what: str,
                error: type[Exception]) -> T:
    """Poll `ready()` until it gives a value while the detached `proc` runs (a condition poll with a bounded
    wait, never a fixed sleep); `error` names `log` if it exits first or does not answer in time (then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            forget(proc.pid)
            raise error(f"{what} exited with {proc.returncode} during start-up; see {log}: {tail(log)}")
        got = ready()
        if got is not None:
            return got
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.01)
    kill(proc.pid)
    raise error(f"{what} not answering within {timeout:g} s; see {log}: {tail(log)}")

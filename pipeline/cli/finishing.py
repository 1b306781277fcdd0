"""Work a command owes the record once its outcome is known: the transparency-log round at its end.

In a process of its own that work runs at exit (atexit), before the process ends, as it always did. In a
command server's child it runs after the launcher has been given the exit status, so the prompt comes back
while the child folds the command's events into the log and time-stamps the newest head (~60-80 ms of
sequential S3 and TSA requests). Nothing is lost or reordered by that: the events are already written (each
chain orders itself), the log's rounds are built for concurrent appenders, and a child cut off mid-round is
repaired by the next round, as for any process. The child holds a shared lock on `FINISHING` in the stack
folder until it is done; the next served command of the home, `custody stack down` and `settle` take it
exclusively first, so whatever runs next sees the round finished.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

FINISHING = "commands.finishing"
_later: list[Callable[[], None]] = []
_served = False


def after_command(fn: Callable[[], None]) -> None:
    """Run `fn` once the command is over: at exit in its own process, after reporting in a served child."""
    if _served:
        _later.append(fn)
    else:
        atexit.register(fn)


def serve_later() -> None:
    """This process is a command server's child: keep `after_command` work for after the report."""
    global _served
    _served = True


def take_later() -> list[Callable[[], None]]:
    """The work `after_command` kept, newest first (as atexit would run it); the list is emptied."""
    out = list(reversed(_later))
    _later.clear()
    return out


def hold(stack_dir: Path) -> int:
    """Take the home's finishing lock shared (for the rest of this process's life); returns its descriptor."""
    fd = os.open(stack_dir / FINISHING, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def settle(stack_dir: Path, timeout: float = 30.0) -> bool:
    """Wait until no served command of this home is still finishing; False if one still is at `timeout`."""
    try:
        fd = os.open(stack_dir / FINISHING, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # no command has ever finished late here
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.002)  # polls the lock's condition, to a deadline (flock itself has no timeout)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)

"""A command server's child: it becomes the process the launcher would have been (its descriptors, argv,
environment, working directory, umask, resource limits, process group) and runs `pipeline.cli.main` there.

It starts the command only on the launcher's go-ahead (sent once the launcher knows its pid, so a launcher
that gave up never sees its command run twice), and kills itself and its process group when the launcher
hangs up: a killed `custody` takes its command with it, as it would without the server. Once the command is
over it reports the exit code and, if work is left for after the command (`pipeline.cli.finishing`), first
detaches: it takes the finishing lock, tells the server (the `note` pipe: its launcher leaving is then no
kill), and points its standard streams at /dev/null and the stack's `commands.after.log`.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

#: how long a command waits for the previous one's round (`finishing`) before it starts anyway
FINISH_WAIT_S = 10.0
AFTER_LOG = "commands.after.log"  # what a detached child still says (a late warning), in the stack folder


def run_child(conn: socket.socket, header: dict[str, Any], fds: list[int], inherited: list[Any], note: int,
              stack_dir: Path) -> NoReturn:
    """Become the launcher's command and run it; never returns (a child must not fall back into the server)."""
    code = 70
    try:
        released = _become_command(conn, header, fds, inherited)
        from pipeline.cli import finishing

        finishing.settle(stack_dir, timeout=FINISH_WAIT_S)  # the previous command's round is done first
        detached = False

        def detach() -> None:
            nonlocal detached
            finishing.hold(stack_dir)
            os.write(note, b"d")
            released.set()  # the launcher leaving from now on is expected: no kill
            null = os.open(os.devnull, os.O_RDWR)
            late = os.open(stack_dir / AFTER_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            for target, fd in ((0, null), (1, null), (2, late)):
                os.dup2(fd, target)
            os.close(null)
            os.close(late)
            detached = True

        def report(rc: int) -> None:
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"exit": rc, "detached": detached}).encode() + b"\n")

        from pipeline.cli.main import run_in_child

        finishing.serve_later()
        run_in_child(report, detach)
    except BaseException as exc:  # noqa: BLE001 - a child must never fall back into the server loop
        with contextlib.suppress(Exception):
            os.write(2, f"custody: the command could not start in the command server: {type(exc).__name__}: "
                        f"{exc}\n".encode())
    finally:
        os._exit(code)


def _become_command(conn: socket.socket, header: dict[str, Any], fds: list[int], inherited: list[Any]
                    ) -> threading.Event:
    """Turn this fork into the process the launcher would have been, then wait for its go-ahead; returns the
    event that, once set, lets the launcher go without taking the command with it."""
    import io
    import tempfile

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)
    for item in inherited:
        with contextlib.suppress(OSError):
            os.close(item) if isinstance(item, int) else item.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    fds.clear()
    for name, (soft, hard) in header.get("rlimits", {}).items():
        lim = getattr(resource, name, None)
        if lim is not None:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(lim, (soft, hard))
    os.umask(int(header["umask"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in header["env"].items()})
    time.tzset()
    tempfile.tempdir = None
    os.chdir(header["cwd"])
    sys.argv = [str(a) for a in header["argv"]]
    sys.path[:] = [str(p) for p in header["path"]]
    main_mod = sys.modules.get("__main__")
    if main_mod is not None:
        main_mod.__spec__ = main_mod.__package__ = None  # click names the program from argv[0], not `python -m`
    streams = []
    for fd, (enc, errors, line_buffering, write_through) in enumerate(header["stdio"]):
        # as the launcher's own: unbuffered binary layer under -u / PYTHONUNBUFFERED (stdin stays buffered)
        raw = open(fd, "rb" if fd == 0 else "wb", buffering=0 if write_through and fd else -1,  # noqa: SIM115
                   closefd=False)
        streams.append(io.TextIOWrapper(raw, encoding=enc, errors=errors, newline="\n",
                                        line_buffering=bool(line_buffering), write_through=bool(write_through)))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]
    conn.settimeout(30.0)
    if conn.recv(1) != b"g":
        os._exit(0)  # the launcher gave up before the go-ahead: nothing ran, it runs the command itself
    conn.settimeout(None)

    released = threading.Event()

    def watch() -> None:
        """The launcher hanging up means it was killed: so is this command, as it would have been."""
        try:
            while conn.recv(64):
                pass
        except OSError:
            pass
        if released.is_set():
            return  # it left after the report, as it should
        with contextlib.suppress(OSError):
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()
    return released

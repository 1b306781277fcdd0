"""The warm command server: one process per home that has imported the CLI's libraries once, and forks a
child for each `custody` command the launcher (`pipeline.cli.launcher`) hands it.

Why: a command spends ~1 s importing before it works (1.2 s of `custody extract`'s 4.9 s); a fork of a
process that already holds those modules starts in ~10 ms. The design is Mercurial's chg: the child gets
the launcher's own stdin/stdout/stderr descriptors, argv, environment, working directory, umask and
resource limits, runs `pipeline.cli.main` exactly as the launcher would have, and reports its exit code;
the server reaps it and reports the wait status and resource use. Nothing of one command outlives it in
the server: every command is a fresh fork of the state right after the imports (no command ever ran in
the server, no settings were read, no S3 client exists there).

Safety: the socket is mode 0600 in the home's 0700 stack folder, and the server serves only its own user
(SO_PEERCRED), the same `pipeline` package and Python, and only while no loaded module file has changed on
disk (otherwise it declines, and restarts itself once idle, so an upgrade takes effect at once). It never
logs argv or environment (they may hold secrets): per command, pid, command word, exit and resource use.
The server imports no Prefect and starts no thread, so forking it is safe.

Run by hand: `python -m pipeline.cli.command_server --home HOME`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cli.argv import command_named
from pipeline.cli.command_checks import code_changed, code_files, loaded_top_level, path_conflict
from pipeline.cli.launcher import PROTOCOL, SOCKET_NAME, peer_uid

MODULE = "pipeline.cli.command_server"
#: -P: no working directory (the stack folder) on sys.path; a command then searches what the launcher would
SERVER_ARGS = ("-P", "-m", MODULE)
STATE_FILE = "commands.json"
LOCK_FILE = "commands.lock"  # held for the server's life (not by its children)
LOG_FILE = "commands.log"
MAX_HEADER = 4 * 1024 * 1024  # argv + environment; anything larger is not a command line
#: besides every module of `pipeline` (none imports Prefect at import time, which is checked): the libraries
#: commands load inside their functions. Prefect (flows, cameras) is left to load on demand.
PRELOAD = ("av", "cv2", "numpy", "rich.console", "rich.progress", "rich.table", "rich.live")


# --- the server ---------------------------------------------------------------------------------------

def _preload(log: Any) -> list[str]:
    import gc
    import importlib
    import pkgutil

    import pipeline

    names = [m.name for m in pkgutil.walk_packages(pipeline.__path__, "pipeline.")
             if not m.name.endswith("__main__")]
    missing = []
    for name in [*names, *PRELOAD]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the command that needs it loads it itself, and says why
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    gc.collect()
    gc.freeze()  # the children's collector never walks (and so never copies) the preloaded objects
    if missing:
        log(f"not preloaded: {', '.join(missing)}")
    if "prefect" in sys.modules:
        log("a preloaded module imported Prefect (threads, ~1 s): it should import it where it is used")
    return missing


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


@dataclass
class _Child:
    """A command the server forked: the launcher's connection, its command word, when it started, and the read end
    of the pipe on which it says it detached (it reported and finishes its log round on its own)."""

    conn: socket.socket
    word: str
    started: float
    note: int
    detached: bool = False

    def has_detached(self) -> bool:
        if not self.detached:
            try:
                self.detached = os.read(self.note, 1) == b"d"
            except OSError:  # BlockingIOError: it has not (yet)
                pass
        return self.detached


class _Server:
    def __init__(self, stack_dir: Path) -> None:
        self.stack_dir = stack_dir
        self.path = stack_dir / SOCKET_NAME
        self.package = os.path.dirname(os.path.abspath(sys.modules["pipeline"].__file__ or ""))
        self.children: dict[int, _Child] = {}
        self.paths: dict[tuple[str, ...], str] = {}
        self.stale = False
        self.stopping = False
        self.logf = open(stack_dir / LOG_FILE, "a", buffering=1)  # noqa: SIM115 - the server's lifetime

    def log(self, msg: str) -> None:
        self.logf.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")

    def record(self, entry: dict[str, Any]) -> None:
        self.log(json.dumps(entry))

    def serve(self) -> int:
        import fcntl

        started = time.monotonic()
        self.lock = os.open(self.stack_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one server a home: two `stack up` at once
        except BlockingIOError:
            self.log(f"another command server serves {self.stack_dir}: not starting a second")
            return 1
        _preload(self.log)
        if _thread_count() != 1:
            self.log("refusing to serve: importing started threads, so forking would be unsafe")
            return 1
        self.code = code_files()
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.listener = self._listen()
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        sel.register(rfd, selectors.EVENT_READ, "wake")
        (self.stack_dir / STATE_FILE).write_text(json.dumps({"pid": os.getpid(), "socket": str(self.path)}))
        self.log(f"serving {self.path} (pid {os.getpid()}, {len(self.code)} modules loaded in "
                 f"{time.monotonic() - started:.2f} s)")
        self.wake = (rfd, wfd, sel)
        while not self.stopping and not (self.stale and not self.children):
            for key, _ in sel.select(timeout=5.0):
                if key.data == "accept":
                    self._accept()
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(rfd, 512)
            self._reap()
        self._close_listener()
        if self.stale and not self.stopping:
            self.log("code changed on disk: restarting")
            self.logf.close()
            os.execv(sys.executable, [sys.executable, *SERVER_ARGS, "--home", str(self.stack_dir.parent)])  # noqa: S606 - fixed argv, no shell
        self.log("stopped")
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGCHLD:
            self.stopping = True  # running commands go on in their own processes and report their own exit

    def _listen(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(64)
        return sock

    def _close_listener(self) -> None:
        lst = getattr(self, "listener", None)
        if lst is not None and lst.fileno() >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.wake[2].unregister(lst)
            lst.close()
            self.path.unlink(missing_ok=True)
            (self.stack_dir / STATE_FILE).unlink(missing_ok=True)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            header, fds = _receive(conn)
            reason = self._refusal(conn, header, fds)
            if reason:
                conn.sendall(json.dumps({"refused": reason}).encode() + b"\n")
                if reason == "code changed":
                    self.stale = True
                    self._close_listener()
                return
            self._settle_orphans()
            self._fork(conn, header, fds)
            conn = None  # type: ignore[assignment]  # kept in self.children until reaped
        except (OSError, ValueError) as exc:
            self.log(f"bad request: {type(exc).__name__}")
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if conn is not None:
                conn.close()

    def _refusal(self, conn: socket.socket, header: dict[str, Any], fds: list[int]) -> str:
        if peer_uid(conn) != os.getuid():
            return "another user"
        if header.get("v") != PROTOCOL or len(fds) != 3:
            return "protocol"
        if header.get("package") != self.package or header.get("python") != sys.executable:
            return "another installation"
        path = header.get("path")
        if not isinstance(path, list) or header.get("fsencoding") != sys.getfilesystemencoding():
            return "protocol"
        conflict = self._path_conflict([str(p) for p in path[1:]])  # [0] is the script's own folder
        if conflict:
            return conflict
        if self.stopping or self.stale:
            return "stopping"
        for name, (_soft, hard) in header.get("rlimits", {}).items():
            lim = getattr(resource, name, None)
            if lim is None:
                continue
            mine = resource.getrlimit(lim)[1]
            if mine != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > mine):
                return f"resource limit {name}"
        if code_changed(self.code):
            return "code changed"
        return ""

    def _path_conflict(self, path: list[str]) -> str:
        """Why the launcher's module search path would find other code than the server holds ('' if not):
        a folder only it searches that holds a module the server loaded from elsewhere, or a folder only the
        server searches that the server loaded a module from. Remembered per path."""
        key = tuple(path)
        if key not in self.paths:
            self.paths[key] = path_conflict(path, sys.path, loaded_top_level())
        return self.paths[key]

    def _fork(self, conn: socket.socket, header: dict[str, Any], fds: list[int]) -> None:
        word = command_named(list(header.get("argv", [])[1:])) or "-"
        note_r, note_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)  # the child writes "d" when it detaches
        pid = os.fork()
        if pid == 0:  # the child: never returns
            from pipeline.cli.command_child import run_child

            os.close(note_r)
            run_child(conn, header, fds, self.closing_in_child(), note_w, self.stack_dir)
        os.close(note_w)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done by the child: whichever runs first, signals reach its group
        conn.settimeout(None)
        self.children[pid] = _Child(conn, word if word.isidentifier() or word.replace("-", "").isalnum() else "?",
                                    time.monotonic(), note_r)
        try:
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:
            pass  # the launcher left: the child sees no go-ahead and exits

    def _settle_orphans(self) -> None:
        """Finish off commands whose launcher was killed before starting another: a killed `custody` is gone
        before the next one runs (a resumed upload must not meet the killed one still holding its journal),
        as it would be without the server. Each child kills itself on the hang-up too; this makes it ordered.
        A child that reported its exit and detached (see `pipeline.cli.finishing`) is finishing, not orphaned."""
        for pid, child in list(self.children.items()):
            if child.detached:
                continue
            try:
                gone = child.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                continue
            except OSError:
                gone = True
            if gone and not child.has_detached():
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    _, status, usage = os.wait4(pid, 0)
                    self._reaped(pid, status, usage)

    def closing_in_child(self) -> list[Any]:
        """What a child must close at once: the listener, wake-up pipe, lock, log, other commands' sockets and
        note pipes."""
        rfd, wfd, sel = self.wake
        return [sel, rfd, wfd, self.lock, self.listener, self.logf,
                *(c.conn for c in self.children.values()), *(c.note for c in self.children.values())]

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._reaped(pid, status, usage)

    def _reaped(self, pid: int, status: int, usage: resource.struct_rusage) -> None:
        child = self.children.pop(pid, None)  # None: forked before this server re-executed itself
        rus = {"utime": usage.ru_utime, "stime": usage.ru_stime, "maxrss_kb": usage.ru_maxrss}
        self.record({"pid": pid, "command": child.word if child else "?", "status": os.waitstatus_to_exitcode(status),
                     "wall_s": round(time.monotonic() - child.started, 3) if child else 0.0,
                     "detached": child.has_detached() if child else False, **rus})
        if child is not None:
            os.close(child.note)
            with contextlib.suppress(OSError):
                child.conn.sendall(json.dumps({"status": status, "rusage": rus}).encode() + b"\n")
            child.conn.close()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    head, fds, _flags, _addr = socket.recv_fds(conn, 4, 3)
    if len(head) < 4:
        raise ValueError("short header")
    size = int.from_bytes(head[:4], "big")
    if not 0 < size <= MAX_HEADER:
        raise ValueError("header size")
    body = head[4:]
    while len(body) < size:
        more = conn.recv(min(1 << 16, size - len(body)))
        if not more:
            raise ValueError("truncated header")
        body += more
    header = json.loads(body)
    if not isinstance(header, dict):
        raise ValueError("header")
    return header, list(fds)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog=MODULE, description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--home", required=True, type=Path)
    args = ap.parse_args(argv)
    stack_dir = args.home.expanduser().resolve() / "stack"
    try:
        return _Server(stack_dir).serve()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

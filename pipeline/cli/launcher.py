"""The `custody` console script: hand the command to this home's warm command server, or run it here.

Starting a command costs ~1 s before it does anything: the interpreter, then ~1,000 modules (S3 client,
OpenCV, PyAV, NumPy, pydantic, rich). `custody stack up` starts a command server
(`pipeline.cli.command_server`) that has imported them once; this launcher, which imports only the
standard library, passes it the command line, environment, working directory, umask, resource limits and
its own stdin/stdout/stderr (the descriptors themselves, over a Unix socket), and the server forks a
child that runs the command exactly as this process would have. The launcher forwards signals to that
child's process group, exits with its status (or dies of the same signal), and if the launcher is killed
the child is killed with it.

It runs the command in this process instead whenever the server is absent, refuses (another install,
changed code, a resource limit it cannot honour), or when `CUSTODY_COMMAND_SERVER=0`; and always for
`stack`, `serve` and `cameras`, which start or are long-lived services. A command is never run twice: the
child starts only once this launcher has confirmed, after learning its pid.
"""

from __future__ import annotations

import os
import socket  # every served command needs it, and every command run here imports it anyway
import sys

from pipeline.cli.argv import command_named

#: commands always run in the launching process: `stack` starts and stops the server itself; `serve` and
#: `cameras` are long-lived services (and import Prefect, which the server does not hold)
IN_PROCESS = frozenset({"stack", "serve", "cameras"})
SOCKET_NAME = "commands.sock"
PROTOCOL = 2  # 2: a child may report {'exit', 'detached': true} and finish after the launcher left
_OFF = frozenset({"0", "false", "no", "off"})
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def socket_path(env: dict[str, str] | os._Environ[str]) -> str:
    """Where this home's command server listens (the home as `pipeline.settings.default_home` finds it)."""
    home = env.get("CUSTODY_HOME") or os.path.join(os.path.expanduser("~"), ".custody")
    return os.path.join(os.path.realpath(os.path.expanduser(home)), "stack", SOCKET_NAME)


def wanted(argv: list[str], env: dict[str, str] | os._Environ[str]) -> bool:
    if env.get("CUSTODY_COMMAND_SERVER", "").strip().lower() in _OFF:
        return False
    cmd = command_named(argv)
    return cmd is not None and not cmd.startswith("-") and cmd not in IN_PROCESS


def run() -> None:
    """Entry point of the `custody` script."""
    if wanted(sys.argv[1:], os.environ):
        _via_server()  # returns only when the server did not take the command
    from pipeline.cli.main import run as run_here

    run_here()


def _rlimits() -> dict[str, list[int]]:
    import resource

    return {name: list(resource.getrlimit(getattr(resource, name)))
            for name in dir(resource) if name.startswith("RLIMIT_")}


def _header() -> bytes:
    import json

    import pipeline

    streams = []  # encoding, errors, line buffering, write-through (PYTHONUNBUFFERED / -u) of each std stream
    for s in (sys.stdin, sys.stdout, sys.stderr):
        streams.append([getattr(s, "encoding", None) or "utf-8", getattr(s, "errors", None) or "strict",
                        bool(getattr(s, "line_buffering", False)), bool(getattr(s, "write_through", False))])
    return json.dumps({
        "v": PROTOCOL, "argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": _umask(),
        "rlimits": _rlimits(), "stdio": streams, "package": os.path.dirname(os.path.abspath(pipeline.__file__)),
        "python": sys.executable, "path": sys.path, "fsencoding": sys.getfilesystemencoding()}).encode()


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _connect() -> socket.socket | None:
    """A connection to a server of this user, or None."""
    import stat

    path = socket_path(os.environ)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid() or len(path) > 100:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    try:
        sock.connect(path)
        uid = peer_uid(sock)
    except OSError:
        sock.close()
        return None
    if uid != os.getuid():
        sock.close()
        return None
    return sock


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    import struct

    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def _via_server() -> None:
    """Run the command in a server child and exit with its outcome; return if the server did not take it."""
    import json

    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return  # a closed standard stream: nothing to hand over
    sock = _connect()
    if sock is None:
        return
    with sock:
        try:
            header = _header()
            socket.send_fds(sock, [len(header).to_bytes(4, "big") + header], [0, 1, 2])
            reader = sock.makefile("rb")
            reply = json.loads(reader.readline() or b"{}")
        except (OSError, ValueError):
            return  # nothing started: the child waits for our go-ahead, and dies on our hang-up
        pid = reply.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            if os.environ.get("CUSTODY_DEBUG") == "1" and reply.get("refused"):
                sys.stderr.write(f"custody: command server declined ({reply['refused']}); running here\n")
            return
        _forward_signals(pid)
        try:
            sock.settimeout(None)
            sock.sendall(b"g")
        except OSError:
            return  # the child never got the go-ahead, so it did not run
        outcome = _await(reader)
    _exit_as(outcome)


def _forward_signals(pid: int) -> None:
    """Signals for this process go to the command's process group; Ctrl-Z stops it with this launcher and
    `fg`/`bg` (SIGCONT) resumes both, as a shell's job control would if the command ran here."""
    import signal

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(pid, signum)
        except OSError:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    def stop(_signum: int, _frame: object) -> None:
        forward(signal.SIGSTOP, None)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here; execution resumes on SIGCONT

    def resume(_signum: int, _frame: object) -> None:
        forward(signal.SIGCONT, None)
        signal.signal(signal.SIGTSTP, stop)

    for name in _FORWARDED:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, forward)
    signal.signal(signal.SIGTSTP, stop)
    signal.signal(signal.SIGCONT, resume)


def _await(reader: object) -> dict[str, object]:
    """Read the child's and the server's reports until the connection closes; the server's wins. A child
    that detached (its command is over; it finishes the transparency-log round on its own) is not waited for."""
    import json

    outcome: dict[str, object] = {}
    while True:
        try:
            line = reader.readline()  # type: ignore[attr-defined]
        except OSError:
            break
        if not line:
            break
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            if "status" in msg or "exit" not in outcome:
                outcome.update(msg)
            if msg.get("detached") is True and "exit" in msg:
                break
    return outcome


def _exit_as(outcome: dict[str, object]) -> None:
    import signal

    status = outcome.get("status")
    if isinstance(status, int):
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            os._exit(128 + sig)
        os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
    code = outcome.get("exit")
    if isinstance(code, int):
        os._exit(code)
    sys.stderr.write("custody: the command server stopped while the command ran; its outcome is unknown. Rerun "
                     "it: work already recorded is recognised\n")
    os._exit(3)

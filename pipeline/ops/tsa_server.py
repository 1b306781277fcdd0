"""A local RFC 3161 time-stamp authority over HTTP, standing in for a real one as the emulator stands in for cameras.

It answers POSTs of `application/timestamp-query` on 127.0.0.1 with `openssl ts -reply` (OpenSSL 3, SHA-256,
keys and config from `tsa_authority`), one request at a time because openssl bumps a serial file. The query
and reply pass through files in a private temporary directory; nothing from a request reaches a command line.
`GET /health` answers "ok". It binds the port it is given, or a free one, and writes
`{"pid", "port", "url"}` to its state file only once it listens; `start` waits for that file and a health
answer (a condition poll with a deadline, never a fixed sleep), `stop` ends it.

Run by hand: `python -m pipeline.ops.tsa_server --dir DIR [--port P] [--state-file F]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.custody.tsa_authority import AuthorityFiles
from pipeline.errors import InfrastructureError
from pipeline.ops.processes import alive as _alive
from pipeline.ops.processes import await_ready, cmdline_has, track
from pipeline.ops.processes import kill as _kill

MAX_QUERY = 16 * 1024  # a TimeStampReq is ~60 bytes; refuse anything that could be a memory attack
STATE_FILE = "tsa.json"
HOST = "127.0.0.1"
_MODULE = "pipeline.ops.tsa_server"


class LocalTsaError(InfrastructureError):
    """The local TSA could not be started or stopped; the message names the log to read."""


@dataclass(frozen=True)
class LocalTsa(AuthorityFiles):
    """A running local TSA: its authority's files (CA and TSA certificates) plus where it listens."""

    pid: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"


class _Handler(BaseHTTPRequestHandler):
    server_version = "custody-local-tsa/1"
    directory: Path
    lock: threading.Lock

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")

    def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok\n")
        else:
            self._reply(404, b"POST an application/timestamp-query to /\n")

    def do_POST(self) -> None:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/timestamp-query":
            self._reply(415, b"Content-Type must be application/timestamp-query\n")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, b"Content-Length required\n")
            return
        if not 0 < length <= MAX_QUERY:
            self._reply(413, f"a time-stamp query is 1..{MAX_QUERY} bytes\n".encode())
            return
        query = self.rfile.read(length)
        reply, err = _sign(self.directory, query, self.lock)
        if reply is None:  # openssl answers a malformed query itself, with a rejection reply: this is our fault
            self._reply(500, f"local TSA failed to sign: {err}\n".encode())
        else:
            self._reply(200, reply, "application/timestamp-reply")


def _sign(directory: Path, query: bytes, lock: threading.Lock) -> tuple[bytes | None, str]:
    with tempfile.TemporaryDirectory(prefix="custody-tsa-") as tmp:
        q, r = Path(tmp) / "query.tsq", Path(tmp) / "reply.tsr"
        q.write_bytes(query)
        with lock:
            proc = subprocess.run(["openssl", "ts", "-reply", "-config", "openssl.cnf", "-queryfile", str(q),
                                   "-out", str(r)], cwd=directory, capture_output=True, timeout=30, check=False)
        if proc.returncode != 0 or not r.exists():
            lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if "error" in ln.lower()]
            return None, (lines[-1] if lines else f"openssl exited {proc.returncode}")[:300]
        return r.read_bytes(), ""


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def serve(directory: Path, port: int = 0, state_file: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT; creates the authority's files first if they are missing."""
    from pipeline.custody.tsa_authority import ensure_authority

    files = ensure_authority(directory)
    state = Path(state_file) if state_file else files.directory / STATE_FILE
    handler = type("Handler", (_Handler,), {"directory": files.directory, "lock": threading.Lock()})
    httpd = ThreadingHTTPServer((HOST, port), handler)
    httpd.daemon_threads = True

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    actual = httpd.server_address[1]
    _write_state(state, {"pid": os.getpid(), "port": actual, "url": f"http://{HOST}:{actual}/"})
    sys.stderr.write(f"local TSA listening on {HOST}:{actual}, files in {files.directory}\n")
    sys.stderr.flush()
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(state.read_text())["pid"] == os.getpid():
                state.unlink()


def _read_state(state: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(state.read_text())
        return {"pid": int(d["pid"]), "port": int(d["port"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_tsa(pid: int) -> bool:
    """Guard against pid reuse: only signal a process that is really a local TSA."""
    return cmdline_has(pid, _MODULE)


def _healthy(port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=timeout) as r:  # noqa: S310 - loopback
            return r.status == 200
    except OSError:
        return False


def start(directory: Path, port: int = 0, *, state_file: Path | None = None, timeout: float = 10.0) -> LocalTsa:
    """Start a detached local TSA serving `directory` and wait until it answers; reuse one already running."""
    from pipeline.custody.tsa_authority import ensure_authority

    files = ensure_authority(directory)  # here, not in the child, so its errors surface to the caller
    state = Path(state_file) if state_file else files.directory / STATE_FILE
    existing = _read_state(state)
    if existing and _alive(existing["pid"]) and _is_tsa(existing["pid"]) and _healthy(existing["port"]):
        return LocalTsa(files.directory, pid=existing["pid"], port=existing["port"])
    state.unlink(missing_ok=True)
    log = files.directory / "tsa.log"
    cmd = [sys.executable, "-m", _MODULE, "--dir", str(files.directory), "--port", str(port),
           "--state-file", str(state)]
    with open(log, "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
    track(proc)

    def ready() -> LocalTsa | None:
        st = _read_state(state)
        if st is not None and st["pid"] == proc.pid and _healthy(st["port"]):
            return LocalTsa(files.directory, pid=proc.pid, port=st["port"])
        return None

    return await_ready(proc, ready, timeout=timeout, log=log, what="local TSA", error=LocalTsaError)


def stop(directory: Path, *, state_file: Path | None = None) -> bool:
    """Stop the local TSA of this directory; False if none was running."""
    state = Path(state_file) if state_file else Path(directory).resolve() / STATE_FILE
    st = _read_state(state)
    if st is None or not _alive(st["pid"]):
        state.unlink(missing_ok=True)
        return False
    if not _is_tsa(st["pid"]):
        raise LocalTsaError(f"pid {st['pid']} in {state} is not a local TSA (stale file?); remove the file by hand "
                            "after checking")
    _kill(st["pid"])
    state.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, type=Path, help="keys, certificates and openssl config (created once)")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--state-file", type=Path, help=f"where to write pid and port (default DIR/{STATE_FILE})")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.dir, args.port, args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())

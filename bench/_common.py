"""Shared bench helpers: a throwaway embedded stack, incompressible data, cached test footage, and timing a
fresh process (wall time and its own peak RSS)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

CUSTODY = str(Path(sys.executable).parent / "custody")
CACHE = Path(os.environ.get("CUSTODY_BENCH_CACHE") or Path.home() / ".cache" / "custody-bench")


@contextlib.contextmanager
def temp_stack(prefect: bool = False) -> Iterator[Path]:
    """A fresh CUSTODY_HOME with its own running S3 server (and Prefect server with `prefect`), removed
    afterwards."""
    with tempfile.TemporaryDirectory(prefix="custody-bench-") as d:
        home = Path(d) / "home"
        os.environ.setdefault("CUSTODY_ACTOR", "bench")  # every custody event names who acted
        env = {**os.environ, "CUSTODY_HOME": str(home)}
        subprocess.run([CUSTODY, "stack", "up", "--prefect" if prefect else "--no-prefect"], env=env, check=True,
                       capture_output=True)
        old = os.environ.get("CUSTODY_HOME")
        os.environ["CUSTODY_HOME"] = str(home)
        try:
            yield home
        finally:
            subprocess.run([CUSTODY, "stack", "down"], env=env, capture_output=True)
            if old is None:
                os.environ.pop("CUSTODY_HOME", None)
            else:
                os.environ["CUSTODY_HOME"] = old


def write_random(path: Path, size: int) -> str:
    """Incompressible file of `size` bytes; returns its SHA-256."""
    block = os.urandom(8 * 1024 * 1024)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        done = 0
        i = 0
        while done < size:
            chunk = (i.to_bytes(8, "big") + block)[: min(len(block), size - done)]
            f.write(chunk)
            h.update(chunk)
            done += len(chunk)
            i += 1
    return h.hexdigest()


def print_json_line(figures: dict) -> None:
    print(json.dumps(figures, sort_keys=True))


def cached_footage(name: str, ffmpeg_args: list[str]) -> Path:
    """Footage made once by `ffmpeg ARGS out.mp4` and kept under CACHE by a hash of the arguments (rendering
    a minute of 1080p mandelbrot takes ~2 minutes here; the bench's figures do not include it)."""
    digest = hashlib.sha256(json.dumps(ffmpeg_args).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{digest}.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", *ffmpeg_args, str(tmp)], check=True)
        tmp.replace(path)
    return path


class Timed(NamedTuple):
    seconds: float  # wall
    maxrss_kb: int  # the command's peak RSS (its command-server child's, when the server ran it)
    stdout: str
    cpu: float  # user + system seconds of the process, the children it waited for and its server child
    after_s: float = 0.0  # how long its server child went on after the launcher returned (its log round)


def _commands_log(env: dict[str, str] | None) -> Path | None:
    home = (env if env is not None else os.environ).get("CUSTODY_HOME")
    return Path(home) / "stack" / "commands.log" if home else None


def run_timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Timed:
    """Run a fresh process; wall time, its peak RSS, stdout and CPU time (with what its command server child
    used, if it handed the command to one). Raises on a non-zero exit."""
    import time

    log = _commands_log(env)
    mark = log.stat().st_size if log is not None and log.exists() else 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=errf, env=env, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        out.seek(0)
        errf.seek(0)
        if code != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed with exit code {code}:\n{errf.read().decode()[-2000:]}")
        # what its command-server child used (only `custody` hands a command to one)
        served = _served_records(log, mark, env) if log is not None and cmd[0] == CUSTODY else []
        cpu = usage.ru_utime + usage.ru_stime + sum(e["utime"] + e["stime"] for e in served)
        after = max([0.0, *(e["wall_s"] - elapsed for e in served)])
        return Timed(elapsed, max([usage.ru_maxrss, *(e["maxrss_kb"] for e in served)]), out.read().decode(), cpu,
                     round(after, 3))


def _served_records(log: Path, mark: int, env: dict[str, str] | None) -> list[dict]:
    """The server's record of the command just run, once it is written: a served command that appended events
    reports its exit and then finishes its transparency-log round, so the record (written when the server
    reaps it) can come after the launcher returned. Waiting here, outside the timed span, also keeps that round
    out of the next measurement. None for a command that ran in its own process."""
    import time

    from pipeline.cli.command_control import records
    from pipeline.cli.finishing import settle

    if (env if env is not None else os.environ).get("CUSTODY_COMMAND_SERVER") == "0":
        return []
    settle(log.parent)
    deadline = time.monotonic() + 2.0  # the server logs a reaped child within milliseconds
    while not (got := records(log, mark)) and time.monotonic() < deadline:
        time.sleep(0.005)  # polling the log for the record, to a deadline
    return got

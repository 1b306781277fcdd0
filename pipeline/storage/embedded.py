"""Where this home's embedded S3 server listens: the state file `custody stack up` writes.

Lives in the storage package because the client needs it to find its endpoint;
`pipeline.ops.stack` starts and stops the server and writes the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.ops.processes import alive as pid_alive
from pipeline.settings import Settings

__all__ = ["StackState", "pid_alive", "read_state", "state_path"]


@dataclass
class StackState:
    pid: int
    endpoint: str
    ports: dict[str, int]
    data_dir: str
    started_at: float


def state_path(settings: Settings) -> Path:
    return settings.stack_dir / "s3.json"


def read_state(settings: Settings) -> StackState | None:
    """The running embedded server of this home, or None."""
    path = state_path(settings)
    if not path.exists():
        return None
    state = StackState(**json.loads(path.read_text()))
    return state if pid_alive(state.pid) else None

"""Shared bench helpers: a throwaway embedded stack and incompressible data."""

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

CUSTODY = str(Path(sys.executable).parent / "custody")


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

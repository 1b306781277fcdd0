"""Key files: created on first use, mode 0600, never printed."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def _write_new(path: Path, data: bytes, flag: int) -> None:
    """Open `path` 0600 with O_CREAT | `flag` (O_TRUNC or O_EXCL), write all of `data`, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable only by its owner, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    _write_new(tmp, data, os.O_TRUNC)
    os.replace(tmp, path)


def create_private(path: Path, data: bytes) -> bool:
    """Create `path` (0600) holding `data` unless it exists; False when another process got there first.

    Written to a private temporary name and linked into place, so two processes creating the same key at
    once never both believe their own: the loser reads the winner's. A file system without hard links gets
    the file created exclusively in place instead."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write_new(tmp, data, os.O_EXCL)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            _write_new(path, data, os.O_EXCL)
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)


def embedded_credentials(secrets_dir: Path) -> tuple[str, str]:
    """Access/secret key for the embedded S3 server, generated once per home."""
    path = secrets_dir / "s3.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["access_key"], data["secret_key"]
    access = "CUSTODY" + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    write_private(path, json.dumps({"access_key": access, "secret_key": secret}).encode())
    return access, secret

"""Which files on a card or in a folder are offered as originals."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UsageError


def walk_files(paths: list[Path]) -> list[Path]:
    """Expand directories (sorted, symlinks not followed) into files; refuse what isn't there."""
    out: list[Path] = []
    for p in paths:
        if p.is_symlink() and p.is_dir():
            raise UsageError(f"{p} is a symlink to a directory; give the real path")
        if p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs.sort()
                out.extend(Path(root) / f for f in sorted(files) if (Path(root) / f).is_file())
        elif p.is_file():
            out.append(p)
        elif not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        else:
            raise UsageError(f"{p}: not a regular file")
    if not out:
        raise UsageError("no files to ingest")
    return out

"""`TOOL -version`, remembered per binary: every event records the ffmpeg/ffprobe version that made it.

Running `ffprobe -version` costs ~50 ms, paid by each command before this. The answer is kept in
`$CUSTODY_HOME/cache/tool-versions.json` under the binary's resolved path, inode, size and modification
time, so a replaced or upgraded binary is asked again; a missing or unreadable cache is simply rebuilt.
"""

from __future__ import annotations

import json
import os
import subprocess

from pipeline.settings import default_home


def _identity(exe: str) -> str:
    real = os.path.realpath(exe)
    st = os.stat(real)
    return f"{real}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"


def version_output(exe: str, timeout: float = 10.0) -> str:
    """The stdout of `exe -version` (raises OSError / subprocess errors as running it would)."""
    ident = _identity(exe)
    cache = default_home() / "cache" / "tool-versions.json"
    try:
        loaded = json.loads(cache.read_text())
    except (OSError, ValueError):
        loaded = None
    known = {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}
    if ident in known:
        return known[ident]
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=timeout, check=True).stdout
    known[ident] = out
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".tool-versions.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home still works, asking each time
    return out


def first_line(exe: str) -> str:
    """`ffmpeg version 5.1.6-0+deb12u1 Copyright ...`: what events record."""
    lines = version_output(exe).splitlines()
    return lines[0].strip() if lines else "unknown"


"""What the command server checks before it serves a launcher: that the code in memory is the code on disk, and
that the launcher's module search path finds the same code the server has loaded (pure but for stat/listdir)."""

from __future__ import annotations

import contextlib
import os
import sys


def code_files() -> dict[str, tuple[int, int]]:
    """Every loaded module file with (mtime_ns, size): changed code must not run from stale memory."""
    out: dict[str, tuple[int, int]] = {}
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if isinstance(path, str) and path not in out:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                out[path] = (st.st_mtime_ns, st.st_size)
    return out


def code_changed(files: dict[str, tuple[int, int]]) -> bool:
    for path, sig in files.items():
        try:
            st = os.stat(path)
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size) != sig:
            return True
    return False


def loaded_top_level() -> dict[str, str]:
    """Top-level module name -> the real path of the file it was loaded from."""
    out = {}
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if "." not in name and isinstance(path, str):
            out[name] = os.path.realpath(path)
    return out


def _top_level_names(folder: str) -> set[str]:
    try:
        entries = os.listdir(folder)
    except OSError:
        return set()
    return {e.split(".", 1)[0] if e.endswith((".py", ".so", ".pyc")) else e for e in entries}


def path_conflict(theirs: list[str], mine: list[str], loaded: dict[str, str]) -> str:
    """Why search path `theirs` would find other code than `mine` did for the `loaded` modules ('' if not):
    a folder only it searches holding a loaded module's name, or a folder only `mine` searches that a module
    was loaded from."""
    real = {d: os.path.realpath(d) for d in {*theirs, *mine}}
    mine_real, theirs_real = {real[d] for d in mine}, {real[d] for d in theirs}
    for d in theirs:
        if real[d] in mine_real:
            continue
        for name in _top_level_names(d) & loaded.keys():
            if not loaded[name].startswith(real[d] + os.sep):
                return f"module search path: {d} holds another {name}"
    for d in mine:
        if real[d] in theirs_real:
            continue
        for name, file in loaded.items():
            if file.startswith(real[d] + os.sep):
                return f"module search path: {name} is loaded from {d}, which the launcher does not search"
    return ""

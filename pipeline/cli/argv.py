"""The command word of a `custody` command line: shared by the launcher (standard library only) and the app."""

from __future__ import annotations


def command_named(argv: list[str]) -> str | None:
    """The first word that is not the global `--actor X` option (None if there is none)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--actor":
            i += 2
        elif a.startswith("--actor="):
            i += 1
        else:
            return a
    return None

"""Output conventions: `--json` prints exactly one JSON document on stdout;
human text and progress go to stderr so they never corrupt it.

Text from the evidence (officer names, descriptions, file names) is printed as it is: `say` writes it
verbatim, and `say_styled` escapes the values it fills into its markup, so a description such as
"bag [/] seal" or ":police_car:" is never read as rich markup or an emoji code.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@cache
def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def __getattr__(name: str) -> Any:
    """`err`, the stderr console for progress bars and tables, made on first use (rich's console costs ~15
    ms to import, which a listing command need not pay)."""
    if name == "err":
        return _console()
    raise AttributeError(name)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(msg: str) -> None:
    """One line of plain text on stderr, verbatim (through rich's proxy while a progress bar runs)."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def say_styled(markup: str, *values: object) -> None:
    """A line whose literal parts are rich markup; each `{}` is filled with a value, escaped."""
    from rich.markup import escape

    _console().print(markup.format(*(escape(str(v)) for v in values)))

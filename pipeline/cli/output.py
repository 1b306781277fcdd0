"""Output conventions: `--json` prints exactly one JSON document on stdout;
human text and progress go to stderr so they never corrupt it."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(msg: str) -> None:
    err.print(msg)

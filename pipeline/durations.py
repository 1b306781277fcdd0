"""Human durations on the command line: `30s`, `1.5s`, `500ms`, `2m`, `1h`, or plain seconds."""

from __future__ import annotations

import re

from pipeline.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*", text or "")
    if not m:
        raise UsageError(f"bad duration {text!r}: use e.g. 30s, 1.5s, 500ms, 2m or 1h")
    value = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if value <= 0:
        raise UsageError(f"duration {text!r} must be positive")
    return value

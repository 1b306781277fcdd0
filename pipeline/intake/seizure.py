"""Seizure facts an officer records with field uploads: when, where, from which device."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from pipeline.intake.clock import parse_time
from pipeline.text import clean_human_text


def _clean(value: str | None, what: str, max_len: int = 200) -> str | None:
    if value is None:
        return None
    return clean_human_text(value, what, max_len) or None


def seizure_parameters(seized_at: str | None, location: str | None, device: str | None) -> dict[str, Any]:
    """Validated seizure facts for the custody event; absent ones are omitted."""
    out: dict[str, Any] = {}
    if seized_at:
        out["seized_at"] = parse_time(seized_at, "seized-at").astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if (loc := _clean(location, "location")) is not None:
        out["location"] = loc
    if (dev := _clean(device, "device")) is not None:
        out["device"] = dev
    return out

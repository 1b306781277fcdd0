"""The custody event format: pure functions, no I/O.

An independent examiner can re-implement this module from the README:
canonical JSON (UTF-8, keys sorted, no insignificant whitespace, integers
only — non-integer numbers are stored as decimal strings), SHA-256 of those
bytes is the event hash, Ed25519 signs the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
from datetime import UTC, datetime
from typing import Any

SCHEMA = "custody.event/1"
GENESIS = "0" * 64


def normalise(value: Any) -> Any:
    """Make a value canonical-JSON safe: floats become decimal strings, tuples lists."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return repr(value)
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def event_hash(event: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> str:
    return iso(datetime.now(UTC))


def build_event(*, case: dict[str, str], exhibit: dict[str, str], seq: int, prev_hash: str, actor: dict[str, str],
                action: str, objects: list[dict[str, Any]], tools: dict[str, str], parameters: dict[str, Any],
                details: dict[str, Any] | None = None, time: str | None = None) -> dict[str, Any]:
    return normalise({
        "schema": SCHEMA,
        "case": case,
        "exhibit": exhibit,
        "seq": seq,
        "time": time or utcnow(),
        "actor": actor,
        "action": action,
        "objects": objects,
        "tools": tools,
        "parameters": parameters,
        "details": details or {},
        "host": {"name": socket.gethostname()},
        "prev_hash": prev_hash,
    })


def envelope(event: dict[str, Any], signature_b64: str, key_id: str) -> dict[str, Any]:
    """The stored document: the event, its hash and its signature."""
    return {"event": event, "event_sha256": event_hash(event),
            "signature": {"alg": "ed25519", "key_id": key_id, "value": signature_b64}}

"""Which time-stamp authorities this home uses and trusts (settings, or the embedded stack's local TSA).

Kept apart from `tsa` (the RFC 3161 protocol) so the protocol code stays free of settings and homes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography import x509

from pipeline.custody.tsa import load_certificates
from pipeline.errors import UsageError

LOCAL_TSA_DIR = "tsa"


def local_tsa_dir(settings: Any) -> Path:
    return Path(settings.stack_dir) / LOCAL_TSA_DIR


def local_tsa_url(settings: Any) -> str | None:
    """The URL the embedded stack's local TSA listens on, if `custody stack up` started one."""
    try:
        return str(json.loads((local_tsa_dir(settings) / "tsa.json").read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tsa_urls(settings: Any) -> list[str]:
    if settings.tsa_urls:
        return list(settings.tsa_urls)
    url = local_tsa_url(settings)
    return [url] if url else []


def tsa_root_paths(settings: Any, extra: list[Path] | None = None) -> list[Path]:
    """Trusted TSA roots: settings, `extra` (e.g. --tsa-root), and the CA of the local TSA this home runs."""
    paths = [Path(p) for p in settings.tsa_roots] + [Path(p) for p in extra or []]
    local = local_tsa_dir(settings) / "ca.pem"
    if local.exists():
        paths.append(local)
    return paths


def tsa_roots(settings: Any, extra: list[Path] | None = None) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for p in tsa_root_paths(settings, extra):
        try:
            out.extend(load_certificates(p))
        except OSError as exc:
            raise UsageError(f"trusted TSA root {p} cannot be read: {exc}") from None
    return out

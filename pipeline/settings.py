"""One typed settings object for every command, flow and service.

Values come from (highest first) environment variables `CUSTODY_*`, then
`$CUSTODY_HOME/settings.json`, then defaults. Secrets are `SecretStr` so they
never appear in reprs, logs or tracebacks.
"""

from __future__ import annotations

import ipaddress
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.errors import UsageError


def default_home() -> Path:
    return Path(os.environ.get("CUSTODY_HOME") or Path.home() / ".custody").expanduser().resolve()


class _HomeJsonSource(PydanticBaseSettingsSource):
    """Reads $CUSTODY_HOME/settings.json when present."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = default_home() / "settings.json"
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read settings file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"settings file {path} must hold a JSON object")
        return data


class Settings(BaseSettings):
    """Everything configurable; paths derive from `home`."""

    model_config = SettingsConfigDict(env_prefix="CUSTODY_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    # External S3 endpoint (MinIO in production). Empty: use the embedded SeaweedFS stack.
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str | None = None
    s3_secure: bool | None = None  # None: TLS unless the endpoint is on loopback
    s3_ca_file: Path | None = None
    bucket_prefix: str = "custody"
    retention_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"
    retention_days: int = Field(default=2555, ge=1)  # seven years
    sse: bool = True  # request server-side encryption on every put
    part_size_mb: int = Field(default=16, ge=5, le=512)
    upload_threads: int = Field(default=3, ge=1, le=16)
    actor: str | None = None
    trusted_keys: list[Path] = Field(default_factory=list)
    spool_cap_gb: float = 50.0
    # memory for one frame extraction's local workers; caps the default worker count (not footage length).
    # Same default as pipeline.frames.executor.DEFAULT_MEMORY_MB, which stays importable without settings.
    frames_memory_mb: int = Field(default=400, ge=200)
    prefect_api_url: str | None = None
    # chunk size the portal offers browsers for resumable uploads (small enough to resend cheaply after a drop)
    portal_chunk_kb: int = Field(default=4096, ge=16, le=65536)
    # PostgreSQL server binaries for a local Prefect database (Debian keeps initdb/pg_ctl off PATH)
    pg_bin: Path | None = None
    # RFC 3161 time-stamp authorities, tried in order (production: real TSAs). Empty: the embedded stack's local
    # TSA, when `custody stack up` runs one. Roots: the TSAs' CA certificates (PEM) this home trusts; the local
    # TSA's own CA is added for the home that runs it. A verifier trusts no TSA it was not given.
    tsa_urls: list[str] = Field(default_factory=list)
    tsa_roots: list[Path] = Field(default_factory=list)
    # how often (seconds) the newest tree head is time-stamped while events arrive; and every bundle's head is
    tsa_interval_s: int = Field(default=60, ge=1, le=3600)
    # how much earlier than the time-stamp of the first tree head that includes it an event may claim to be
    # (seconds); also how long an event may wait to be logged before verify calls it missing from the log
    time_tolerance_s: int = Field(default=300, ge=1)
    # how often (seconds) appenders fold pending chain heads into the transparency log's tree
    tlog_interval_s: float = Field(default=1.0, ge=0.05, le=60)
    # an external signer instead of the file key: argv of a program that signs stdin (e.g. a PKCS#11 tool)
    # and the public key (PEM) of the key it holds
    signer_command: list[str] | None = None
    signer_public_key: Path | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):  # type: ignore[override]
        return (init_settings, env_settings, _HomeJsonSource(settings_cls))

    @field_validator("bucket_prefix")
    @classmethod
    def _prefix_ok(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,40}", v):
            raise ValueError("bucket_prefix must be 2-41 lowercase letters, digits or hyphens")
        return v

    # ---- derived paths -------------------------------------------------
    @cached_property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @cached_property
    def signing_key_path(self) -> Path:
        return self.keys_dir / "signing-ed25519.pem"

    @cached_property
    def stack_dir(self) -> Path:
        return self.home / "stack"

    @cached_property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @cached_property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def embedded(self) -> bool:
        return not self.s3_endpoint

    def bucket(self, role: Literal["originals", "derived", "custody", "bundles"]) -> str:
        return f"{self.bucket_prefix}-{role}"

    @property
    def buckets(self) -> dict[str, str]:
        return {r: self.bucket(r) for r in ("originals", "derived", "custody", "bundles")}  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_endpoint(endpoint: str) -> tuple[str, bool | None]:
    """Accept `host:port` or `http(s)://host:port`; return host:port and scheme-implied TLS."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.path not in ("", "/") or not parts.hostname:
            raise UsageError(f"S3 endpoint {endpoint!r} must be scheme://host[:port] with no path")
        return parts.netloc, parts.scheme == "https"
    return endpoint, None


def debug_enabled() -> bool:
    """CUSTODY_DEBUG=1 shows tracebacks; read from the environment alone, since it must work when settings fail."""
    return os.environ.get("CUSTODY_DEBUG", "") not in ("", "0")


def load_settings(**overrides: Any) -> Settings:
    """Build settings; raises UsageError with the offending field on bad values."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid settings: {msgs}") from None

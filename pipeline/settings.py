"""One typed settings object for every command, flow and service.

Values come from (highest first) keyword overrides, environment variables `CUSTODY_*` (names
case-insensitive; list values as JSON), then `$CUSTODY_HOME/settings.json`, then defaults. Secrets are
`SecretStr` so they never appear in reprs, logs or tracebacks.

A dataclass with its own small validation rather than pydantic(-settings): every command loads settings,
and importing pydantic-settings cost ~0.1 s and pydantic ~0.05 s, together as much as the S3 client
itself (`bench/extract_cli.py` measures the light commands).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pipeline.errors import UsageError

ENV_PREFIX = "CUSTODY_"
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


class SecretStr:
    """A string that prints as stars; `get_secret_value()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_home() -> Path:
    return Path(os.environ.get("CUSTODY_HOME") or Path.home() / ".custody").expanduser().resolve()


def _home_json() -> dict[str, Any]:
    """$CUSTODY_HOME/settings.json when present."""
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


def _environment(names: dict[str, Any]) -> dict[str, Any]:
    env = {k.lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
    out: dict[str, Any] = {}
    for name, tp in names.items():
        raw = env.get(f"{ENV_PREFIX.lower()}{name}")
        if raw is None:
            continue
        inner = tp
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[list[...]]
            inner = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
        if typing.get_origin(inner) is list:  # structured values come as JSON, as pydantic-settings took them
            try:
                out[name] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UsageError(f"invalid settings: {ENV_PREFIX}{name.upper()} must be JSON ({exc})") from None
        else:
            out[name] = raw
    return out


def _coerce(tp: Any, value: Any) -> Any:
    """`value` (from JSON, the environment or Python) as type `tp`; ValueError says what is wrong."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"must be one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list")
        return [_coerce(args[0], v) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("must be true or false")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be a whole number")
        try:
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
    if tp is SecretStr:
        return value if isinstance(value, SecretStr) else SecretStr(str(value))
    if tp is Path:
        if not isinstance(value, str | os.PathLike):
            raise ValueError("must be a path")
        return Path(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value
    raise TypeError(f"no coercion for {tp}")  # pragma: no cover - a field type this module does not handle


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"range": (lo, hi)}


@dataclass
class Settings:
    """Everything configurable; paths derive from `home`. Build it with `load_settings()`."""

    home: Path = field(default_factory=default_home)
    # External S3 endpoint (MinIO in production). Empty: use the embedded SeaweedFS stack.
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = field(default=None, repr=False)
    s3_secret_key: SecretStr | None = field(default=None, repr=False)
    s3_region: str | None = None
    s3_secure: bool | None = None  # None: TLS unless the endpoint is on loopback
    s3_ca_file: Path | None = None
    bucket_prefix: str = "custody"
    retention_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"
    retention_days: int = field(default=2555, metadata=_range(1))  # seven years
    sse: bool = True  # request server-side encryption on every put
    part_size_mb: int = field(default=16, metadata=_range(5, 512))
    upload_threads: int = field(default=3, metadata=_range(1, 16))
    actor: str | None = None
    trusted_keys: list[Path] = field(default_factory=list)
    spool_cap_gb: float = 50.0
    # memory for one frame extraction's local workers; caps the default worker count (not footage length).
    # Same default as pipeline.frames.executor.DEFAULT_MEMORY_MB, which stays importable without settings.
    frames_memory_mb: int = field(default=400, metadata=_range(200))
    prefect_api_url: str | None = None
    # chunk size the portal offers browsers for resumable uploads (small enough to resend cheaply after a drop)
    portal_chunk_kb: int = field(default=4096, metadata=_range(16, 65536))
    # PostgreSQL server binaries for a local Prefect database (Debian keeps initdb/pg_ctl off PATH)
    pg_bin: Path | None = None
    # content credentials (C2PA) on shared stills and clips: the force's signing chain (end-entity first), key and
    # root(s); all unset: a local C2PA CA under <home>/keys/c2pa (pipeline.provenance.credentials)
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    c2pa_trust_anchors: Path | None = None
    # put content credentials on stills, contact sheets and clips as they are stored (off: plain files)
    content_credentials: bool = True
    # RFC 3161 time-stamp authorities, tried in order (production: real TSAs). Empty: the embedded stack's local
    # TSA, when `custody stack up` runs one. Roots: the TSAs' CA certificates (PEM) this home trusts; the local
    # TSA's own CA is added for the home that runs it. A verifier trusts no TSA it was not given.
    tsa_urls: list[str] = field(default_factory=list)
    tsa_roots: list[Path] = field(default_factory=list)
    # how often (seconds) the newest tree head is time-stamped while events arrive; and every bundle's head is
    tsa_interval_s: int = field(default=60, metadata=_range(1, 3600))
    # how much earlier than the time-stamp of the first tree head that includes it an event may claim to be
    # (seconds); also how long an event may wait to be logged before verify calls it missing from the log
    time_tolerance_s: int = field(default=300, metadata=_range(1))
    # how often (seconds) appenders fold pending chain heads into the transparency log's tree
    tlog_interval_s: float = field(default=1.0, metadata=_range(0.05, 60))
    # an external signer instead of the file key: argv of a program that signs stdin (e.g. a PKCS#11 tool)
    # and the public key (PEM) of the key it holds
    signer_command: list[str] | None = None
    signer_public_key: Path | None = None
    # `custody stack up` also starts a warm command server that has imported the CLI's libraries once, so each
    # command starts in milliseconds instead of ~1 s (pipeline.cli.command_server). Off: every command imports
    # its own; CUSTODY_COMMAND_SERVER=0 on one command runs just that one in its own process.
    command_server: bool = True

    def __post_init__(self) -> None:
        """Coerce and check every field (values from the environment arrive as text); ValueError names the
        offending field."""
        hints = _hints()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                value = _coerce(hints[f.name], value)
                lo, hi = f.metadata.get("range", (None, None))
                if lo is not None and value < lo:
                    raise ValueError(f"must be at least {lo}")
                if hi is not None and value > hi:
                    raise ValueError(f"must be at most {hi}")
            except ValueError as exc:
                raise ValueError(f"{f.name}: {exc}") from None
            object.__setattr__(self, f.name, value)
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,40}", self.bucket_prefix):
            raise ValueError("bucket_prefix: must be 2-41 lowercase letters, digits or hyphens")
        self.home = self.home.expanduser()

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


def _hints() -> dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(Settings, globalns={**globals(), "SecretStr": SecretStr})
    return _HINTS


_HINTS: dict[str, Any] | None = None


def load_settings(**overrides: Any) -> Settings:
    """Build settings; raises UsageError with the offending field on bad values."""
    names = _hints()
    values = {k: v for k, v in {**_home_json(), **_environment(names), **overrides}.items() if k in names}
    try:
        return Settings(**values)
    except ValueError as exc:
        raise UsageError(f"invalid settings: {exc}") from None

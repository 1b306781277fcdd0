"""One redaction rule for everything that is kept or printed: audit entries, logs, error messages.

A secret is either *named* (a query parameter or header whose name says it holds a credential:
`access_token`, `token`, `X-Amz-Signature`, `Authorization`, `password`...) or *recognisable*
(our API tokens `cust_...`, a `Bearer ...` credential, the password in `scheme://user:pass@host`,
an AWS signature or credential inside any URL). Named values are replaced whatever they look
like; recognisable ones wherever they appear in free text, so a token pasted into the wrong
parameter, a presigned URL inside an exception message or a URL with a password in a log line is
masked the same way. The audit trail keeps *that* a credential was sent, never the credential.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

MASK = "[REDACTED]"

#: names (lower case, `-` and `_` removed) whose values are credentials
_SECRET_NAMES = frozenset({
    "accesstoken", "token", "idtoken", "refreshtoken", "authtoken", "apitoken", "apikey", "secret",
    "secretkey", "clientsecret", "password", "passwd", "pwd", "pass", "signature", "sig", "xamzsignature",
    "xamzcredential", "xamzsecuritytoken", "authorization", "proxyauthorization", "cookie", "setcookie",
    "xcsrftoken", "csrf", "csrftoken", "sessionid", "xapikey", "xamzsecretkey", "awssecretaccesskey",
    "awssessiontoken", "credentials", "custodysession", "custodysignin",
})

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"cust_[A-Za-z0-9_\-]{4,}"), f"cust_{MASK}"),  # our API tokens (cust_ + urlsafe base64)
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), rf"\1 {MASK}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@\s/]*@"), rf"\1:{MASK}@"),  # scheme://user:pass@
    (re.compile(r"(?i)((?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|access_token|token|"
                r"password|secret)=)[^&\s\"'<>]+"), rf"\1{MASK}"),
)


def _norm(name: str) -> str:
    return re.sub(r"[-_\s]", "", name).lower()


def is_secret_name(name: str) -> bool:
    return _norm(name) in _SECRET_NAMES


def redact_text(text: str) -> str:
    """Free text (messages, log lines, tracebacks) with every recognisable credential masked."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_query(query: str | bytes) -> str:
    """A query string with credential-named parameters (and recognisable credentials anywhere) masked.

    Parameter order and names are kept, so the audit entry still says what was asked for.
    """
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    if not query:
        return ""
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        shown = MASK if is_secret_name(name) and value else redact_text(value)
        parts.append(f"{quote(name, safe='')}={quote(shown, safe=' /:@[]-_.~')}")
    return redact_text("&".join(parts))


def redact_headers(headers: Mapping[str, str] | list[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (MASK if is_secret_name(k) else redact_text(v)) for k, v in items}


def redact_value(value: Any, _key: str = "") -> Any:
    """A JSON-like value with secrets masked: credential-named keys, and recognisable credentials in strings."""
    if isinstance(value, str):
        return MASK if _key and is_secret_name(_key) and value else redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter masking credentials in a record's message, its arguments and its traceback.

    String arguments are redacted in place (not merged into the message) because some formatters,
    uvicorn's access log among them, unpack `record.args` themselves.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = redact_value(dict(record.args))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def install_log_redaction(*logger_names: str) -> None:
    """Attach the filter to the named loggers' handlers and the loggers themselves (idempotent).

    Filters on a logger apply to records logged *there*; handler filters catch records propagated from
    children, so both are set.
    """
    names = logger_names or ("", "uvicorn", "uvicorn.access", "uvicorn.error")
    for name in names:
        lg = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in lg.filters):
            lg.addFilter(RedactingFilter())
        for h in lg.handlers:
            if not any(isinstance(f, RedactingFilter) for f in h.filters):
                h.addFilter(RedactingFilter())


def redacting_handler(level: int = logging.WARNING, fmt: str = "%(message)s") -> logging.Handler:
    """A stderr handler that masks credentials, for the root logger of the CLI and the server.

    Records propagated from any module's logger pass the handler's filters, so one handler on the root
    covers every logger that has no handler of its own.
    """
    import sys

    h = logging.StreamHandler(sys.stderr)
    h.setLevel(level)
    h.setFormatter(logging.Formatter(fmt))
    h.addFilter(RedactingFilter())
    return h


def configure_logging(level: int = logging.WARNING, fmt: str = "%(message)s") -> None:
    """Root logging through `redacting_handler` (one per process; a second call lowers its level, new format)."""
    root = logging.getLogger()
    mine = [h for h in root.handlers if any(isinstance(f, RedactingFilter) for f in h.filters)]
    if mine:
        for h in mine:
            h.setLevel(min(h.level, level))
            h.setFormatter(logging.Formatter(fmt))
    else:
        root.addHandler(redacting_handler(level, fmt))
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)

"""Downloads are inert: evidence is handed over as an attachment of a safe type, never rendered.

A seized card can hold an HTML page, an SVG with script, or a file that merely *sniffs* as HTML.
Served inline from an origin that shares the portal's cookies (the embedded S3 server is on the
same host), it would run as the portal. So every presigned link the API issues carries response
overrides, signed into the URL so nobody can strip them: `Content-Disposition: attachment` with
the sanitised original name, and a Content-Type from a short list of media types browsers only
ever display as media; anything else is `application/octet-stream`. Where we serve bytes
ourselves we add `X-Content-Type-Options: nosniff` (the API does on every response).
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from pipeline.evidence import safe_display_name

#: types a browser renders only as media (no script, no markup); everything else downloads as bytes
SAFE_TYPES = frozenset({
    "video/mp4", "video/quicktime", "video/mp2t", "video/x-msvideo", "video/webm", "video/x-matroska",
    "video/x-flv", "video/mpeg", "video/x-ms-asf", "image/jpeg", "image/png", "image/gif", "image/webp",
    "image/tiff", "image/heic", "image/avif", "audio/mpeg", "audio/mp4", "audio/wav", "application/zip",
})
OCTET = "application/octet-stream"


def safe_content_type(content_type: str | None) -> str:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base if base in SAFE_TYPES else OCTET


def content_disposition(name: str | None) -> str:
    """`attachment` with an ASCII fallback name and the exact (sanitised) name as RFC 5987 `filename*`."""
    shown = safe_display_name(name or "evidence")
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_"
                         for c in unicodedata.normalize("NFKD", shown)).strip() or "evidence"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(shown, safe='')}"


def inert_headers(name: str | None, content_type: str | None) -> dict[str, str]:
    """The response overrides every presigned evidence link carries (S3 `response-*` query parameters)."""
    return {"response-content-disposition": content_disposition(name),
            "response-content-type": safe_content_type(content_type),
            "response-cache-control": "private, no-store"}


def presigned_download(store: Any, bucket: str, key: str, version_id: str | None, ttl: timedelta,
                       name: str | None, content_type: str | None) -> str:
    """A short-lived presigned GET that downloads as an attachment of a safe type."""
    return store.presigned_get(bucket, key, version_id, ttl, response_headers=inert_headers(name, content_type))

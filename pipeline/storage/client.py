"""Building a minio client for the configured endpoint; TLS is mandatory off loopback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import minio
import urllib3
from minio import Minio
from minio import time as s3time

from pipeline.errors import StoreUnavailable, UsageError
from pipeline.secrets import embedded_credentials
from pipeline.settings import Settings, is_loopback, split_endpoint
from pipeline.storage.embedded import read_state

SDK_VERSION = str(minio.__version__)
# SeaweedFS's default; naming it saves the SDK a `GET ?location` round trip per bucket and process
EMBEDDED_REGION = "us-east-1"
UNSIGNED = "UNSIGNED-PAYLOAD"
#: headers whose digest of the body the server checks before storing it
BODY_DIGESTS = ("content-md5", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha256")


class Client(Minio):
    """The SDK's client, letting a request that carries a digest the server verifies (Content-MD5 or an
    `x-amz-checksum-*`) go with an unsigned payload over plain HTTP, as the SDK itself does over HTTPS.

    Over HTTP the SDK otherwise signs every body's SHA-256: a second full pass over each byte on our side
    and another on the server's, which on a 2-core host running the server costs ~10 % of upload
    throughput. The integrity check stays: the server refuses a body that does not match the digest.
    """

    def _build_headers(self, host: str, headers: dict[str, Any] | None = None, body: bytes | None = None,
                       creds: Any = None) -> tuple[dict[str, Any], datetime]:
        headers = headers if headers is not None else {}
        verified = any(k.lower() in BODY_DIGESTS for k in headers)
        if headers.get("x-amz-content-sha256") != UNSIGNED or not verified:
            headers.pop("x-amz-content-sha256", None)
            return super()._build_headers(host, headers, body, creds)
        headers["Host"] = host
        headers["User-Agent"] = self._user_agent
        if body:
            headers["Content-Length"] = str(len(body))
        if creds and creds.session_token:
            headers["X-Amz-Security-Token"] = creds.session_token
        date = s3time.utcnow()
        headers["x-amz-date"] = s3time.to_amz_date(date)
        return headers, date


def make_client(settings: Settings) -> Minio:
    """A minio client for the embedded server of this home, or the external endpoint in settings."""
    if settings.embedded:
        state = read_state(settings)
        if not state:
            raise StoreUnavailable(
                f"the embedded S3 server for CUSTODY_HOME={settings.home} is not running; "
                "start it with `custody stack up`")
        access, secret = embedded_credentials(settings.secrets_dir)
        return Client(state.endpoint, access, secret, secure=False, region=EMBEDDED_REGION)
    endpoint, scheme_tls = split_endpoint(settings.s3_endpoint or "")
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    secure = settings.s3_secure if settings.s3_secure is not None else (
        scheme_tls if scheme_tls is not None else not is_loopback(host))
    if not secure and not is_loopback(host):
        raise UsageError(f"refusing plain HTTP to non-loopback S3 endpoint {host}; use https:// "
                         "(evidence and keys must not cross the network in clear)")
    if not (settings.s3_access_key and settings.s3_secret_key):
        raise UsageError("CUSTODY_S3_ACCESS_KEY and CUSTODY_S3_SECRET_KEY must be set for an external endpoint")
    http = None
    if settings.s3_ca_file:
        http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(settings.s3_ca_file))
    return Client(endpoint, settings.s3_access_key.get_secret_value(),
                 settings.s3_secret_key.get_secret_value(), secure=secure,
                 region=settings.s3_region, http_client=http)


def endpoint_answers(endpoint: str, access: str, secret: str) -> bool:
    """Does an S3 server at `endpoint` (plain HTTP, loopback) accept these keys? For start-up polling."""
    try:
        Minio(endpoint, access, secret, secure=False).list_buckets()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False

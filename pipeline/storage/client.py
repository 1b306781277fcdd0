"""Building a minio client for the configured endpoint; TLS is mandatory off loopback."""

from __future__ import annotations

import minio
import urllib3
from minio import Minio

from pipeline.errors import StoreUnavailable, UsageError
from pipeline.secrets import embedded_credentials
from pipeline.settings import Settings, is_loopback, split_endpoint
from pipeline.storage.embedded import read_state

SDK_VERSION = str(minio.__version__)
# SeaweedFS's default; naming it saves the SDK a `GET ?location` round trip per bucket and process
EMBEDDED_REGION = "us-east-1"


def make_client(settings: Settings) -> Minio:
    """A minio client for the embedded server of this home, or the external endpoint in settings."""
    if settings.embedded:
        state = read_state(settings)
        if not state:
            raise StoreUnavailable(
                f"the embedded S3 server for CUSTODY_HOME={settings.home} is not running; "
                "start it with `custody stack up`")
        access, secret = embedded_credentials(settings.secrets_dir)
        return Minio(state.endpoint, access, secret, secure=False, region=EMBEDDED_REGION)
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
    return Minio(endpoint, settings.s3_access_key.get_secret_value(),
                 settings.s3_secret_key.get_secret_value(), secure=secure,
                 region=settings.s3_region, http_client=http)


def endpoint_answers(endpoint: str, access: str, secret: str) -> bool:
    """Does an S3 server at `endpoint` (plain HTTP, loopback) accept these keys? For start-up polling."""
    try:
        Minio(endpoint, access, secret, secure=False).list_buckets()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False

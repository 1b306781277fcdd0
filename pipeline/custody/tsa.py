"""RFC 3161 trusted time: ask a time-stamp authority to sign a SHA-256 digest, and check its token offline.

A time-stamp token proves that a digest (here: of a signed tree head) existed no later than the token's
genTime, on the word of a TSA the operator does not control. `request_timestamp` tries the TSA URLs in order
and accepts the first answer that fully verifies; `verify_token` is the same check for a bundle recipient,
with no network: status granted, SHA-256 message imprint equal to the digest, nonce (when known) equal to
the one sent, CMS signature valid, signer certificate chaining to a trusted CA at genTime and carrying the
critical extendedKeyUsage id-kp-timeStamping. Parsing and the signature check are `rfc3161-client`'s
(Trail of Bits, used by sigstore); the request is built here (`der`) because that library only time-stamps
a message it hashes itself and we hold just the digest, and `der` puts a token's certificates in DER order
before that library's strict parser sees them (see der.py for why that is safe).
Every certificate given as a root is a trust anchor: list a TSA's intermediate CA there only if you trust it.

Checking a token by hand (token.tsr is the DER TimeStampToken, ca.pem the TSA's root, tsa.pem its
certificate; the digest is the hex SHA-256 that was time-stamped):

    openssl ts -verify -digest <hex> -in token.tsr -token_in -CAfile ca.pem -untrusted tsa.pem
    openssl ts -reply -in token.tsr -token_in -text      # shows genTime, policy, serial, imprint
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import rfc3161_client
from cryptography import x509

from pipeline.custody import der
from pipeline.errors import InfrastructureError, IntegrityError, UsageError

if TYPE_CHECKING:
    import urllib3

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
MAX_REPLY = 1 << 20  # a token is a few KiB; anything near this is not one


class TsaUnavailable(InfrastructureError):
    """No configured TSA returned a valid time-stamp; the message lists each URL and why."""


class TimestampInvalid(IntegrityError):
    """A time-stamp token does not prove what it is meant to (wrong digest, untrusted signer, bad signature...)."""


@dataclass(frozen=True)
class Timestamp:
    """A verified token: `token` is the DER TimeStampToken (CMS ContentInfo) to store beside what it stamps."""

    gen_time: datetime
    token: bytes
    serial: int
    tsa_url: str


def build_request(digest: bytes, nonce: int) -> bytes:
    """DER TimeStampReq (RFC 3161 §2.4.1): v1, SHA-256 imprint, nonce, certReq TRUE, no policy or extensions."""
    if len(digest) != 32:
        raise UsageError(f"a SHA-256 digest is 32 bytes, got {len(digest)}")
    if nonce < 0:
        raise UsageError("nonce must be non-negative")
    algorithm = der.tlv(0x30, der.oid(SHA256_OID) + b"\x05\x00")
    imprint = der.tlv(0x30, algorithm + der.tlv(0x04, digest))
    return der.tlv(0x30, der.integer(1) + imprint + der.integer(nonce) + b"\x01\x01\xff")


def _response_from_token(token: bytes) -> bytes:
    """Wrap a bare token as a granted TimeStampResp, the form rfc3161-client parses: the status is not signed."""
    return der.tlv(0x30, bytes.fromhex("3003020100") + der.sort_token_certificates(token))


def _split_response(reply: bytes) -> tuple[bytes, bytes | None]:
    """(status bytes, token bytes or None) of a TimeStampResp, to sort the token's certificates before parsing."""
    tag, body, end = der.read_element(reply, 0, len(reply))
    kids = der.children(reply, body, end)
    if tag != 0x30 or len(kids) not in (1, 2) or end != len(reply):
        raise ValueError("not a TimeStampResp")
    status = reply[kids[0][1]:kids[0][3]]
    return status, (reply[kids[1][1]:kids[1][3]] if len(kids) == 2 else None)


def load_certificates(pem: bytes | Path) -> list[x509.Certificate]:
    data = pem.read_bytes() if isinstance(pem, Path) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UsageError(f"not PEM certificates: {exc}") from exc
    return certs


def _check(resp: rfc3161_client.TimeStampResponse, digest: bytes, roots: Sequence[x509.Certificate],
           nonce: int | None) -> datetime:
    if not roots:
        raise UsageError("no trusted TSA root certificate given; a time-stamp is only as good as the CA you trust")
    if resp.status != rfc3161_client.PKIStatus.GRANTED:
        raise TimestampInvalid(f"TSA refused: status {resp.status} {' '.join(resp.status_string)}".rstrip())
    imprint = resp.tst_info.message_imprint
    if imprint.hash_algorithm.dotted_string != SHA256_OID:
        raise TimestampInvalid(f"token imprint uses hash {imprint.hash_algorithm.dotted_string}, not SHA-256")
    if imprint.message != digest:
        raise TimestampInvalid(f"token stamps digest {imprint.message.hex()}, not {digest.hex()}")
    if nonce is not None and resp.tst_info.nonce != nonce:
        raise TimestampInvalid("token nonce differs from the request's (a replayed or misrouted reply)")
    builder = rfc3161_client.VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(resp, digest)  # status, CMS signature, chain at genTime, critical EKU, imprint
    except rfc3161_client.VerificationError as exc:
        raise TimestampInvalid(f"token does not verify against the trusted TSA roots: {exc}") from exc
    return resp.tst_info.gen_time


def verify_token(token: bytes, digest: bytes, roots: Sequence[x509.Certificate], *,
                 nonce: int | None = None) -> datetime:
    """Offline check of a stored token for a SHA-256 digest; returns genTime (UTC) or raises TimestampInvalid."""
    try:
        resp = rfc3161_client.decode_timestamp_response(_response_from_token(token))
    except ValueError as exc:
        raise TimestampInvalid(f"not an RFC 3161 time-stamp token: {exc}") from exc
    return _check(resp, digest, roots, nonce)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"TSA URL {url!r} must be http:// or https:// with a host")


def request_timestamp(digest: bytes, urls: Sequence[str], roots: Sequence[x509.Certificate], *,
                      timeout: float = 10.0, client: urllib3.PoolManager | None = None) -> Timestamp:
    """Time-stamp a digest with the first TSA (in order) whose answer verifies; TsaUnavailable if none does.

    urllib3, which the S3 client has already loaded, carries the request: a command pays nothing more to
    time-stamp (httpx cost ~140 ms to import and set up, at the end of every command that appends)."""
    if not urls:
        raise UsageError("no TSA URL configured")
    for url in urls:
        _check_url(url)
    import urllib3

    failures: list[str] = []
    http = client or urllib3.PoolManager(timeout=urllib3.Timeout(timeout), retries=False)
    try:
        for url in urls:
            nonce = secrets.randbits(63)
            try:
                r = http.request("POST", url, body=build_request(digest, nonce), headers={"Content-Type": QUERY_TYPE},
                                 redirect=False, preload_content=False)
                try:
                    body = r.read(MAX_REPLY + 1)
                finally:
                    r.release_conn()
            except urllib3.exceptions.HTTPError as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            if r.status != 200:
                failures.append(f"{url}: HTTP {r.status}")
                continue
            if (r.headers.get("content-type") or "").split(";")[0].strip() != REPLY_TYPE or len(body) > MAX_REPLY:
                failures.append(f"{url}: answer is not an {REPLY_TYPE}")
                continue
            try:
                status, token = _split_response(body)
                resp = rfc3161_client.decode_timestamp_response(
                    body if token is None else der.tlv(0x30, status + der.sort_token_certificates(token)))
                gen_time = _check(resp, digest, roots, nonce)
            except ValueError as exc:
                failures.append(f"{url}: unreadable time-stamp reply: {exc}")
                continue
            except TimestampInvalid as exc:
                failures.append(f"{url}: {exc}")
                continue
            assert token is not None  # a granted, verified reply has one
            return Timestamp(gen_time, token, resp.tst_info.serial_number, url)  # as the TSA sent it
    finally:
        if client is None:
            http.clear()
    raise TsaUnavailable("no time-stamp authority gave a valid time-stamp: " + "; ".join(failures)
                         + ". Check the TSA URLs and trusted TSA roots in the settings, or start the local TSA")

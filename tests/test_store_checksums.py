"""How a single PUT proves what the server stored, against the real S3 server, through a relay that can play
a server which does not confirm checksums, or damage a body in transit.

A PUT carries the SHA-256 computed while reading (x-amz-checksum-sha256). The server refuses a body that does not
hash to it and echoes it; once it has echoed one, Content-MD5 (an MD5 pass over every byte of ours) is no longer
sent. A server that does not echo it keeps getting Content-MD5 and the ETag proof.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.errors import StorageError
from pipeline.secrets import embedded_credentials
from pipeline.storage import EvidenceStore
from pipeline.storage.client import EMBEDDED_REGION, Client
from pipeline.storage.embedded import read_state

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class Relay(ThreadingHTTPServer):
    """Forwards S3 requests unchanged to `upstream`; `echo=False` drops the checksum the server echoes,
    `damage=True` flips the last byte of every PUT body. `seen` holds each request's method and headers."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.echo, self.damage = True, False
        self.seen: list[tuple[str, dict[str, str]]] = []


class _Forward(BaseHTTPRequestHandler):
    server: Relay

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        self.server.seen.append((self.command, {k.lower(): v for k, v in headers.items()}))
        if self.server.damage and self.command == "PUT" and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        up = http.client.HTTPConnection(self.server.upstream, timeout=30)
        up.request(self.command, self.path, body=body, headers={**headers, "Content-Length": str(len(body))})
        res = up.getresponse()
        data = res.read()
        self.send_response(res.status)
        for k, v in res.getheaders():
            if k.lower() in HOP or (not self.server.echo and k.lower() == "x-amz-checksum-sha256"):
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        up.close()

    do_PUT = do_GET = do_HEAD = do_POST = do_DELETE = _relay

    def log_message(self, *_a: object) -> None:
        pass


@pytest.fixture()
def relayed(evidence) -> Iterator[tuple[EvidenceStore, Relay]]:  # type: ignore[no-untyped-def]
    """A fresh store (no checksum verdict yet) whose client talks to the real server through a relay."""
    settings = evidence.settings
    state = read_state(settings)
    assert state is not None
    relay = Relay(state.endpoint)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    access, secret = embedded_credentials(settings.secrets_dir)
    client = Client(f"127.0.0.1:{relay.server_address[1]}", access, secret, secure=False, region=EMBEDDED_REGION)
    yield EvidenceStore(settings, client=client), relay
    relay.shutdown()
    relay.server_close()


def _puts(relay: Relay) -> list[dict[str, str]]:
    return [h for m, h in relay.seen if m == "PUT"]


def _versions(store: EvidenceStore, key: str) -> list[str]:
    return [o.version_id for o in store.client.list_objects(store.buckets["derived"], prefix=key,
                                                            include_version=True)]


def test_the_server_checks_our_sha256_so_no_md5_is_sent_after_the_first_put(relayed) -> None:  # type: ignore[no-untyped-def]
    store, relay = relayed
    bucket = store.buckets["derived"]
    data = [f"still {i} ".encode() * 5000 for i in range(3)]
    objs = [store.put_bytes(bucket, f"checks/sha/{i}", d, content_type="image/png", lock=True)
            for i, d in enumerate(data)]
    assert store.put_sha256 is True
    first, *rest = _puts(relay)
    assert "content-md5" in first and "x-amz-checksum-sha256" in first  # until the server has shown it checks
    for h, d in zip(rest, data[1:], strict=True):
        assert "content-md5" not in h
        assert h["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(d).digest()).decode()
    for o, d in zip(objs, data, strict=True):
        assert o.sha256 == hashlib.sha256(d).hexdigest()
        assert store.get_bytes(bucket, o.key, o.version_id) == d


def test_a_body_damaged_in_transit_is_refused_and_nothing_is_stored(relayed) -> None:  # type: ignore[no-untyped-def]
    store, relay = relayed
    bucket = store.buckets["derived"]
    store.put_bytes(bucket, "checks/damage/probe", b"probe" * 100, lock=True)
    assert store.put_sha256 is True  # the SHA-256 alone guards the next one
    relay.damage = True
    with pytest.raises(StorageError, match="BadDigest|did not match"):
        store.put_bytes(bucket, "checks/damage/still", b"evidence" * 1000, lock=True)
    assert "content-md5" not in _puts(relay)[-1]
    assert _versions(store, "checks/damage/still") == []


def test_a_server_that_does_not_confirm_the_checksum_keeps_content_md5_and_the_etag_proof(relayed) -> None:  # type: ignore[no-untyped-def]
    store, relay = relayed
    bucket = store.buckets["derived"]
    relay.echo = False
    a = store.put_bytes(bucket, "checks/noecho/a", b"a" * 4096, lock=True)
    assert store.put_sha256 is False
    b = store.put_bytes(bucket, "checks/noecho/b", b"b" * 4096, lock=True)
    second = _puts(relay)[-1]
    assert "content-md5" in second and "x-amz-checksum-sha256" not in second
    assert store.get_bytes(bucket, a.key, a.version_id) == b"a" * 4096
    assert store.get_bytes(bucket, b.key, b.version_id) == b"b" * 4096
    relay.damage = True  # and Content-MD5 still stops a damaged body
    with pytest.raises(StorageError, match="BadDigest|did not match"):
        store.put_bytes(bucket, "checks/noecho/c", b"c" * 4096, lock=True)
    assert _versions(store, "checks/noecho/c") == []

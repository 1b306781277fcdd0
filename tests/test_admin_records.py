"""Administration and the audit trail as signed chains under concurrency, and the redaction rule (issue 16).

Real S3: many threads and two "hosts" (separate AuditTrail / AuthStore instances) append at once;
every chain must still verify and nothing may be lost. Redaction is a pure function, tested as one.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest


def test_concurrent_audit_writers_never_contend_and_all_verify(evidence: Any) -> None:
    from pipeline.access.audit import AuditTrail
    from pipeline.access.records import trusted_keys

    hosts = [AuditTrail(evidence.store, evidence.signer) for _ in range(2)]
    tag = uuid.uuid4().hex
    n = 60

    def one(i: int) -> str:
        return hosts[i % 2].write({"user": f"u{i}", "path": f"/api/concurrency/{tag}", "outcome": "allowed"})

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(one, range(n)))
    assert len(set(keys)) == n
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    rep = hosts[0].verify_day(day, trusted_keys(evidence.settings, evidence.signer))
    mine = {k.rsplit("/", 1)[-1].split("-")[1] for k in keys}  # writer ids of this test's entries
    assert len(mine) >= 2  # per-thread chains in each host
    assert not [f for f in rep.findings if any(w in str(f) for w in mine)], rep.findings
    assert sum(rep.writers[w] for w in mine) == n


def test_concurrent_admins_extend_one_user_chain_without_forking(evidence: Any) -> None:
    from pipeline.access.auth import AuthStore

    admins = [AuthStore(evidence.store, evidence.signer) for _ in range(3)]
    name = f"busy-{uuid.uuid4().hex[:8]}"
    _u, first = admins[0].add_user(name, "investigator", "pytest")
    barrier = threading.Barrier(6)

    def issue(i: int) -> str:
        barrier.wait(10)
        return admins[i % 3].issue_token(name, f"admin{i}")

    with ThreadPoolExecutor(6) as pool:
        tokens = list(pool.map(issue, range(6)))
    user = admins[1].load_user(name)
    assert user is not None and not user.tampered
    assert len([t for t, active in user.tokens.items() if active]) == 7
    for t in [first, *tokens]:
        assert admins[2].authenticate(t).name == name
    admins[0].revoke_token(tokens[0], "pytest")
    from pipeline.access.auth import Unauthenticated

    with pytest.raises(Unauthenticated):
        admins[1].authenticate(tokens[0])  # another "host" sees the revocation at its next load
    assert admins[2].authenticate(tokens[1]).name == name


@pytest.mark.parametrize("raw,must_not_contain", [
    ("access_token=cust_abcdefghijk", "cust_abcdefghijk"),
    ("X-Amz-Credential=AKIA1234%2F20260101%2Fus&X-Amz-Signature=0123456789abcdef", "0123456789abcdef"),
    ("token=s3cr3t&day=2026-01-01", "s3cr3t"),
    ("password=hunter2", "hunter2"),
    ("Authorization=Bearer%20zzzzzzzzzz", "zzzzzzzzzz"),
    ("note=see%20cust_tokentokentoken", "cust_tokentokentoken"),
    ("url=https%3A%2F%2Fbob%3Apa55word%40host%2Fx", "pa55word"),
])
def test_redact_query(raw: str, must_not_contain: str) -> None:
    from pipeline.access.redact import redact_query

    out = redact_query(raw)
    assert must_not_contain not in out and "[REDACTED]" in out


def test_redact_text_headers_values_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.access.redact import RedactingFilter, redact_headers, redact_text, redact_value

    url = "http://127.0.0.1:9000/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=abcd1234abcd&versionId=v1"
    assert "abcd1234abcd" not in redact_text(f"S3 refused GET {url}") and "versionId=v1" in redact_text(url)
    assert redact_text("rtsp://admin:letmein@10.0.0.5/stream") == "rtsp://admin:[REDACTED]@10.0.0.5/stream"
    assert redact_headers({"Authorization": "Bearer x", "User-Agent": "curl"}) == {
        "Authorization": "[REDACTED]", "User-Agent": "curl"}
    assert redact_value({"a": ["Bearer abcdefghij"], "secret_key": "k"}) == {"a": ["Bearer [REDACTED]"],
                                                                            "secret_key": "[REDACTED]"}
    lg = logging.getLogger("test.redact")
    lg.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        lg.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", "/api/cases?access_token=cust_leakedtoken1", "1.1",
                401)
        try:
            raise ValueError("boom with cust_intraceback99")
        except ValueError:
            lg.exception("failed")
    text = caplog.text
    assert "cust_leakedtoken1" not in text and "cust_intraceback99" not in text and "/api/cases" in text


def test_cli_errors_and_debug_tracebacks_are_redacted(cli: Any) -> None:
    """A credential inside an error message (here: a bad S3 endpoint URL with a password) is masked."""
    env = {"CUSTODY_S3_ENDPOINT": "http://user:topsecretpw@127.0.0.1:1/x", "CUSTODY_S3_ACCESS_KEY": "a",
           "CUSTODY_S3_SECRET_KEY": "b"}
    for debug in ("0", "1"):
        r = cli.run("case", "list", env={**env, "CUSTODY_DEBUG": debug}, check=False)
        assert r.returncode == 2 and "S3 endpoint" in r.stderr, r.stderr
        assert "topsecretpw" not in r.stdout + r.stderr and "[REDACTED]" in r.stderr, r.stderr
    shown = cli.run("stack", "status", env=env, check=False)
    assert "topsecretpw" not in shown.stdout + shown.stderr

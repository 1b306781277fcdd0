"""Insiders are hostile (issue 16, findings 2-5): a real `custody serve`, real S3, a real browser.

An attacker holding a token, or the S3 keys, tries: a token in the query string (kept for seven
years in the audit trail?), learning of another case through dedupe, rewriting a user record into
an admin, hiding or editing audit entries, and an HTML "original" that runs in the portal's origin.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CUSTODY, Cli
from tests.test_api import _free_port


def today() -> str:
    """The audit trail's day now (UTC): taken per test, as a suite can run across midnight."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


class Server:
    def __init__(self, cli: Cli, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--log-level", "info"], env=cli.env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "custody serve did not become healthy"
            time.sleep(0.05)  # polling interval while waiting for readiness

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def server(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(cli, tmp_path_factory.mktemp("hostile-api") / "serve.log")
    yield srv
    srv.stop()


def user(cli: Cli, role: str, case_ref: str | None = None) -> tuple[str, str]:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    token = cli.json("user", "add", name, "--role", role)["token"]  # type: ignore[index]
    if case_ref:
        cli.run("user", "assign", name, "--case", case_ref)
    return name, token


def client(srv: Server, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60,
                        headers={"Authorization": f"Bearer {token}"} if token else {})


def audit_doc(evidence: Any, rid: str) -> dict[str, Any]:
    from pipeline.access.audit import AuditTrail

    (entry,) = AuditTrail(evidence.store).read(request_id=rid)
    return entry


def _get(raw_client: Any, bucket: str, key: str, version_id: str | None = None) -> bytes:
    resp = raw_client.get_object(bucket, key, version_id=version_id)
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


def test_audit_trail_verifies_before_anyone_tampers(cli: Cli, server: Server) -> None:
    _n, tok = user(cli, "auditor")
    with client(server, tok) as c:
        assert c.get("/api/me").status_code == 200
    out: Any = cli.json("audit", "verify", "--day", today())
    assert out["days"][0]["ok"] and out["days"][0]["entries"] > 0, out["days"][0]


def test_tokens_never_reach_the_audit_trail_or_logs(cli: Cli, server: Server, evidence: Any,
                                                    raw_client: Any) -> None:
    """Finding 2: `GET /api/cases?access_token=cust_...` was refused, but the entry kept the live token."""
    _name, token = user(cli, "supervisor")
    day = today()
    with client(server) as anon, client(server, token) as sup:
        r1 = anon.get("/api/cases", params={"access_token": token})
        r2 = sup.get("/api/audit", params={"day": day, "limit": 1, "X-Amz-Signature": "deadbeef" * 8,
                                           "password": "hunter2", "note": f"pasted {token} here"})
        r3 = anon.get("/api/me", headers={"Authorization": f"Bearer {token}x"})  # near-miss token: refused
    assert r1.status_code == 401 and r2.status_code == 200 and r3.status_code == 401
    e1, e2 = audit_doc(evidence, r1.headers["x-request-id"]), audit_doc(evidence, r2.headers["x-request-id"])
    assert e1["outcome"] == "refused" and "access_token=[REDACTED]" in e1["query"]
    assert "X-Amz-Signature=[REDACTED]" in e2["query"] and "password=[REDACTED]" in e2["query"]
    assert "day=" + day in e2["query"]  # what was asked for stays readable
    days = {day, today()}
    for rid in (r1.headers["x-request-id"], r2.headers["x-request-id"], r3.headers["x-request-id"]):
        doc = json.dumps(audit_doc(evidence, rid))
        assert token not in doc and "hunter2" not in doc and "deadbeef" not in doc
    for o in (o for d in days for o in raw_client.list_objects("custody-custody", prefix=f"audit/{d}/",
                                                                 recursive=True)):
        assert token.encode() not in _get(raw_client, "custody-custody", o.object_name)
    log = server.log_path.read_text()
    assert "/api/cases" in log  # the access log is on, and masked
    assert token not in log and "hunter2" not in log


def test_one_case_learns_nothing_of_another(cli: Cli, server: Server, evidence: Any, raw_client: Any) -> None:
    """Finding 3: uploading bytes case A holds into case B returned A's ids, key and time into B's chain."""
    ref_a, ref_b = f"OP-A/{uuid.uuid4().hex[:8]}", f"OP-B/{uuid.uuid4().hex[:8]}"
    ids = {r: cli.json("case", "create", "--ref", r)["case_id"] for r in (ref_a, ref_b)}  # type: ignore[index]
    _oa, tok_a = user(cli, "officer", ref_a)
    _ob, tok_b = user(cli, "officer", ref_b)
    _ib, inv_b = user(cli, "investigator", ref_b)
    _s, sup = user(cli, "supervisor")
    _a, aud = user(cli, "auditor")
    data = b"seized footage held by case A " + os.urandom(4000)
    sha = hashlib.sha256(data).hexdigest()
    with client(server, tok_a) as a, client(server, tok_b) as b:
        ex_a = a.post(f"/api/cases/{ids[ref_a]}/exhibits", json={"ref": "A/1", "officer": "DC A"}).json()
        up_a = a.post(f"/api/cases/{ids[ref_a]}/exhibits/{ex_a['exhibit_id']}/uploads", params={"name": "a.bin"},
                      content=data).json()
        ex_b = b.post(f"/api/cases/{ids[ref_b]}/exhibits", json={"ref": "B/1", "officer": "DC B"}).json()
        base_b = f"/api/cases/{ids[ref_b]}/exhibits/{ex_b['exhibit_id']}"
        declared = b.post(f"{base_b}/uploads", params={"name": "b.bin"}, content=data,
                          headers={"X-Content-SHA256": sha})
        plain = b.post(f"{base_b}/uploads", params={"name": "b2.bin"}, content=data)
    assert declared.status_code == 201 and plain.status_code == 201
    for r in (declared.json(), plain.json()):
        assert r["sha256"] == sha and r["key"].startswith(f"{ids[ref_b]}/")
    assert not declared.json()["linked"] and declared.json()["duplicate_of"] is None
    # stored (no declared hash), and noted as a duplicate of case B's own first copy, never of case A's
    assert plain.json()["duplicate_of"]["case_id"] == ids[ref_b]
    with client(server, inv_b) as ib:
        down = ib.get(f"{base_b}/objects/{declared.json()['object_id']}/download")
        assert down.status_code == 200
    with client(server, sup) as s:
        chain_b = s.get(f"{base_b}/custody").json()
        chain_a = s.get(f"/api/cases/{ids[ref_a]}/exhibits/{ex_a['exhibit_id']}/custody").json()
    text_b = json.dumps(chain_b)
    for secret in (ids[ref_a], ex_a["exhibit_id"], up_a["key"], ref_a):
        assert secret not in text_b and secret not in declared.text + plain.text + down.text
    assert "downloaded" in [e["action"] for e in chain_b["events"]]
    assert "downloaded" not in [e["action"] for e in chain_a["events"]]
    # the one place a cross-case match is visible: an explicit, audited search by supervisors and auditors
    with client(server, sup) as s, client(server, aud) as au, client(server, inv_b) as ib, \
            client(server, tok_b) as ob:
        found = s.get("/api/duplicates", params={"sha256": sha, "reason": "same footage in two operations?"})
        assert found.status_code == 200, found.text
        assert {m["case_id"] for m in found.json()["matches"]} == set(ids.values())
        assert au.get("/api/duplicates", params={"sha256": sha, "reason": "audit check"}).status_code == 200
        for who in (ib, ob):
            assert who.get("/api/duplicates", params={"sha256": sha, "reason": "curious"}).status_code == 403
    entry = audit_doc(evidence, found.headers["x-request-id"])
    assert entry["permission"] == "duplicates.search" and entry["matches"] == 2
    assert entry["sha256"] == sha and entry["reason"] == "same footage in two operations?"
    out: Any = cli.json("audit", "matches", "--sha256", sha, "--reason", "operator check")
    assert {m["case"] for m in out["matches"]} == {ref_a, ref_b}
    from pipeline.access.audit import AuditTrail

    assert any(e.get("path") == "custody audit matches" and e.get("sha256") == sha
               for e in AuditTrail(evidence.store).read(limit=50))


def test_rewritten_user_record_refuses_service_and_alerts(cli: Cli, server: Server, evidence: Any,
                                                          raw_client: Any) -> None:
    """Finding 4: rewriting a user's record made an investigator an admin, undetected."""
    name, token = user(cli, "investigator")
    other, other_tok = user(cli, "investigator")
    with client(server, token) as c:
        assert c.get("/api/me").json()["role"] == "investigator"
        assert c.get("/api/users").status_code == 403
    key = f"auth/users/{hashlib.sha256(name.encode()).hexdigest()}/records/00000000.json"
    doc = json.loads(_get(raw_client, "custody-custody", key))
    doc["event"]["parameters"]["role"] = "admin"  # the insider with S3 keys, but not the signing key
    raw_client.put_object("custody-custody", key, io.BytesIO(json.dumps(doc).encode()), len(json.dumps(doc)))
    with client(server, token) as c, client(server, other_tok) as o:
        r = c.get("/api/users")
        assert r.status_code == 401 and "do not verify" in r.json()["detail"]
        assert c.get("/api/me").status_code == 401
        assert o.get("/api/me").status_code == 200  # other users keep working
    from pipeline.access.audit import AuditTrail

    alerts = [e for e in AuditTrail(evidence.store).read(limit=200) if e.get("alert") == "admin_record_tampered"
              and e.get("subject") == name]
    assert alerts and any("overwritten" in f or "altered" in f for f in alerts[0]["findings"])
    listed: Any = cli.json("user", "list")
    (mine,) = [u for u in listed if u["name"] == name]
    assert not mine["records_verify"]
    r = cli.run("audit", "verify", "--day", today(), check=False)
    assert r.returncode == 1 and f"user {name}" in r.stderr
    # a chain made from scratch with the S3 keys alone: not signed by a trusted key, grants nothing
    eve = f"eve-{uuid.uuid4().hex[:6]}"
    eve_token = "cust_" + uuid.uuid4().hex + uuid.uuid4().hex
    forged = {"event": {**doc["event"], "subject": {"kind": "user", "name": eve}, "seq": 0},
              "event_sha256": "0" * 64, "signature": {"alg": "ed25519", "key_id": "f" * 64, "value": "AAAA"}}
    base = f"auth/users/{hashlib.sha256(eve.encode()).hexdigest()}/records/"
    for i, rec in enumerate([forged["event"], {**forged["event"], "seq": 1, "action": "token_issued",
                                               "parameters": {"token_sha256": hashlib.sha256(
                                                   eve_token.encode()).hexdigest()}}]):
        body = json.dumps({**forged, "event": rec}).encode()
        raw_client.put_object("custody-custody", f"{base}{i:08d}.json", io.BytesIO(body), len(body))
    idx = json.dumps({"user": eve, "revoked": False}).encode()
    raw_client.put_object("custody-custody", f"auth/tokens/{hashlib.sha256(eve_token.encode()).hexdigest()}.json",
                          io.BytesIO(idx), len(idx))
    with client(server, eve_token) as e:
        assert e.get("/api/users").status_code == 401


def test_hidden_or_edited_audit_entries_are_detected(cli: Cli, server: Server, evidence: Any,
                                                     raw_client: Any) -> None:
    """Finding 4: a delete marker hid refused entries from /api/audit (0 shown), undetected."""
    _n, aud = user(cli, "auditor")
    days = {today()}
    with client(server) as anon:
        refused = anon.get("/api/cases", headers={"Authorization": "Bearer cust_guessing-tokens-here"})
        other = anon.get("/api/me")
    assert refused.status_code == 401
    rid, rid2 = refused.headers["x-request-id"], other.headers["x-request-id"]
    days.add(today())
    keys = [o.object_name for d in sorted(days)
            for o in raw_client.list_objects("custody-custody", prefix=f"audit/{d}/", recursive=True)]
    (key,) = [k for k in keys if k.endswith(f"-{rid}.json")]
    (key2,) = [k for k in keys if k.endswith(f"-{rid2}.json")]
    raw_client.remove_object("custody-custody", key)  # a delete marker: the locked version stays, hidden
    edited = json.loads(_get(raw_client, "custody-custody", key2))
    edited["event"]["outcome"] = "allowed"
    body = json.dumps(edited).encode()
    raw_client.put_object("custody-custody", key2, io.BytesIO(body), len(body))  # a second version
    with client(server, aud) as a:
        shown = a.get("/api/audit", params={"request_id": rid}).json()
    assert len(shown) == 1 and shown[0]["outcome"] == "refused" and "delete marker" in shown[0]["hidden"]
    runs = [cli.run("audit", "verify", "--day", d, check=False) for d in sorted({key.split("/")[1],
                                                                                 key2.split("/")[1]})]
    assert all(r.returncode == 1 for r in runs)
    stderr = "".join(r.stderr for r in runs)
    assert key.rsplit("/", 1)[-1] in stderr and "delete marker" in stderr
    assert key2.rsplit("/", 1)[-1] in stderr and "overwritten" in stderr


CHROMIUM = "/usr/bin/chromium"


def test_html_original_downloads_inert(cli: Cli, server: Server, tmp_path: Path) -> None:
    """Finding 5: an HTML original was served inline as text/html from the portal's own host."""
    ref = f"OP-H/{uuid.uuid4().hex[:8]}"
    cli.run("case", "create", "--ref", ref)
    card = tmp_path / "card"
    card.mkdir()
    (card / "index.html").write_bytes(b"<html><body><script>document.title='pwned'</script>x</body></html>")
    (card / "logo.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    up: Any = cli.json("upload", str(card), "--case", ref, "--exhibit", "H/1", "--officer", "DC H")
    _n, inv = user(cli, "investigator", ref)
    from pipeline.api.cases import object_id

    base = f"/api/cases/{up['case_id']}/exhibits/{up['exhibit_id']}"
    urls = {}
    with client(server, inv) as c:
        for o in up["objects"]:
            d = c.get(f"{base}/objects/{object_id(o['bucket'], o['key'])}/download")
            assert d.status_code == 200 and d.headers["x-content-type-options"] == "nosniff"
            assert d.json()["served_as"] == {"content_type": "application/octet-stream", "disposition": "attachment"}
            urls[o["original_name"]] = d.json()["url"]
    for name, url in urls.items():
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - presigned loopback URL
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert resp.headers["Content-Disposition"].startswith(f'attachment; filename="{name}"')
    if not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None:
        pytest.skip("Debian chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-background-networking"])
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(f"{server.url}/signin")
            for name, url in urls.items():
                with page.expect_download(timeout=30_000) as dl:
                    try:
                        page.goto(url)
                    except sync_api.Error:
                        pass  # navigation turned into a download: that is the point
                assert dl.value.suggested_filename == name
                assert page.title() != "pwned"
                assert page.url.startswith(server.url)  # still on the portal page, nothing rendered from S3
        finally:
            browser.close()

"""The HTTP API against a real uvicorn server and the real S3 store.

A parametrised matrix runs every principal (each role, assigned or not, and no
token) against every endpoint: allowed calls succeed, refused ones get 401/403
and every one of them — refused or not — is found in the access audit trail.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CUSTODY, Cli

ROLES = ("officer", "investigator", "supervisor", "auditor", "admin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """`custody serve` in a subprocess on a free loopback port, ready when /api/health answers."""

    def __init__(self, cli: Cli, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=cli.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"custody serve exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("custody serve did not become healthy within 30 s")
            time.sleep(0.05)  # polling interval while waiting for readiness, not synchronisation

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="module")
def api_server(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = ApiServer(cli, tmp_path_factory.mktemp("api") / "serve.log")
    yield srv
    srv.stop()


def add_user(cli: Cli, role: str, prefix: str = "") -> tuple[str, str]:
    name = f"{prefix or role}-{uuid.uuid4().hex[:8]}"
    doc = cli.json("user", "add", name, "--role", role)
    return name, doc["token"]  # type: ignore[index]


@dataclass
class World:
    url: str
    case_ref: str
    case_id: str
    exhibit_id: str
    object_id: str
    tokens: dict[str, str]
    names: dict[str, str]
    work_request: str

    def client(self, principal: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[principal]}"} if principal in self.tokens else {}
        if principal == "bad_token":
            headers = {"Authorization": "Bearer cust_not-a-real-token"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def world(cli: Cli, api_server: ApiServer, evidence: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    from pipeline.access.auth import AuthStore

    ref = f"OP-API/{uuid.uuid4().hex[:8]}"
    case = cli.json("case", "create", "--ref", ref)
    f = tmp_path_factory.mktemp("w") / "seed.bin"
    f.write_bytes(os.urandom(2048))
    up = cli.json("upload", str(f), "--case", ref, "--exhibit", "API/1", "--officer", "DC Seed")
    tokens, names = {}, {}
    names["admin"], tokens["admin"] = add_user(cli, "admin")  # once through the CLI, the rest in-process (faster)
    auth = AuthStore(evidence.store)
    c = evidence.catalog.get_case(ref)
    for principal in (*ROLES[:-1], "officer_unassigned", "investigator_unassigned"):
        role = principal.removesuffix("_unassigned")
        user, tokens[principal] = auth.add_user(f"{principal.replace('_', '-')}-{uuid.uuid4().hex[:8]}", role,
                                                "pytest")
        names[principal] = user.name
    for role in ("officer", "investigator"):
        auth.assign(names[role], c, "pytest")
    from pipeline.api.cases import object_id

    obj = up["objects"][0]  # type: ignore[index]
    w = World(api_server.url, ref, case["case_id"], up["exhibit_id"],  # type: ignore[index]
              object_id(obj["bucket"], obj["key"]), tokens, names, "")
    with w.client("supervisor") as sup:
        w.work_request = sup.post(f"{_ex(w)}/frames", json={"object_id": w.object_id}).json()["id"]
    return w


# ---- the matrix ------------------------------------------------------------------
Call = Callable[[httpx.Client, World], httpx.Response]


def _ex(w: World) -> str:
    return f"/api/cases/{w.case_id}/exhibits/{w.exhibit_id}"


ENDPOINTS: dict[str, tuple[Call, set[str]]] = {
    "me": (lambda c, w: c.get("/api/me"), set(ROLES)),
    "list_cases": (lambda c, w: c.get("/api/cases"), set(ROLES)),
    "create_case": (lambda c, w: c.post("/api/cases", json={"ref": f"OP-N/{uuid.uuid4().hex[:8]}"}), {"admin"}),
    "get_case": (lambda c, w: c.get(f"/api/cases/{w.case_id}"), set(ROLES)),
    "create_exhibit": (lambda c, w: c.post(f"/api/cases/{w.case_id}/exhibits",
                                           json={"ref": f"X/{uuid.uuid4().hex[:6]}", "officer": "DC X"}),
                       {"officer", "admin"}),
    "get_exhibit": (lambda c, w: c.get(_ex(w)), {"investigator", "supervisor", "auditor", "admin"}),
    "custody": (lambda c, w: c.get(f"{_ex(w)}/custody"), {"investigator", "supervisor", "auditor", "admin"}),
    "metadata": (lambda c, w: c.get(f"{_ex(w)}/metadata"), {"investigator", "supervisor", "auditor", "admin"}),
    "clock": (lambda c, w: c.post(f"{_ex(w)}/clock", json={"camera_time": "2026-01-01T00:00:10Z",
                                                            "reference_time": "2026-01-01T00:00:00Z"}),
              {"officer", "supervisor", "admin"}),
    "upload": (lambda c, w: c.post(f"{_ex(w)}/uploads", params={"name": "m.bin"}, content=os.urandom(64)),
               {"officer", "admin"}),
    "download": (lambda c, w: c.get(f"{_ex(w)}/objects/{w.object_id}/download"),
                 {"investigator", "supervisor", "admin"}),
    "frames": (lambda c, w: c.post(f"{_ex(w)}/frames", json={"every_seconds": 2}),
               {"investigator", "supervisor", "admin"}),
    "bundle": (lambda c, w: c.post(f"/api/cases/{w.case_id}/bundles", json={"exhibit_ids": [w.exhibit_id]}),
               {"investigator", "supervisor", "admin"}),
    "list_users": (lambda c, w: c.get("/api/users"), {"admin"}),
    "add_user": (lambda c, w: c.post("/api/users", json={"name": f"u-{uuid.uuid4().hex[:8]}", "role": "auditor"}),
                 {"admin"}),
    "assign": (lambda c, w: c.post(f"/api/users/{w.names['auditor']}/assignments", json={"case_id": w.case_id}),
               {"admin"}),
    "audit": (lambda c, w: c.get("/api/audit", params={"limit": 5}), {"supervisor", "auditor", "admin"}),
    "issue_token": (lambda c, w: c.post(f"/api/users/{w.names['auditor']}/tokens"), {"admin"}),
    "unassign": (lambda c, w: c.delete(f"/api/users/{w.names['auditor']}/assignments/{w.case_id}"), {"admin"}),
    "get_request": (lambda c, w: c.get(f"/api/requests/{w.work_request}"),
                    {"investigator", "supervisor", "auditor", "admin"}),
}
SCOPED = {"get_case", "custody", "create_exhibit", "get_exhibit", "metadata", "clock", "upload", "download", "frames",
          "bundle", "get_request"}
PRINCIPALS = (*ROLES, "officer_unassigned", "investigator_unassigned", "no_token", "bad_token")


def _expected(endpoint: str, principal: str) -> int:
    if principal in ("no_token", "bad_token"):
        return 401
    role = principal.removesuffix("_unassigned")
    allowed = role in ENDPOINTS[endpoint][1] and not (principal.endswith("_unassigned") and endpoint in SCOPED)
    return 0 if allowed else 403


def audit_entry(evidence: Any, request_id: str) -> dict[str, Any]:
    from pipeline.access.audit import AuditTrail

    (entry,) = AuditTrail(evidence.store).read(request_id=request_id)
    return entry


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_role_matrix(world: World, evidence: Any, endpoint: str, principal: str) -> None:
    call, _roles = ENDPOINTS[endpoint]
    with world.client(principal) as c:
        r = call(c, world)
    want = _expected(endpoint, principal)
    if want:
        assert r.status_code == want, r.text
        assert "detail" in r.json()
    else:
        assert 200 <= r.status_code < 300, r.text
    # every request, allowed or refused, is in the audit trail before the caller sees the answer
    entry = audit_entry(evidence, r.headers["x-request-id"])
    assert entry["status"] == r.status_code
    assert entry["outcome"] == ("refused" if want else "allowed")
    if principal not in ("no_token", "bad_token"):
        assert entry["user"] == world.names[principal]
    if want == 403:
        assert entry["reason"]


def _events(c: httpx.Client, w: World) -> list[dict[str, Any]]:
    r = c.get(f"{_ex(w)}/custody")
    assert r.status_code == 200
    return r.json()["events"]


def test_reads_and_downloads_become_custody_events(world: World) -> None:
    with world.client("investigator") as inv, world.client("supervisor") as sup:
        assert inv.get(_ex(world)).status_code == 200
        d = inv.get(f"{_ex(world)}/objects/{world.object_id}/download")
        assert d.status_code == 200
        body = urllib.request.urlopen(d.json()["url"], timeout=30).read()  # noqa: S310 - presigned loopback URL
        assert hashlib.sha256(body).hexdigest() == d.json()["sha256"]
        events = _events(sup, world)
        mine = [e for e in events if e["actor"]["name"] == world.names["investigator"]]
        assert {"accessed", "downloaded"} <= {e["action"] for e in mine}
        down = [e for e in mine if e["action"] == "downloaded"][-1]
        assert down["objects"][0]["sha256"] == d.json()["sha256"]
        assert sup.get(f"{_ex(world)}/custody").json()["chain"]["ok"]


def test_upload_hash_mismatch_rejected_and_nothing_stored(world: World) -> None:
    data = os.urandom(4096)
    with world.client("officer") as off, world.client("supervisor") as sup:
        before = len(_events(sup, world))
        r = off.post(f"{_ex(world)}/uploads", params={"name": "bad.bin"}, content=data,
                     headers={"X-Content-SHA256": "0" * 64})
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert "SHA-256 mismatch" in detail and "nothing was stored" in detail
        assert hashlib.sha256(data).hexdigest() in detail
        assert len(_events(sup, world)) == before
        ok = off.post(f"{_ex(world)}/uploads", params={"name": "good.bin"}, content=data,
                      headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()})
        assert ok.status_code == 201 and ok.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_request_bodies_are_bounded_but_uploads_stream(world: World) -> None:
    """FastAPI reads a body whole before authentication: past MAX_BODY it is refused unread, declared or chunked,
    signed in or not; footage to /uploads is not bounded by it."""
    from pipeline.api.body_limit import MAX_BODY

    big = b'{"note": "' + b"a" * (MAX_BODY + 1) + b'"}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    with world.client("officer") as off, world.client("nobody") as anon:
        for r in (off.post(f"{_ex(world)}/frames", content=big, headers={"Content-Type": "application/json"}),
                  off.post(f"{_ex(world)}/frames", content=chunked(), headers={"Content-Type": "application/json"}),
                  anon.post("/api/cases", content=big, headers={"Content-Type": "text/plain"})):
            assert r.status_code == 413 and "footage goes to /uploads" in r.json()["detail"], r.text
        data = os.urandom(MAX_BODY + 4096)
        ok = off.post(f"{_ex(world)}/uploads", params={"name": "bigger-than-a-document.bin"}, content=data,
                      headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()})
        assert ok.status_code == 201 and ok.json()["size"] == len(data), ok.text


def test_duplicate_with_declared_hash_is_linked_not_stored(world: World, raw_client: Any) -> None:
    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    with world.client("officer") as off:
        first = off.post(f"{_ex(world)}/uploads", params={"name": "a.bin"}, content=data)
        assert first.status_code == 201 and not first.json()["linked"]
        second = off.post(f"{_ex(world)}/uploads", params={"name": "copy of a.bin"}, content=data,
                          headers={"X-Content-SHA256": sha})
        assert second.status_code == 201, second.text
        s = second.json()
        assert s["linked"] and s["key"] == first.json()["key"] and s["sha256"] == sha
    keys = [o.object_name for o in raw_client.list_objects("custody-originals", prefix=f"{world.case_id}/",
                                                           recursive=True)]
    assert keys.count(first.json()["key"]) == 1
    index = json.loads(raw_client.get_object("custody-custody", f"index/sha256/{sha}/{world.case_id}.json").read())
    assert index["key"] == first.json()["key"]


def test_clock_offset_applied_to_displayed_times(world: World, cli: Cli, tmp_path: Path) -> None:
    img = tmp_path / "still.jpg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=32x24", "-frames:v", "1", str(img)],
                   check=True)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-DateTimeOriginal=2026:03:01 12:00:30", str(img)],
                   check=True)
    ref = world.case_ref
    cli.run("upload", str(img), "--case", ref, "--exhibit", "CLK/1", "--officer", "DC C")
    cli.run("exhibit", "clock", "--case", ref, "--exhibit", "CLK/1", "--camera-time", "2026-03-01T12:00:30",
            "--reference-time", "2026-03-01T12:00:00Z")
    with world.client("supervisor") as sup:
        ex = next(e for e in sup.get(f"/api/cases/{world.case_id}").json()["exhibits"] if e["exhibit"] == "CLK/1")
        md = sup.get(f"/api/cases/{world.case_id}/exhibits/{ex['exhibit_id']}/metadata").json()
    assert md["clock_offset_ms"] == 30000
    (item,) = md["items"]
    assert item["metadata"]["capture_time"] == "2026:03:01 12:00:30"  # recorded value untouched
    assert item["metadata"]["capture_time_corrected"] == "2026-03-01T12:00:00.000000Z"
    local = cli.json("exhibit", "metadata", "--case", ref, "--exhibit", "CLK/1")
    assert local["items"][0]["metadata"]["capture_time_corrected"] == "2026-03-01T12:00:00.000000Z"  # type: ignore


def test_errors_are_json_4xx_never_tracebacks(world: World) -> None:
    with world.client("admin") as adm:
        cases = [
            adm.get("/api/cases/case-" + "0" * 32),
            adm.get("/api/cases/../../etc/passwd"),
            adm.post("/api/cases", json={"ref": "../../bad ref!"}),
            adm.post(f"{_ex(world)}/clock", json={"camera_time": "yesterday", "reference_time": "now"}),
            adm.post(f"{_ex(world)}/clock", json={"camera_time": "2026-01-01T00:00:00Z",
                                                  "reference_time": "9999-01-01T00:00:00Z"}),
            adm.post(f"{_ex(world)}/uploads", params={"name": "x"}, content=b"",
                     headers={"X-Content-SHA256": "zz"}),
            # accepted before and crashed the extraction later (an infinite interval), or recorded NaN times
            adm.post(f"{_ex(world)}/frames", content=b'{"every_seconds": Infinity}',
                     headers={"Content-Type": "application/json"}),
            adm.post(f"{_ex(world)}/frames", content=b'{"timestamps": [1, NaN]}',
                     headers={"Content-Type": "application/json"}),
        ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
        assert "Traceback" not in r.text
        assert "detail" in r.json()


def test_cli_upload_through_the_api(world: World, cli: Cli, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    f = tmp_path / "field clip.bin"
    f.write_bytes(data)
    out = cli.json("upload", str(f), "--case", world.case_ref, "--exhibit", "VIA/1", "--officer", "DC V",
                   "--location", "Car park", "--api", world.url, "--token", world.tokens["officer"],
                   env={"CUSTODY_HOME": str(tmp_path / "no-s3-here")})  # the field laptop has no store access
    (obj,) = out["objects"]  # type: ignore[index]
    assert obj["sha256"] == hashlib.sha256(data).hexdigest() and obj["size"] == len(data)
    refused = cli.run("upload", str(f), "--case", world.case_ref, "--exhibit", "VIA/1", "--officer", "DC V",
                      "--api", world.url, "--token", world.tokens["auditor"], check=False)
    assert refused.returncode == 2 and "403" in refused.stderr


def test_no_audit_no_access(world: World, evidence: Any) -> None:
    """If the audit entry can't be stored, the caller gets 503 instead of the data."""
    from fastapi.testclient import TestClient

    from pipeline.api import create_app
    from pipeline.api.deps import Services

    app = create_app()
    svc = Services(evidence.settings)

    def refuse(entry: dict[str, Any]) -> str:
        raise OSError("audit store down")

    svc.audit.write = refuse  # type: ignore[method-assign]
    app.state.services = svc
    with TestClient(app) as c:
        r = c.get("/api/cases", headers={"Authorization": f"Bearer {world.tokens['supervisor']}"})
    assert r.status_code == 503 and "audit" in r.json()["detail"]
    assert world.case_ref not in r.text


def test_tokens_are_stored_hashed_only(cli: Cli, raw_client: Any) -> None:
    name, token = add_user(cli, "auditor")
    digest = hashlib.sha256(token.encode()).hexdigest()
    rec = json.loads(raw_client.get_object("custody-custody", f"auth/tokens/{digest}.json").read())
    assert rec["user"] == name and not rec["revoked"]
    for o in raw_client.list_objects("custody-custody", prefix="auth/", recursive=True):
        assert token.encode() not in raw_client.get_object("custody-custody", o.object_name).read()
    listed = cli.json("user", "list")
    assert any(u["name"] == name and u["role"] == "auditor" for u in listed)  # type: ignore[union-attr]
    assert token not in json.dumps(listed)


def test_a_bundle_request_records_which_derived_material_it_wants(world: World) -> None:
    """The request names its derived material as `custody bundle --derived` does (review by default)."""
    with world.client("admin") as adm:
        asked = adm.post(f"/api/cases/{world.case_id}/bundles", json={"derived": "all", "note": "for the defence"})
        plain = adm.post(f"/api/cases/{world.case_id}/bundles", json={})
        bad = adm.post(f"/api/cases/{world.case_id}/bundles", json={"derived": "stills"})
        docs = [adm.get(f"/api/requests/{r.json()['id']}").json() for r in (asked, plain)]
    assert [d["derived"] for d in docs] == ["all", "review"]
    assert bad.status_code == 422 and "review" in bad.text

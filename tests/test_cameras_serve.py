"""`custody cameras serve` against a real Prefect server, emulator, ffmpeg and S3; camera status in CLI, API, portal.

The catch-up window is generated so it began a minute ago and ends 40 s from now: serve must record it at once,
to its end, state the missed part as a `gap` (and `missed` coverage), and report the run to Prefect. Waits are
polls on conditions with deadlines.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CUSTODY, Cli

pytestmark = pytest.mark.timeout(300)


def wait_for(cond, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def emulator(cli: Cli):  # type: ignore[no-untyped-def]
    cli.run("stack", "up", "--cameras", "1", "--no-prefect")
    yield cli.json("stack", "status")["cameras"]["urls"]  # type: ignore[index]
    from pipeline.capture import stop_emulator

    stop_emulator(cli.home / "emulator")


def _flow_runs(api: str, name: str) -> list[dict[str, Any]]:
    body = json.dumps({"flow_runs": {"name": {"any_": [name]}}, "limit": 10}).encode()
    req = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback test server
        return json.loads(r.read())


def _status(cli: Cli, inv: Path, camera: str) -> dict[str, Any] | None:
    rows = cli.json("cameras", "status", "--inventory", str(inv))
    return next((r for r in rows if r["camera"] == camera), None)  # type: ignore[union-attr]


def test_stack_prefect_ui_calls_its_own_api(cli: Cli, prefect_api: str) -> None:
    """The UI is told its server's API address (left unset it calls 127.0.0.1:4200), on a remembered port."""
    st: Any = cli.json("stack", "status")
    assert st["prefect_api_url"] == prefect_api and st["prefect_ui_url"] == prefect_api.removesuffix("/api")
    with urllib.request.urlopen(f"{st['prefect_ui_url']}/ui-settings", timeout=10) as r:  # noqa: S310 - loopback
        assert json.loads(r.read())["api_url"] == prefect_api
    ports = json.loads((cli.home / "stack" / "ports.json").read_text())
    assert prefect_api == f"http://127.0.0.1:{ports['prefect']}/api"


def test_serve_catches_up_on_a_window_under_way(cli: Cli, emulator: dict, prefect_api: str, evidence: Any,
                                                case_ref: str, tmp_path: Path) -> None:
    from pipeline.capture.ingest import exhibit_ref_for

    now = datetime.now(UTC)
    begin = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    duration = f"{(now + timedelta(seconds=40) - begin).total_seconds():.3f}"
    end = begin + timedelta(seconds=float(duration))  # 40 s from now
    inv = tmp_path / "cameras.yaml"
    inv.write_text(f"cameras:\n  - id: cam1\n    url: {emulator['cam1']}\n    case_ref: {case_ref}\n"
                   f"    exhibit_prefix: SRV/CAM1\n    segment_seconds: 5\n    stall_timeout: 5\n    windows:\n"
                   f"      - cron: \"{begin.minute} {begin.hour} * * *\"\n"
                   f"        duration: {duration}\n")
    log_path = tmp_path / "serve.log"
    launched = datetime.now(UTC)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([CUSTODY, "cameras", "serve", "--inventory", str(inv)], env=cli.env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        row = wait_for(lambda: (r := _status(cli, inv, "cam1")) and r["recording"] and r["window"] and r, 30,
                       "recording status")  # the window once the run has written it (the lock comes first)
        assert row["next_window"]["under_way"] and _t(row["window"]["start"]) == begin
        assert _t(row["window"]["end"]) == end
        busy = cli.run("cameras", "run", "--camera", "cam1", "--inventory", str(inv), "--duration", "3s",
                       "--no-prefect", check=False, timeout=60)  # the spool's camera lock: one recorder per camera
        assert busy.returncode == 2 and "being recorded" in busy.stderr, busy.stderr
        wait_for(lambda: "finished:" in log_path.read_text(), 120, "the window to finish")
        assert not _status(cli, inv, "cam1")["recording"]  # type: ignore[index]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log_path.read_text()
    assert proc.returncode == 0, text
    label = f"window cam1 {begin:%H:%M}–{end:%H:%M:%S}"
    assert f"{label} started: catch-up: window began {begin:%H:%M:%S}" in text, text
    assert re.search(rf"{label} finished: \d+ segments stored, 1 gaps, 0 pending", text), text

    _, ex = evidence.get(case_ref, exhibit_ref_for("SRV/CAM1", begin))
    events = evidence.log.events(ex.id)
    gaps = [e["parameters"] for e in events if e["action"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["kind"] == "missed", gaps
    gap = gaps[0]
    assert _t(gap["start"]) == begin and launched <= _t(gap["end"]) <= launched + timedelta(seconds=10)
    began = _t(gap["end"])
    assert gap["reason"] == f"worker not running: window began {begin:%H:%M:%S}, recording began {began:%H:%M:%S}"
    segs = [e["parameters"] for e in events if e["action"] == "segment_recorded"]
    assert len(segs) >= 5
    assert min(_t(p["wallclock_start"]) for p in segs) >= _t(gap["end"])
    last = max(_t(p["wallclock_end"]) for p in segs)
    assert abs((last - end).total_seconds()) < 2.0, (last, end)  # recorded to the window's end, then stopped
    cover = sorted((e["parameters"] for e in events if e["action"] == "coverage"), key=lambda c: c["start"])
    assert cover[0]["state"] == "missed" and _t(cover[0]["start"]) == begin and cover[0]["end"] == gap["end"]
    for a, b in zip(cover, cover[1:], strict=False):
        assert _t(a["end"]) == _t(b["start"]), (a, b)
    assert _t(cover[-1]["end"]) == last and "recorded" in {c["state"] for c in cover}

    runs = wait_for(lambda: [r for r in _flow_runs(prefect_api, f"cam1-{begin:%Y%m%dT%H%M%SZ}")
                             if r["state_type"] == "COMPLETED"], 60, "the flow run to complete in Prefect")
    assert "cam1" in runs[0]["tags"] and runs[0]["parameters"]["case_ref"] == case_ref
    assert cli.run("verify", "--case", case_ref).returncode == 0


def test_serve_refuses_an_unreachable_configured_prefect(cli: Cli, emulator: dict, tmp_path: Path) -> None:
    inv = tmp_path / "cameras.yaml"
    inv.write_text(f"cameras:\n  - id: cam1\n    url: {emulator['cam1']}\n    case_ref: OP-X/1\n"
                   "    exhibit_prefix: X\n    windows:\n      - cron: \"0 3 * * *\"\n        duration: 1h\n")
    proc = cli.run("cameras", "serve", "--inventory", str(inv), check=False, timeout=60,
                   env={"CUSTODY_PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert proc.returncode == 3, proc.stderr
    assert "not answering" in proc.stderr and "--no-prefect" in proc.stderr


def test_emulator_control_errors_carry_their_exit_codes(cli: Cli, emulator: dict, tmp_path: Path) -> None:
    unknown = cli.run("stack", "camera", "nosuch", "--stop", check=False)
    assert unknown.returncode == 2 and "no camera 'nosuch'" in unknown.stderr, unknown.stderr
    down = Cli(tmp_path / "home").run("stack", "camera", "cam1", "--stop", check=False)
    assert down.returncode == 3 and "stack up --cameras" in down.stderr, down.stderr


def test_camera_status_api_and_portal_page_per_case(cli: Cli, tmp_path: Path) -> None:
    """Same rows through the API and the portal; scoped roles see only their cases' cameras."""
    from pipeline.capture.status import StatusFile, status_path
    from pipeline.settings import Settings
    from tests.test_api import ApiServer, add_user

    mine, other = f"OP-CAM/{uuid.uuid4().hex[:8]}", f"OP-CAM/{uuid.uuid4().hex[:8]}"
    for ref in (mine, other):
        cli.run("case", "create", "--ref", ref)
    settings = Settings(home=cli.home)
    mine_cam, other_cam = (f"apicam-{uuid.uuid4().hex[:6]}" for _ in range(2))
    cams = {mine_cam: mine, other_cam: other}
    now = datetime.now(UTC)
    for cam, ref in cams.items():  # what a finished run leaves behind (the ingest run writes the same file)
        sf = StatusFile(status_path(settings, cam))
        sf.update(camera=cam, case=ref, exhibit="X/1", recording=False, last_segment_end=now.isoformat())
        sf.add_gap(now - timedelta(minutes=5), now - timedelta(minutes=4), "ffmpeg exited rc=1")
    inv_name, inv_token = add_user(cli, "investigator")
    cli.run("user", "assign", inv_name, "--case", mine)
    _, admin = add_user(cli, "admin")
    _, officer = add_user(cli, "officer")
    srv = ApiServer(cli, tmp_path / "serve.log")
    try:
        def rows(token: str | None) -> httpx.Response:
            return httpx.get(f"{srv.url}/api/cameras/status", timeout=30,
                             headers={"Authorization": f"Bearer {token}"} if token else {})

        seen = {r["camera"]: r for r in rows(admin).json()["cameras"]}
        assert {mine_cam, other_cam} <= set(seen)
        assert seen[mine_cam]["gaps_24h"] == 1 and seen[mine_cam]["gap_seconds_24h"] == 60.0
        assert seen[mine_cam]["recording"] is False and seen[mine_cam]["last_segment_end"] == now.isoformat()
        scoped = {r["camera"] for r in rows(inv_token).json()["cameras"]}
        assert mine_cam in scoped and other_cam not in scoped
        assert rows(officer).status_code == 403 and rows(None).status_code == 401
        with httpx.Client(base_url=srv.url, timeout=30, follow_redirects=True) as web:
            pre = re.search(r'name="csrf" value="([^"]+)"', web.get("/signin").text).group(1)  # type: ignore[union-attr]
            assert web.post("/signin", data={"token": inv_token, "csrf": pre}).status_code == 200
            page = web.get("/cameras")
            assert page.status_code == 200 and mine_cam in page.text and other_cam not in page.text
            assert "ffmpeg exited rc=1" in page.text and 'href="/cameras"' in page.text
    finally:
        srv.stop()

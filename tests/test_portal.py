"""The web portal in a real browser (headless Chromium via Playwright) against a real `custody serve`.

One story, in order: a field officer uploads a clip and a still (the connection
drops once mid-file and the upload resumes from the last confirmed chunk); stills
are extracted; an investigator sees the exhibit with its stills, builds a bundle
and downloads it, and the download passes `custody verify`; a supervisor sees
the custody timeline with the camera's recording gap; a field officer opening
another case's exhibit gets a 403 page and the refusal is in the audit trail.
Screenshots go to $CUSTODY_SCREENSHOTS (default: the test's tmp dir).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CUSTODY, Cli

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed"),
              pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Portal:
    url: str
    cli: Cli
    case_ref: str
    case_id: str
    other_case_id: str
    other_exhibit_id: str
    tokens: dict[str, str]
    names: dict[str, str]
    shots: Path
    state: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def portal(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    tmp = tmp_path_factory.mktemp("portal")
    shots = Path(os.environ.get("CUSTODY_SCREENSHOTS") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    ref, other = f"OP-WEB/{uuid.uuid4().hex[:8]}", f"OP-ELSE/{uuid.uuid4().hex[:8]}"
    case = cli.json("case", "create", "--ref", ref)
    cli.json("case", "create", "--ref", other)
    seed = tmp / "seed.bin"
    seed.write_bytes(os.urandom(1024))
    up = cli.json("upload", str(seed), "--case", other, "--exhibit", "ELSE/1", "--officer", "DC Else")
    tokens, names = {}, {}
    for role in ("officer", "investigator", "supervisor"):
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        tokens[role] = cli.json("user", "add", name, "--role", role)["token"]  # type: ignore[index]
        names[role] = name
    for role in ("officer", "investigator"):
        cli.run("user", "assign", names[role], "--case", ref)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env={**cli.env, "CUSTODY_PORTAL_CHUNK_KB": "64"}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "custody serve did not become healthy within 30 s"
            time.sleep(0.05)  # readiness polling interval, not synchronisation
        yield Portal(url, cli, ref, case["case_id"], up["case_id"], up["exhibit_id"],  # type: ignore[index]
                     tokens, names, shots)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def _media(tmp: Path) -> tuple[Path, Path]:
    clip, still = tmp / "clip 01.mp4", tmp / "still.jpg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "3",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360", "-frames:v", "1",
                    str(still)], check=True)
    return clip, still


def sign_in(browser: Any, portal: Portal, role: str, **ctx: Any) -> Any:
    context = browser.new_context(accept_downloads=True, **ctx)
    page = context.new_page()
    page.goto(portal.url + "/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.get_by_label("Access token").fill(portal.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Cases", exact=True)).to_be_visible()
    return page


def test_1_officer_uploads_with_a_dropped_connection(browser: Any, portal: Portal, tmp_path: Path) -> None:
    clip, still = _media(tmp_path)
    page = sign_in(browser, portal, "officer")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "custody_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert portal.tokens["officer"] not in cookie["value"]  # a server-side session id, not the token
    page.screenshot(path=str(portal.shots / "01-cases-officer.png"), full_page=True)
    page.get_by_role("link", name=portal.case_ref).click()
    page.get_by_role("link", name="Upload footage and stills").click()
    expect(page.get_by_role("heading", name="Upload footage and stills")).to_be_visible()

    seen: list[int] = []

    def drop_one(route: Any) -> None:
        seen.append(1)
        if len(seen) == 2:  # the server stores this chunk, but its answer never reaches the browser
            route.fetch()
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r".*/upload-sessions/up-[0-9a-f]+/chunk\?offset=\d+$"), drop_one)
    page.get_by_label("Exhibit reference").fill("PT/1")
    page.get_by_label("Seized at (local time)").fill("2026-06-01T08:15:00")
    page.get_by_label("Time zone of that time").fill("Europe/London")  # BST: stored as 07:15Z, zone recorded
    page.get_by_label("Location").fill("Car park, Level 2")
    page.get_by_label("Files").set_input_files([str(clip), str(still)])
    page.get_by_role("button", name="Upload").click()
    rows = page.locator("#upload-list li")
    expect(rows).to_have_count(2, timeout=60_000)
    expect(rows.nth(0)).to_have_class(re.compile(r"\bdone\b"), timeout=60_000)
    expect(rows.nth(1)).to_have_class(re.compile(r"\bdone\b"), timeout=60_000)
    expect(rows.nth(0)).to_contain_text("resumed")
    expect(page.locator("#upload-status")).to_contain_text("2 of 2 file(s) stored")
    assert len(seen) >= 5  # 276 kB in 64 KiB chunks: the clip really went in pieces
    assert rows.nth(0).get_attribute("data-sha256") == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert rows.nth(1).get_attribute("data-sha256") == hashlib.sha256(still.read_bytes()).hexdigest()
    page.screenshot(path=str(portal.shots / "02-upload-done.png"), full_page=True)

    # the officer's own exhibit: no contents (the API does not give them evidence.read), but no refusal either
    page.get_by_role("link", name="Open the exhibit").click()
    expect(page.get_by_role("heading", name="Exhibit PT/1")).to_be_visible()
    expect(page.get_by_text("can upload to this exhibit but not view it")).to_be_visible()
    expect(page.locator("img")).to_have_count(0)
    portal.state["exhibit_url"] = page.url
    page.context.close()


def test_2_investigator_sees_stills_and_downloads_a_verified_bundle(browser: Any, portal: Portal, evidence: Any,
                                                                    tmp_path: Path) -> None:
    assert "exhibit_url" in portal.state, "needs the upload test"
    portal.cli.run("extract", "PT/1", "--case", portal.case_ref, "--every", "1s", "--workers", "1")
    from pipeline.custody.actor import Actor

    c, e = evidence.get(portal.case_ref, "PT/1")
    evidence.record(c, e, "gap", actor=Actor("recorder cam1", "system"),
                    parameters={"camera": "cam1", "start": "2026-11-28T12:00:03Z", "end": "2026-11-28T12:00:09Z",
                                "reason": "camera stopped"})

    page = sign_in(browser, portal, "investigator")
    page.get_by_role("link", name=portal.case_ref).click()
    page.get_by_role("link", name="PT/1").click()
    expect(page.get_by_role("heading", name="Exhibit PT/1")).to_be_visible()
    expect(page.get_by_role("cell", name="clip 01.mp4", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="still.jpg", exact=True)).to_be_visible()
    stills = page.locator("img.still")
    expect(stills.first).to_be_visible()
    assert stills.count() >= 3
    assert stills.first.get_attribute("loading") == "lazy"  # served by the API's content endpoint, lazily
    assert re.fullmatch(r"/api/cases/case-[0-9a-f]{32}/exhibits/exh-[0-9a-f]{32}/objects/[0-9a-f]{32}/content",
                        stills.first.get_attribute("src") or "")
    expect(page.get_by_text("entered as 2026-06-01T08:15:00 Europe/London (+01:00)")).to_be_visible()
    ingested = [x for x in evidence.log.events(e.id) if x["action"] == "ingested"]
    assert {x["parameters"]["seized_at"] for x in ingested} == {"2026-06-01T07:15:00Z"}
    assert {x["parameters"]["seized_at_zone"] for x in ingested} == {"Europe/London"}
    sheet = page.get_by_role("img", name=re.compile("Contact sheet"))
    expect(sheet).to_be_visible()
    for img in (stills.first, sheet):  # really decoded, i.e. served and hash-checked, not a broken image
        img.scroll_into_view_if_needed()
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    from pipeline.access.auth import PERMISSIONS

    if "investigator" in PERMISSIONS["custody.read"]:
        expect(page.locator("tr.gap")).to_contain_text("Recording gap 12:00:03–12:00:09")
    else:  # the API keeps custody timelines from investigators; the page does exactly the same
        expect(page.get_by_text("your role (investigator) does not include it")).to_be_visible()
    page.screenshot(path=str(portal.shots / "03-exhibit-investigator.png"), full_page=True)

    page.get_by_role("link", name="Build evidence bundle").click()
    expect(page.get_by_role("heading", name="New evidence bundle")).to_be_visible()
    page.get_by_label("Recipient").fill("CPS Leeds")
    page.get_by_label("Reason for disclosure").fill("pre-charge advice")
    page.get_by_role("button", name="Build evidence bundle").click()
    expect(page.get_by_role("heading", name="Evidence bundle")).to_be_visible()
    link = page.get_by_role("link", name="Download bundle (.zip)")
    expect(link).to_be_visible(timeout=90_000)
    expect(page.locator("#bundle-phase")).to_have_text("Bundle ready.")
    page.screenshot(path=str(portal.shots / "04-bundle-ready.png"), full_page=True)
    with page.expect_download(timeout=60_000) as dl:
        link.click()
    target = tmp_path / "bundle.zip"
    dl.value.save_as(target)
    verified = portal.cli.run("verify", str(target), check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # a forged form post (no CSRF token) is refused even with the session cookie
    r = page.context.request.post(f"{portal.url}/cases/{portal.case_id}/bundles", form={"exhibit_id": e.id},
                                  max_redirects=0)
    assert r.status == 403
    exported = [x for x in evidence.log.events(e.id) if x["action"] == "exported"]
    assert [(x["parameters"]["recipient"], x["parameters"]["reason"]) for x in exported] == [
        ("CPS Leeds", "pre-charge advice")]
    page.context.close()


def test_3_supervisor_sees_the_timeline_with_the_recording_gap(browser: Any, portal: Portal, evidence: Any) -> None:
    page = sign_in(browser, portal, "supervisor")
    page.goto(portal.state["exhibit_url"])
    page.goto(portal.state["exhibit_url"])  # viewing twice: one `reviewed` event today, no per-view events
    eid = portal.state["exhibit_url"].rsplit("/", 1)[-1]
    chain = evidence.log.events(eid)
    mine = [x for x in chain if (x.get("actor") or {}).get("name") == portal.names["supervisor"]]
    assert [x["action"] for x in mine] == ["reviewed"]
    assert not [x for x in chain if x["action"] == "accessed"]
    gap = page.locator("tr.gap")
    expect(gap).to_have_count(1)
    expect(gap).to_contain_text("Recording gap 12:00:03–12:00:09 (6 s, cam1, camera stopped)")
    expect(page.get_by_role("cell", name="exported", exact=True)).to_have_count(1)
    page.locator("#tl-h").scroll_into_view_if_needed()
    page.screenshot(path=str(portal.shots / "05-exhibit-supervisor-timeline.png"), full_page=True)
    page.context.close()
    # the same page on a tablet, portrait
    tab = sign_in(browser, portal, "supervisor", viewport={"width": 768, "height": 1024}, has_touch=True)
    tab.goto(portal.state["exhibit_url"])
    expect(tab.locator("tr.gap")).to_be_visible()
    tab.screenshot(path=str(portal.shots / "06-exhibit-tablet.png"), full_page=True)
    tab.context.close()


def test_4_officer_refused_another_cases_exhibit_and_it_is_audited(browser: Any, portal: Portal,
                                                                   evidence: Any) -> None:
    page = sign_in(browser, portal, "officer")
    page.keyboard.press("Tab")  # keyboard users land on the skip link first
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    resp = page.goto(f"{portal.url}/cases/{portal.other_case_id}/exhibits/{portal.other_exhibit_id}")
    assert resp is not None and resp.status == 403
    expect(page.get_by_role("heading", name=re.compile("Access refused"))).to_be_visible()
    expect(page.get_by_text("not assigned to this case")).to_be_visible()
    page.screenshot(path=str(portal.shots / "07-refused.png"), full_page=True)
    rid = resp.headers["x-request-id"]
    from pipeline.access.audit import AuditTrail

    (entry,) = AuditTrail(evidence.store).read(request_id=rid)
    assert entry["outcome"] == "refused" and entry["status"] == 403
    assert entry["user"] == portal.names["officer"] and entry["via"] == "portal"
    assert entry["case_id"] == portal.other_case_id and "not assigned" in entry["reason"]
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.get_by_label("Access token").fill("cust_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    page.screenshot(path=str(portal.shots / "00-signin-refused.png"), full_page=True)
    assert page.goto(f"{portal.url}/cases").url.endswith("/signin")  # the session is gone
    page.context.close()

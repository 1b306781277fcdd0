"""Review in a real browser: an emulated camera is recorded with a stop/start, prepared for review, and an
investigator plays it, seeks to a clock time and takes a still there, sees the gap on the timeline, and
builds a bundle whose report states every segment's and gap's bounds exactly as the custody events do.

Real RTSP emulator, real ffmpeg recorder, real S3, real `custody serve`, headless Debian Chromium.
Screenshots go to $CUSTODY_SCREENSHOTS (default: the test's tmp dir). The camera outage (5 s) is a fault
duration; every wait for the system is a condition with a deadline.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Cli
from tests.test_api import ApiServer, add_user

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed"),
              pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")]


def wait_for(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)  # polling interval
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def us_of(value: str) -> int:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def fmt(us: int) -> str:
    t = datetime.fromtimestamp(us // 1_000_000, UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{(us % 1_000_000) // 1000:03d}"


@pytest.fixture(scope="module")
def recorded(cli: Cli, evidence: Any) -> Iterator[dict[str, Any]]:
    """cam1 recorded for ~24 s in 4 s segments, stopped for 5 s after the first stored segment."""
    from pipeline.capture.ingest import ingest_camera
    from pipeline.settings import load_settings

    cli.run("stack", "up", "--cameras", "2")
    case_ref = f"OP-REV/{uuid.uuid4().hex[:8]}"
    cli.run("case", "create", "--ref", case_ref)
    url = cli.json("stack", "status")["cameras"]["urls"]["cam1"]  # type: ignore[index]
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.setdefault("r", ingest_camera(
        load_settings(), camera="cam1", url=url, case_ref=case_ref, duration=24, segment_seconds=4,
        stall_timeout=3, drain_interval=0.5)))
    t.start()

    def segments() -> list[dict[str, Any]]:
        c = evidence.catalog.find_case(case_ref)  # the case's only exhibit: the run's day, even across midnight
        e = next(iter(evidence.catalog.list_exhibits(c)), None) if c else None
        return [x for x in evidence.log.events(e.id) if x["action"] == "segment_recorded"] if e else []

    try:
        wait_for(segments, 40, "the first stored segment")
        cli.run("stack", "camera", "cam1", "--stop")
        time.sleep(5)  # the outage itself
        cli.run("stack", "camera", "cam1", "--start")
    finally:
        t.join(timeout=120)
    assert out["r"].pending == 0 and not out["r"].errors
    ex_ref = out["r"].exhibit
    prep = cli.json("review", "prepare", ex_ref, "--case", case_ref)
    assert prep["prepared"] and all(not p["problems"] for p in prep["prepared"])  # type: ignore[index]
    c, e = evidence.get(case_ref, ex_ref)
    yield {"case_ref": case_ref, "exhibit_ref": ex_ref, "case": c, "exhibit": e}
    from pipeline.capture import stop_emulator

    stop_emulator(cli.home / "emulator")


@pytest.fixture(scope="module")
def served(cli: Cli, recorded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    srv = ApiServer(cli, tmp_path_factory.mktemp("review-serve") / "serve.log")
    name, token = add_user(cli, "investigator")
    cli.run("user", "assign", name, "--case", recorded["case_ref"])
    shots = Path(os.environ.get("CUSTODY_SCREENSHOTS") or tmp_path_factory.mktemp("review-shots"))
    shots.mkdir(parents=True, exist_ok=True)
    yield {"url": srv.url, "token": token, "user": name, "shots": shots}
    srv.stop()


@pytest.fixture(scope="module")
def page(served: dict[str, Any], recorded: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True).new_page()
        pg.goto(served["url"] + "/signin")
        pg.get_by_label("Access token").fill(served["token"])
        pg.get_by_role("button", name="Sign in").click()
        expect(pg.get_by_role("heading", name="Cases", exact=True)).to_be_visible()
        c, e = recorded["case"], recorded["exhibit"]
        pg.goto(f"{served['url']}/cases/{c.id}/exhibits/{e.id}")
        expect(pg.get_by_role("heading", name=f"Exhibit {e.ref}")).to_be_visible()
        yield pg
        browser.close()


def _events(evidence: Any, recorded: dict[str, Any]) -> list[dict[str, Any]]:
    return evidence.log.events(recorded["exhibit"].id)


def test_timeline_shows_the_gap_where_the_camera_was_stopped(page: Any, served: dict, recorded: dict,
                                                             evidence: Any) -> None:
    gaps = [x["parameters"] for x in _events(evidence, recorded) if x["action"] == "gap"]
    assert len(gaps) == 1, gaps
    rect = page.locator("svg#timeline rect.cov.gap[data-source^=\"gap event\"]")
    expect(rect).to_have_count(1)
    assert int(rect.get_attribute("data-start-us")) == us_of(gaps[0]["start"])
    assert int(rect.get_attribute("data-end-us")) == us_of(gaps[0]["end"])
    expect(rect.locator("title")).to_contain_text(f"Gap {fmt(us_of(gaps[0]['start']))[11:]}")
    box = rect.bounding_box()
    assert box and box["width"] >= 2  # drawn, not a hairline: 5 s of a ~30 s axis
    assert page.locator("svg#timeline rect.cov.recorded").count() >= 2  # footage either side
    bars = page.locator("#tl-activity rect")
    expect(bars.first).to_be_attached()
    for b in [bars.nth(i).bounding_box() for i in range(bars.count())]:  # no activity drawn inside the gap
        assert b and (b["x"] + b["width"] <= box["x"] + 3 or b["x"] >= box["x"] + box["width"] - 3), (b, box)
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(served["shots"] / "review-01-timeline-gap.png"), full_page=False)


def test_the_page_plays_the_review_copy_across_segments(page: Any, served: dict) -> None:
    expect(page.get_by_text("WORKING COPY", exact=True)).to_be_visible()
    page.wait_for_function("() => document.getElementById('clock').dataset.us !== ''")
    first_copy = page.locator("#clock").get_attribute("data-copy-id")
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => document.querySelector('video.active').currentTime > 0.5", timeout=20_000)
    t1 = page.evaluate("() => document.querySelector('video.active').currentTime")
    page.wait_for_function(f"() => document.querySelector('video.active').currentTime > {t1 + 0.3}", timeout=20_000)
    # the first segment ends and the next one plays on in the other element without a click
    page.wait_for_function(f"() => document.getElementById('clock').dataset.copyId !== '{first_copy}'",
                           timeout=30_000)
    page.screenshot(path=str(served["shots"] / "review-02-playing.png"))
    page.get_by_role("button", name="Pause").click()


def _frame_pts(path: Path) -> list[int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    vals = [x.strip().strip(",") for x in out.split()]
    return sorted(int(x) for x in vals if x.lstrip("-").isdigit())


def _ffmpeg_frame(path: Path, index: int) -> np.ndarray:
    """Independent decode of frame `index` (presentation order) with the ffmpeg CLI, bgr24."""
    st = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                    "stream=width,height", "-of", "json", str(path)], capture_output=True,
                                   text=True, check=True).stdout)["streams"][0]
    w, h = int(st["width"]), int(st["height"])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})", "-fps_mode",
                          "passthrough", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def test_seeking_to_a_clock_time_shows_that_frame(page: Any, served: dict, recorded: dict, evidence: Any,
                                                  tmp_path: Path) -> None:
    import cv2

    from pipeline.frames.png import pixel_sha256

    events = _events(evidence, recorded)
    gap_end = us_of(next(x for x in events if x["action"] == "gap")["parameters"]["end"])
    seg = next(x for x in events if x["action"] == "segment_recorded"  # a segment after the outage
               and us_of(x["parameters"]["wallclock_start"]) >= gap_end
               and us_of(x["parameters"]["wallclock_end"]) - us_of(x["parameters"]["wallclock_start"]) > 2_000_000)
    start_us = us_of(seg["parameters"]["wallclock_start"])
    want = start_us + 1_337_000  # 1.337 s in: between frames, so the frame on screen is the one before
    page.get_by_label("Go to clock time (UTC)").fill(fmt(want))
    page.get_by_role("button", name="Go").click()
    page.wait_for_function(f"() => Math.abs(Number(document.getElementById('clock').dataset.us) - {want}) < 40000",
                           timeout=20_000)
    clock = page.locator("#clock")
    shown_us = int(clock.get_attribute("data-us"))
    assert shown_us <= want < shown_us + 40_000  # the frame on screen at that instant (25 fps)
    assert clock.text_content() == fmt(shown_us) + " UTC"
    # what the browser decoded, straight off the video element
    grey_b64 = page.evaluate("""() => { const v = document.querySelector('video.active');
        const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext('2d'); g.drawImage(v, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data;
        const out = new Uint8Array(c.width * c.height);
        for (let i = 0; i < out.length; i++) out[i] = (d[4*i] * 299 + d[4*i+1] * 587 + d[4*i+2] * 114) / 1000;
        let s = ''; for (let i = 0; i < out.length; i += 8192) s += String.fromCharCode(...out.subarray(i, i + 8192));
        return [c.width, c.height, btoa(s)]; }""")
    page.screenshot(path=str(served["shots"] / "review-03-seeked.png"))

    page.get_by_role("button", name="Take still").click()
    taken = page.locator("#stills-taken li").first
    expect(taken).to_be_visible(timeout=60_000)
    assert int(taken.get_attribute("data-wallclock-us")) == shown_us  # the still is of the displayed instant
    assert taken.get_attribute("data-source-id") == clock.get_attribute("data-source-id")
    page.screenshot(path=str(served["shots"] / "review-04-still-taken.png"))

    # independent extraction at the same instant: ffmpeg CLI decoding the original
    o = seg["objects"][0]
    local = tmp_path / "seg.ts"
    evidence.store.download_verified(o["bucket"], o["key"], o["version_id"], o["sha256"], local)
    pts = _frame_pts(local)
    index = int(np.argmin([abs((p - pts[0]) / 90000 - (shown_us - start_us) / 1e6) for p in pts]))
    assert int(taken.get_attribute("data-frame-index")) == index
    # the clock showed that frame's own time (recorded frames are off any nominal grid), to the microsecond
    assert abs((pts[index] - pts[0]) * 1e6 / 90000 - (shown_us - start_us)) <= 1
    frame = _ffmpeg_frame(local, index)
    assert taken.get_attribute("data-pixel-sha256") == pixel_sha256(frame)

    # and the browser's pixels are that frame, not a neighbour (colour conversion differs, so compare distances)
    w, h, b64 = grey_b64
    shown = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w).astype(np.float64)
    dist = {k: float(np.abs(shown - cv2.cvtColor(_ffmpeg_frame(local, k), cv2.COLOR_BGR2GRAY)).mean())
            for k in (index - 1, index, index + 1) if 0 <= k < len(pts)}
    assert min(dist, key=dist.get) == index, dist


def test_case_page_lanes_and_the_view_session_summary(page: Any, served: dict, recorded: dict, evidence: Any) -> None:
    from pipeline.access.audit import AuditTrail

    exhibit_url = page.url
    page.get_by_role("link", name=recorded["case_ref"]).click()  # leaving the page sends the session summary
    lane = page.locator("table.lanes svg rect.cov.gap[data-source^=\"gap event\"]")
    expect(lane).to_have_count(1)
    page.screenshot(path=str(served["shots"] / "review-05-case-lanes.png"))

    def summary() -> dict | None:
        entries = AuditTrail(evidence.store).read(user=served["user"], limit=100)
        return next((x["view_session"] for x in entries if x.get("view_session")), None)

    got = wait_for(summary, 20, "the view-session summary in the audit trail")
    assert got["watched_ms"] > 500 and got["stills_taken"] == 1, got
    page.goto(exhibit_url)


def test_report_states_every_segment_and_gap_exactly_as_recorded(page: Any, served: dict, recorded: dict,
                                                                 evidence: Any, cli: Cli, tmp_path: Path) -> None:
    page.get_by_role("link", name="Build evidence bundle").click()
    expect(page.get_by_role("heading", name="New evidence bundle")).to_be_visible()
    page.get_by_role("button", name="Build evidence bundle").click()  # refused by the browser: both required
    expect(page.get_by_role("heading", name="New evidence bundle")).to_be_visible()
    page.get_by_label("Recipient").fill("CPS Leeds")
    page.get_by_label("Reason for disclosure").fill("pre-charge advice")
    page.get_by_role("button", name="Build evidence bundle").click()
    link = page.get_by_role("link", name="Download bundle (.zip)")
    expect(link).to_be_visible(timeout=120_000)
    expect(page.locator("#bundle-phase")).to_have_text("Bundle ready.")
    expect(page.locator("#bundle-recipient")).to_have_text("CPS Leeds")
    with page.expect_download(timeout=60_000) as dl:
        link.click()
    target = tmp_path / "bundle.zip"
    dl.value.save_as(target)
    with zipfile.ZipFile(target) as z:
        pdf_name = next(n for n in z.namelist() if n.endswith("data/report/report.pdf"))
        html = z.read(next(n for n in z.namelist() if n.endswith("data/report/report.html"))).decode()
        (tmp_path / "report.pdf").write_bytes(z.read(pdf_name))
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    events = _events(evidence, recorded)
    for x in events:
        p = x["parameters"]
        if x["action"] == "segment_recorded":
            for v in (p["wallclock_start"], p["wallclock_end"]):
                assert v in text and v in html, v
        if x["action"] == "gap":
            for v in (p["start"], p["end"]):
                assert v in text and v in html, v
            assert p["reason"] in text
    assert "CPS Leeds" in text and "pre-charge advice" in text
    assert re.search(r"Time gap \(recorded reason\)\s+\d+\.\d{3} s", text)
    subprocess.run(["pdftoppm", "-r", "70", "-f", "2", "-l", "2", "-png", str(tmp_path / "report.pdf"),
                    str(served["shots"] / "review-06-report")], check=True)
    verified = cli.run("verify", str(target), check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_paused_player_learns_the_frame_on_screen_from_the_server(served: dict, recorded: dict, evidence: Any,
                                                                    tmp_path: Path) -> None:
    """What the player asks when a paused seek presents no frame: the frame's own time, against ffprobe's."""
    import urllib.request

    c, e = recorded["case"], recorded["exhibit"]
    base = f"{served['url']}/api/cases/{c.id}/exhibits/{e.id}"

    def get(path: str) -> dict:
        req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {served['token']}"})
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - the test's own loopback server
            return json.loads(r.read())

    f = next(x for x in get("/timeline")["files"] if (x.get("review_copy") or {}).get("object_id")
             and x["end_us"] - x["start_us"] > 2_000_000)
    first = float(f["review_copy"]["first_frame_time"])
    got = get(f"/frames/at?copy_id={f['review_copy']['object_id']}&media_time={first + 1.337}")
    from pipeline.evidence import object_id

    seg = next(x for x in _events(evidence, recorded) if x["action"] == "segment_recorded"
               and object_id(x["objects"][0]["bucket"], x["objects"][0]["key"]) == f["object_id"])
    o = seg["objects"][0]
    local = tmp_path / "seg.ts"
    evidence.store.download_verified(o["bucket"], o["key"], o["version_id"], o["sha256"], local)
    pts = _frame_pts(local)
    offsets = [(p - pts[0]) / 90000 for p in pts]
    index = max(k for k, t in enumerate(offsets) if t <= 1.337 + 1e-6)  # the last frame started by then
    assert got["frame_index"] == index and got["offset"] == pytest.approx(offsets[index], abs=1e-6)
    assert got["media_time"] == pytest.approx(first + offsets[index], abs=1e-6)
    assert got["wallclock_us"] == f["start_us"] + round(offsets[index] * 1e6)

"""The review API against a real `custody serve` and real S3: content with ranges, who may fetch what, what is
recorded where; timeline, stills, clips and preparation over HTTP; the portal session with CSRF on the API.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import footage
from tests.conftest import Cli
from tests.test_api import ApiServer, add_user

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(cli: Cli, evidence: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A camera exhibit: three 3 s segments (the second partial), a 4 s gap before the third; prepared."""
    from pipeline.custody.actor import Actor
    from pipeline.intake.mediainfo import MediaReport
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import store_original
    from pipeline.review.prepare import prepare_exhibit

    tmp = tmp_path_factory.mktemp("media")
    case_ref = f"OP-MEDIA/{uuid.uuid4().hex[:8]}"
    cli.run("case", "create", "--ref", case_ref)
    rec = Actor("recorder cam7", "system")
    c, e = evidence.ensure_exhibit(case_ref, "CAM7/20261128", "recorder", rec)
    starts = [T0, T0 + timedelta(seconds=3), T0 + timedelta(seconds=10)]
    for i, s in enumerate(starts):
        p = footage.h264(tmp / f"seg{i}.ts", 3, size="320x240", fps=25, bframes=False, gop_s=1.0,
                         extra=["-metadata", f"title=seg{i}"])
        offer = Offer(p.name, action="segment_recorded", index=False, metadata={"camera": "cam7"},
                      parameters={"camera": "cam7", "segment_index": i, "wallclock_start": s,
                                  "wallclock_end": s + timedelta(seconds=3), "partial": i == 1})
        store_original(evidence, c, e, p, offer, actor=rec, resumable=False,
                       media=MediaReport("partial" if i == 1 else "ok", "segment", "video", "mpeg-ts"))
    evidence.record(c, e, "gap", actor=rec, parameters={
        "camera": "cam7", "start": (T0 + timedelta(seconds=6)).isoformat(),
        "end": (T0 + timedelta(seconds=10)).isoformat(), "seconds": "4.0", "reason": "camera stopped"})
    prepare_exhibit(evidence, c, e, actor=Actor("pytest", "examiner"))
    # a second camera: 2 s of a still scene, then 1 s of movement
    burst = tmp / "burst.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=320x240:r=25:d=2", "-f",
                    "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
                    "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
                    "-f", "mpegts", str(burst)], check=True)
    _, e8 = evidence.ensure_exhibit(case_ref, "CAM8/20261128", "recorder", rec)
    store_original(evidence, c, e8, burst, Offer(burst.name, action="segment_recorded", index=False, parameters={
        "camera": "cam8", "wallclock_start": T0, "wallclock_end": T0 + timedelta(seconds=3)}), actor=rec,
        resumable=False, media=MediaReport("ok", "segment", "video", "mpeg-ts"))
    prepare_exhibit(evidence, c, e8, actor=Actor("pytest", "examiner"))
    return {"case_ref": case_ref, "case": c, "exhibit": e, "burst": e8}


@pytest.fixture(scope="module")
def api(cli: Cli, seeded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    srv = ApiServer(cli, tmp_path_factory.mktemp("media-serve") / "serve.log")
    users = {}
    for role in ("investigator", "officer", "auditor"):
        users[role] = add_user(cli, role)
        cli.run("user", "assign", users[role][0], "--case", seeded["case_ref"])
    users["stranger"] = add_user(cli, "investigator", "stranger")
    yield {"url": srv.url, "users": users}
    srv.stop()


def _base(api: dict, seeded: dict) -> str:
    return f"{api['url']}/api/cases/{seeded['case'].id}/exhibits/{seeded['exhibit'].id}"


def _h(api: dict, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api['users'][who][1]}"}


def _timeline(api: dict, seeded: dict) -> dict[str, Any]:
    r = httpx.get(_base(api, seeded) + "/timeline", headers=_h(api, "investigator"), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_timeline_over_http(api: dict, seeded: dict) -> None:
    tl = _timeline(api, seeded)
    assert [f["start_recorded"] for f in tl["files"]] == [
        "2026-11-28T12:00:00.000000Z", "2026-11-28T12:00:03.000000Z", "2026-11-28T12:00:10.000000Z"]
    assert all(f["review_copy"]["mode"] == "stream_copy" and f["review_copy"]["frames_match"] for f in tl["files"])
    assert [(g["start_recorded"], g["reason"]) for g in tl["gaps"]] == [("2026-11-28T12:00:06+00:00", "camera stopped")]
    assert tl["files"][1]["partial"] and tl["chain"]["ok"]
    case = httpx.get(f"{api['url']}/api/cases/{seeded['case'].id}/timeline", headers=_h(api, "investigator"),
                     timeout=60).json()
    assert sorted(x["exhibit"]["ref"] for x in case["exhibits"]) == ["CAM7/20261128", "CAM8/20261128"]


def test_content_ranges_headers_and_hash(api: dict, seeded: dict, evidence: Any) -> None:
    tl = _timeline(api, seeded)
    copy = tl["files"][0]["review_copy"]
    url = f"{_base(api, seeded)}/objects/{copy['object_id']}/content"
    whole = httpx.get(url, headers=_h(api, "investigator"), timeout=60)
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == copy["sha256"]
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["content-disposition"] == "inline"
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["x-content-type-options"] == "nosniff"
    assert whole.headers["etag"] == f'"{copy["sha256"]}"'
    size = len(whole.content)
    part = httpx.get(url, headers={**_h(api, "investigator"), "Range": "bytes=100-199"}, timeout=60)
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}" and part.headers["content-length"] == "100"
    tail = httpx.get(url, headers={**_h(api, "investigator"), "Range": "bytes=-10"}, timeout=60)
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    bad = httpx.get(url, headers={**_h(api, "investigator"), "Range": f"bytes={size}-"}, timeout=60)
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
    multi = httpx.get(url, headers={**_h(api, "investigator"), "Range": "bytes=0-1,5-9"}, timeout=60)
    assert multi.status_code == 200 and len(multi.content) == size
    head = httpx.head(url, headers=_h(api, "investigator"), timeout=60)
    assert head.status_code == 200 and head.headers["content-length"] == str(size) and not head.content


def test_originals_are_attachments_and_downloads_are_recorded(api: dict, seeded: dict, evidence: Any) -> None:
    f = _timeline(api, seeded)["files"][0]
    url = f"{_base(api, seeded)}/objects/{f['object_id']}/content"

    def downloads() -> int:
        return sum(1 for x in evidence.log.events(seeded["exhibit"].id) if x["action"] == "downloaded")

    before = downloads()
    r = httpx.get(url, headers=_h(api, "investigator"), timeout=60)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == f["sha256"]
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="seg0.ts"'
    assert downloads() == before + 1
    r = httpx.get(url, headers={**_h(api, "investigator"), "Range": "bytes=1000-"}, timeout=60)
    assert r.status_code == 206 and downloads() == before + 1  # a resumed transfer is the same download


def test_who_may_fetch_content_and_every_request_is_audited(api: dict, seeded: dict, evidence: Any) -> None:
    from pipeline.access.audit import AuditTrail

    f = _timeline(api, seeded)["files"][0]
    url = f"{_base(api, seeded)}/objects/{f['review_copy']['object_id']}/content"
    cases = {None: 401, "officer": 403, "auditor": 403, "stranger": 403, "investigator": 200}
    for who, code in cases.items():
        r = httpx.get(url, headers=_h(api, who) if who else {}, timeout=60)
        assert r.status_code == code, (who, r.text)
        (entry,) = AuditTrail(evidence.store).read(request_id=r.headers["x-request-id"])
        assert entry["status"] == code and entry["path"].endswith("/content")
        if code == 200:
            assert entry["object"] == f["review_copy"]["key"] and entry["inline"] is True
    nope = httpx.get(f"{_base(api, seeded)}/objects/{'0' * 32}/content", headers=_h(api, "investigator"), timeout=60)
    assert nope.status_code == 404


def test_viewing_is_one_reviewed_event_per_user_per_day(api: dict, seeded: dict, evidence: Any) -> None:
    tl = _timeline(api, seeded)
    for f in tl["files"]:
        httpx.get(f"{_base(api, seeded)}/objects/{f['review_copy']['object_id']}/content",
                  headers={**_h(api, "investigator"), "Range": "bytes=0-99"}, timeout=60)
    name = api["users"]["investigator"][0]
    mine = [x for x in evidence.log.events(seeded["exhibit"].id) if (x.get("actor") or {}).get("name") == name]
    assert [x["action"] for x in mine if x["action"] != "downloaded"] == ["reviewed"]


def test_still_clip_and_activity_over_http(api: dict, seeded: dict, evidence: Any) -> None:
    base, h = _base(api, seeded), _h(api, "investigator")
    r = httpx.post(base + "/stills", headers=h, json={"clock": "2026-11-28T12:00:04.530Z"}, timeout=120)
    assert r.status_code == 201, r.text
    still = r.json()
    assert still["source_name"] == "seg1.ts" and still["frame_index"] == 38  # 1.53 s at 25 fps: frame on screen
    assert still["wallclock"] == "2026-11-28T12:00:04.520000Z"
    for mode, frames in (("stream_copy", 75), ("frame_exact", 38)):
        r = httpx.post(base + "/clips", headers=h, timeout=300, json={
            "start": "2026-11-28T12:00:02.200Z", "end": "2026-11-28T12:00:03.720Z", "mode": mode})
        assert r.status_code == 201, r.text
        clip = r.json()
        # stream copy: whole 1 s GOPs 2.0-3.0 of seg0 and 3.0-4.0 of seg1 (50 frames); exact: 2.20-3.72 s
        assert clip["frames"] == {"stream_copy": 50, "frame_exact": frames}[mode], clip
        assert clip["parts"] == 2 and clip["mode"] == mode and "CLIP" in clip["label"]
        body = httpx.get(f"{base}/objects/{clip['object_id']}/content", headers=h, timeout=60)
        assert body.status_code == 200 and body.headers["content-type"] == "video/mp4"
    act = httpx.get(base + "/activity", headers=h, timeout=60).json()
    assert len(act["files"]) == 3 and all(f["bins"] for f in act["files"])
    r = httpx.post(base + "/clips", headers=h, json={"start": "2026-11-28T12:00:07Z", "end": "2026-11-28T12:00:08Z"},
                   timeout=60)
    assert r.status_code == 404  # inside the gap: nothing recorded
    r = httpx.post(base + "/stills", headers=_h(api, "auditor"), json={"clock": "2026-11-28T12:00:01Z"}, timeout=60)
    assert r.status_code == 403


def test_next_activity_finds_the_movement(api: dict, seeded: dict) -> None:
    base = f"{api['url']}/api/cases/{seeded['case'].id}/exhibits/{seeded['burst'].id}"
    t0_us = int(T0.timestamp() * 1e6)
    r = httpx.get(base + "/activity/next", params={"after": "2026-11-28T12:00:00Z"}, headers=_h(api, "investigator"),
                  timeout=60)
    assert r.status_code == 200, r.text
    assert abs(r.json()["start_us"] - (t0_us + 2_000_000)) <= 40_000  # the first moving frame, 2 s in
    later = httpx.get(base + "/activity/next", params={"after": "2026-11-28T12:00:03Z"},
                      headers=_h(api, "investigator"), timeout=60)
    assert later.status_code == 404


def test_view_session_summary_goes_to_the_audit_trail(api: dict, seeded: dict, evidence: Any) -> None:
    from pipeline.access.audit import AuditTrail

    t0_us = int(T0.timestamp() * 1e6)
    r = httpx.post(_base(api, seeded) + "/view-sessions", headers=_h(api, "investigator"), timeout=60,
                   json={"watched_us": [[t0_us, t0_us + 2_500_000]], "frames_stepped": 3, "stills_taken": 1})
    assert r.status_code == 204
    (entry,) = AuditTrail(evidence.store).read(request_id=r.headers["x-request-id"])
    assert entry["view_session"]["watched"] == [["2026-11-28T12:00:00.000000Z", "2026-11-28T12:00:02.500000Z"]]
    assert entry["view_session"]["watched_ms"] == 2500 and entry["view_session"]["frames_stepped"] == 3


def test_portal_session_works_on_the_api_and_needs_csrf_to_change_anything(api: dict, seeded: dict) -> None:
    with httpx.Client(base_url=api["url"], timeout=60, follow_redirects=False) as web:
        page = web.get("/signin")
        pre = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert pre
        r = web.post("/signin", data={"token": api["users"]["investigator"][1], "csrf": pre.group(1)})
        assert r.status_code == 303
        tl = web.get(f"/api/cases/{seeded['case'].id}/exhibits/{seeded['exhibit'].id}/timeline")
        assert tl.status_code == 200
        copy = tl.json()["files"][0]["review_copy"]["object_id"]
        path = f"/api/cases/{seeded['case'].id}/exhibits/{seeded['exhibit'].id}"
        assert web.get(f"{path}/objects/{copy}/content", headers={"Range": "bytes=0-9"}).status_code == 206
        refused = web.post(f"{path}/stills", json={"clock": "2026-11-28T12:00:01Z"})
        assert refused.status_code == 403
        html = web.get(f"/cases/{seeded['case'].id}/exhibits/{seeded['exhibit'].id}").text
        token = re.search(r'data-csrf="([^"]+)"', html)
        assert token
        ok = web.post(f"{path}/stills", json={"clock": "2026-11-28T12:00:01Z"},
                      headers={"X-CSRF-Token": token.group(1)})
        assert ok.status_code == 201, ok.text


def test_whole_object_stream_holds_the_last_chunk_until_the_hash_matches() -> None:
    """The hold-back rule on its own (a fake store object: this is a pure unit)."""
    from pipeline.api.media import _checked_stream
    from pipeline.errors import IntegrityError

    chunks = [b"a" * 10, b"b" * 10, b"c" * 3]

    class Store:
        def stream_object(self, *_a: Any) -> Iterator[bytes]:
            yield from chunks

    class Svc:
        ev = type("Ev", (), {"store": Store()})()

    good = type("Obj", (), {"bucket": "b", "key": "k", "version_id": "v",
                            "sha256": hashlib.sha256(b"".join(chunks)).hexdigest()})()
    assert b"".join(_checked_stream(Svc(), good)) == b"".join(chunks)  # type: ignore[arg-type]
    bad = type("Obj", (), {"bucket": "b", "key": "k", "version_id": "v", "sha256": "0" * 64})()
    got: list[bytes] = []
    with pytest.raises(IntegrityError):
        for c in _checked_stream(Svc(), bad):  # type: ignore[arg-type]
            got.append(c)
    assert got == chunks[:-1]  # the client never receives a complete-looking wrong file


def test_cli_review_commands(cli: Cli, seeded: dict, tmp_path: Path) -> None:
    tl = cli.json("review", "timeline", "CAM7/20261128", "--case", seeded["case_ref"])
    assert tl["summary"]["gaps"] == 1  # type: ignore[index]
    assert cli.json("review", "prepare", "CAM7/20261128", "--case", seeded["case_ref"])["prepared"] == []  # type: ignore[index]
    clip = cli.json("review", "clip", "CAM7/20261128", "--case", seeded["case_ref"], "--from",
                    "2026-11-28T12:00:10.5Z", "--to", "2026-11-28T12:00:11Z", "--exact")
    assert clip["frames"] == 13 and clip["mode"] == "frame_exact"  # type: ignore[index]
    still = cli.json("review", "still", "CAM7/20261128", "--case", seeded["case_ref"], "--at", "2026-11-28T12:00:12Z")
    assert still["source_name"] == "seg2.ts" and still["frame_index"] == 50  # type: ignore[index]
    sheet = cli.json("review", "sheet", "CAM7/20261128", "--case", seeded["case_ref"])
    assert sheet["pages"] >= 1  # type: ignore[index]
    bad = cli.run("bundle", "--case", seeded["case_ref"], "--out", str(tmp_path / "b.zip"), check=False)
    assert bad.returncode == 2 and "--recipient" in bad.stderr

"""Camera ingest end to end: real RTSP emulator, real ffmpeg, real S3, custody events.

Outage lengths are deliberate fault durations; every wait for the system is a
poll on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import CUSTODY


def wait_for(cond, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def cameras(cli):  # type: ignore[no-untyped-def]
    cli.run("stack", "up", "--cameras", "2", "--no-prefect")
    yield cli
    from pipeline.capture import stop_emulator

    stop_emulator(cli.home / "emulator")


def camera_exhibit(evidence, case_ref: str, prefix: str) -> str | None:  # type: ignore[no-untyped-def]
    """The ref of the one exhibit `prefix/<day>` in the case (the run's own day, even when it crosses midnight)."""
    case = evidence.catalog.find_case(case_ref)
    refs = [e.ref for e in evidence.catalog.list_exhibits(case)] if case else []
    found = [r for r in refs if r.startswith(prefix + "/")]
    assert len(found) <= 1, f"more than one {prefix} exhibit: {found}"
    return found[0] if found else None


def _segment_events(evidence, case_ref: str, exhibit_ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    _, ex = evidence.get(case_ref, exhibit_ref)
    return [e for e in evidence.log.events(ex.id) if e["action"] == "segment_recorded"]


def _settings():  # type: ignore[no-untyped-def]
    from pipeline.settings import load_settings

    return load_settings()


def _url(cli, cam: str) -> str:  # type: ignore[no-untyped-def]
    return cli.json("stack", "status")["cameras"]["urls"][cam]


def _flow_runs(api: str, recording: str) -> list[dict]:
    """camera_ingest flow runs attached to one recording, from the Prefect server's own API."""
    body = json.dumps({"flows": {"name": {"any_": ["camera_ingest"]}}, "limit": 200}).encode()
    req = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback test server
        return [x for x in json.loads(r.read()) if x["parameters"].get("recording") == recording]


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_two_cameras_with_an_outage(cameras, evidence, case_ref, tmp_path):  # type: ignore[no-untyped-def]
    from pipeline.capture.ingest import ingest_camera

    cli = cameras
    reports: dict[str, object] = {}

    def run(cam: str) -> None:
        reports[cam] = ingest_camera(_settings(), camera=cam, url=_url(cli, cam), case_ref=case_ref, duration=22,
                                     segment_seconds=4, stall_timeout=3, drain_interval=0.5)

    threads = [threading.Thread(target=run, args=(c,)) for c in ("cam1", "cam2")]
    for t in threads:
        t.start()
    ex2 = wait_for(lambda: (r := camera_exhibit(evidence, case_ref, "CAM2")) and _segment_events(
        evidence, case_ref, r) and r, 30, "cam2's first stored segment")
    # the emulator's own times of the change (a CLI call's start/end would add its start-up, >1 s under load)
    t_stop = datetime.fromtimestamp(cli.json("stack", "camera", "cam2", "--stop")["at"], UTC)
    time.sleep(5)  # the outage itself
    t_start = datetime.fromtimestamp(cli.json("stack", "camera", "cam2", "--start")["at"], UTC)
    for t in threads:
        t.join(timeout=120)
    r1, r2 = reports["cam1"], reports["cam2"]
    assert r1.pending == 0 and r2.pending == 0 and not r1.errors and not r2.errors

    # every segment is in the store, decodable, hash-checked by verify, with contiguous timing on cam1
    assert (r1.exhibit, r2.exhibit) == (camera_exhibit(evidence, case_ref, "CAM1"), ex2)
    ex1 = r1.exhibit
    segs1 = _segment_events(evidence, case_ref, ex1)
    assert len(segs1) == r1.segments_recorded >= 4
    starts = [datetime.fromisoformat(e["parameters"]["wallclock_start"].replace("Z", "+00:00")) for e in segs1]
    ends = [datetime.fromisoformat(e["parameters"]["wallclock_end"].replace("Z", "+00:00")) for e in segs1]
    for prev_end, nxt in zip(ends, starts[1:], strict=False):
        assert abs((nxt - prev_end).total_seconds()) < 1.0
    for e in segs1:  # how each segment's wall-clock time was obtained, and how the stream was read
        p = e["parameters"]
        assert p["clock_source"].startswith("receiver clock") and "camera clock" in p["clock_source"]
        assert p["camera_clock_offset"] is None or abs(float(p["camera_clock_offset"])) < 2.0  # floats: decimal text
        assert p["source"]["source"] == "rtsp" and p["source"]["url"].endswith("/cam1")
    assert any(e["parameters"]["camera_clock_offset"] is not None for e in segs1), "RTCP clock never measured"
    for e in segs1[:2] + _segment_events(evidence, case_ref, ex2)[-1:]:
        o = e["objects"][0]
        local = tmp_path / f"{o['key'].rsplit('/', 1)[-1]}.ts"
        evidence.store.download_verified(o["bucket"], o["key"], o["version_id"], o["sha256"], local)
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
                                "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", str(local)],
                               capture_output=True, text=True, check=True)
        stream = json.loads(probe.stdout)["streams"][0]
        assert stream["codec_name"] == "h264" and int(stream["nb_read_frames"]) > 0
    # the outage is a gap event whose bounds contain it, and recording resumed by itself
    _, e2 = evidence.get(case_ref, ex2)
    gaps = [e["parameters"] for e in evidence.log.events(e2.id) if e["action"] == "gap"]
    assert len(gaps) == 1, gaps
    g_start = datetime.fromisoformat(gaps[0]["start"])
    g_end = datetime.fromisoformat(gaps[0]["end"])
    assert abs((g_start - t_stop).total_seconds()) <= 1.0
    assert g_end >= t_start
    after = [e for e in _segment_events(evidence, case_ref, ex2)
             if datetime.fromisoformat(e["parameters"]["wallclock_start"].replace("Z", "+00:00")) >= g_end]
    assert after, "recording resumed after the outage"
    assert cli.run("verify", "--case", case_ref).returncode == 0


def test_store_outage_loses_nothing(cameras, evidence, case_ref):  # type: ignore[no-untyped-def]
    from pipeline.capture.ingest import ingest_camera
    from pipeline.ops.stack import read_state, start_s3, stop_s3

    cli = cameras
    settings = _settings()
    out: dict[str, object] = {}
    # records until told to stop (the duration is only a backstop), so a slow start cannot leave too little
    # recording after the outage begins
    stop = threading.Event()
    t = threading.Thread(target=lambda: out.setdefault("r", ingest_camera(
        settings, camera="cam1", url=_url(cli, "cam1"), case_ref=case_ref, duration=180, segment_seconds=3,
        stall_timeout=3, drain_interval=0.5, stop_event=stop)))
    t.start()
    try:
        ex = wait_for(lambda: (x := camera_exhibit(evidence, case_ref, "CAM1")) and _segment_events(
            evidence, case_ref, x) and x, 60, "a stored segment")
        endpoint = read_state(settings).endpoint  # type: ignore[union-attr]
        stop_s3(settings)
        spool = settings.spool_dir / "cam1"
        # recording goes on while the store is down: wait until at least two more segments are spooled
        n0 = len(list(spool.rglob("*.ts")))
        wait_for(lambda: len(list(spool.rglob("*.ts"))) >= n0 + 2, 60, "segments spooled during the store outage")
    finally:
        # the rest of the session shares this store, and the recorder keeps its endpoint
        restarted = start_s3(settings).endpoint
        stop.set()
    assert restarted == endpoint, "the restarted store moved its endpoint"
    t.join(timeout=120)
    assert not t.is_alive(), "the recorder did not stop and drain within 120 s"
    r = out["r"]
    assert r.pending == 0 and not r.errors
    segs = _segment_events(evidence, case_ref, ex)
    assert len(segs) == r.segments_recorded
    assert len({e["parameters"]["item_id"] for e in segs}) == len(segs)
    assert cli.run("verify", "--case", case_ref).returncode == 0


def test_kill9_then_new_run_uploads_leftovers_once(cameras, evidence, case_ref, prefect_api):  # type: ignore[no-untyped-def]

    cli = cameras
    spool = Path(_settings().spool_dir) / "cam2"
    journal = spool / "journal.jsonl"
    journal_before = len(journal.read_text().splitlines()) if journal.exists() else 0

    def hashed_count() -> int:
        p = spool / "journal.jsonl"
        if not p.exists():
            return 0
        lines = p.read_text().splitlines()[journal_before:]
        return sum(1 for x in lines if '"event": "hashed"' in x)

    proc = subprocess.Popen([CUSTODY, "cameras", "run", "--camera", "cam2", "--duration", "60s", "--segment", "2s",
                             "--case", case_ref, "--no-prefect"], env={**cli.env, "CUSTODY_HOME": str(cli.home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: hashed_count() >= 3, 60, "three spooled segments")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # a new run (reported as a real Prefect flow run) uploads what was left, exactly once
    out = cli.json("cameras", "run", "--camera", "cam2", "--duration", "4s", "--segment", "2s", "--case", case_ref,
                   timeout=240)
    assert out["pending"] == 0
    runs = _flow_runs(prefect_api, out["run_id"])
    assert [r["state_type"] for r in runs] == ["COMPLETED"], runs
    assert runs[0]["parameters"]["camera_id"] == "cam2" and "cam2" in runs[0]["tags"]
    segs = _segment_events(evidence, case_ref, out["exhibit"])
    ids = [e["parameters"]["item_id"] for e in segs]
    assert len(ids) == len(set(ids)), "a segment was recorded twice"
    assert len(ids) >= 3
    assert cli.run("verify", "--case", case_ref).returncode == 0


def test_inventory_camera_clock_and_the_time_between_two_runs(cameras, evidence, case_ref, tmp_path):  # type: ignore[no-untyped-def]
    """`camera_clock: false` reaches the recorder; a second run on the camera-day states the time between runs."""
    inv = tmp_path / "cameras.yaml"
    inv.write_text(f"cameras:\n  - id: cam1\n    url: {_url(cameras, 'cam1')}\n    case_ref: {case_ref}\n"
                   "    exhibit_prefix: INV1\n    segment_seconds: 2\n    stall_timeout: 5\n    camera_clock: false\n")
    first = cameras.json("cameras", "run", "--camera", "cam1", "--inventory", str(inv), "--duration", "4s",
                         "--no-prefect")
    second = cameras.json("cameras", "run", "--camera", "cam1", "--inventory", str(inv), "--duration", "4s",
                          "--no-prefect")
    assert first["exhibit"] == second["exhibit"] and first["pending"] == second["pending"] == 0
    _, ex = evidence.get(case_ref, first["exhibit"])
    events = evidence.log.events(ex.id)
    segs = [e["parameters"] for e in events if e["action"] == "segment_recorded"]
    assert segs and all("camera clock: not measured (disabled)" in p["clock_source"] for p in segs)
    assert all(p["camera_clock_offset"] is None for p in segs)
    cover = sorted((e["parameters"] for e in events if e["action"] == "coverage"), key=lambda c: c["start"])
    between = [c for c in cover if c["state"] == "not_scheduled"]
    assert len(between) == 1, cover
    first_end = max(_t(p["wallclock_end"]) for p in segs if _t(p["wallclock_start"]) < _t(second["ffmpeg_started"]))
    assert _t(between[0]["start"]) == first_end
    assert _t(between[0]["end"]) <= _t(second["ffmpeg_started"])
    # the spans tile the exhibit's time with no hole and no overlap: recorded, gaps, the time between the runs
    for a, b in zip(cover, cover[1:], strict=False):
        assert _t(a["end"]) == _t(b["start"]), (a, b)
    assert {c["state"] for c in cover} <= {"recorded", "gap", "not_scheduled"} and "recorded" in {
        c["state"] for c in cover}

"""Pure parts of review: the clock-time timeline, time sources, ranges, snapping, clip plans, selections, zones.

Fakes here are custody events written by hand (the format is documented), never a fake of a component.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pipeline.review.timeline import build_timeline, locate
from pipeline.review.timesource import parse_instant

EX = {"id": "exh-" + "0" * 32, "ref": "CAM1/20261128", "officer": "DC A", "description": "", "case_id": "c"}


def _seg(seq: int, name: str, start: str, end: str, partial: bool = False, camera: str = "cam1") -> dict:
    return {"seq": seq, "action": "segment_recorded", "time": "2026-11-28T13:00:00.000000Z",
            "actor": {"name": "recorder", "role": "system"},
            "objects": [{"bucket": "o", "key": f"k/{name}", "version_id": "v", "sha256": name * 4, "size": 10,
                         "role": "original", "status": "partial" if partial else "ok", "original_name": name,
                         "content_type": "video/mp2t", "info": {"kind": "video"}}],
            "parameters": {"camera": camera, "wallclock_start": start, "wallclock_end": end, "partial": partial}}


def _events() -> list[dict]:
    return [
        _seg(1, "a.ts", "2026-11-28T12:00:00.000000Z", "2026-11-28T12:01:00.000000Z"),
        _seg(2, "b.ts", "2026-11-28T12:01:00.200000Z", "2026-11-28T12:01:30.000000Z", partial=True),
        {"seq": 3, "action": "gap", "time": "t", "actor": {}, "objects": [],
         "parameters": {"camera": "cam1", "start": "2026-11-28T12:01:29.500000+00:00",
                        "end": "2026-11-28T12:02:10.000000+00:00", "seconds": "40.5", "reason": "stall"}},
        _seg(4, "c.ts", "2026-11-28T12:02:10.000000Z", "2026-11-28T12:03:10.000000Z"),
        _seg(5, "d.ts", "2026-11-28T12:05:00.000000Z", "2026-11-28T12:06:00.000000Z"),
        {"seq": 6, "action": "coverage", "time": "t", "actor": {}, "objects": [],
         "parameters": {"start": "2026-11-28T12:06:00Z", "end": "2026-11-28T13:00:00Z", "state": "not scheduled",
                        "reason": "outside the camera's window"}},
        {"seq": 7, "action": "something_new", "time": "t", "actor": {}, "objects": [], "parameters": {}},
    ]


def test_camera_exhibit_on_one_axis_with_gaps_holes_and_schedule() -> None:
    tl = build_timeline(EX, _events())
    assert tl["kind"] == "camera" and tl["cameras"] == ["cam1"]
    assert [f["name"] for f in tl["files"]] == ["a.ts", "b.ts", "c.ts", "d.ts"]
    b = tl["files"][1]
    assert b["partial"] and b["start_recorded"] == "2026-11-28T12:01:00.200000Z" and b["duration"] == 29.8
    states = [(s["state"], s["start"], s["end"]) for s in tl["coverage"]]
    # a and b touch within the recorder's 1 s bound: one recorded span
    assert ("recorded", "2026-11-28T12:00:00.000000Z", "2026-11-28T12:01:30.000000Z") in states
    gap = next(s for s in tl["coverage"] if s["state"] == "gap")
    assert gap["start_recorded"] == "2026-11-28T12:01:29.500000+00:00" and gap["reason"] == "stall"
    hole = next(s for s in tl["coverage"] if s["state"] == "unexplained")
    assert (hole["start"], hole["end"]) == ("2026-11-28T12:03:10.000000Z", "2026-11-28T12:05:00.000000Z")
    sched = next(s for s in tl["coverage"] if s["state"] == "not_scheduled")
    assert sched["reason"] == "outside the camera's window"
    assert tl["summary"]["seconds_by_state"]["unexplained"] == 110.0
    assert tl["summary"]["partial_files"] == 1 and tl["summary"]["gaps"] == 1
    hit = locate(tl, parse_instant("2026-11-28T12:02:40.5Z"))  # type: ignore[arg-type]
    assert hit is not None and hit[0]["name"] == "c.ts" and hit[1] == pytest.approx(30.5)
    assert locate(tl, parse_instant("2026-11-28T12:04:00Z")) is None  # type: ignore[arg-type]


def _upload(seq: int, name: str, ctype: str, kind: str) -> dict:
    return {"seq": seq, "action": "ingested", "time": "t", "actor": {"name": "DC A", "role": "officer"},
            "objects": [{"bucket": "o", "key": f"k/{name}", "version_id": "v", "sha256": name, "size": 5,
                         "role": "original", "status": "ok", "original_name": name, "content_type": ctype,
                         "info": {"kind": kind}}],
            "parameters": {"seized_at": "2026-06-01T07:15:00Z", "seized_at_zone": "Europe/London"}}


def _metadata(seq: int, name: str, md: dict) -> dict:
    return {"seq": seq, "action": "metadata_extracted", "time": "t", "actor": {},
            "objects": [{"bucket": "d", "key": f"m/{name}", "role": "derived", "kind": "metadata",
                         "source": {"bucket": "o", "key": f"k/{name}", "version_id": "v"}}],
            "details": {"metadata": md}}


def test_field_uploads_say_how_their_time_was_obtained_and_untimed_files_stand_apart() -> None:
    events = [_upload(1, "phone.mp4", "video/mp4", "video"),
              _metadata(2, "phone.mp4", {"creation_time": "2026-06-01T08:10:00.000000Z", "duration_seconds": "12.5"}),
              _upload(3, "pic.jpg", "image/jpeg", "image"),
              _metadata(4, "pic.jpg", {"capture_time": "2026:06:01 08:12:00"}),
              _upload(5, "notes.bin", "application/octet-stream", "other"),
              {"seq": 6, "action": "clock_offset_recorded", "time": "t", "actor": {}, "objects": [],
               "parameters": {"offset_ms": 3600000}}]
    tl = build_timeline(EX, events)
    phone, pic = tl["files"]
    assert phone["start"] == "2026-06-01T07:10:00.000000Z" and phone["end"] == "2026-06-01T07:10:12.500000Z"
    assert phone["start_recorded"] == "2026-06-01T08:10:00.000000Z"
    assert "creation_time" in phone["time_how"] and "event 6" in phone["time_how"]
    assert pic["start"] == "2026-06-01T07:12:00.000000Z" and "EXIF" in pic["time_how"]
    assert [f["name"] for f in tl["untimed"]] == ["notes.bin"]
    assert tl["kind"] == "files"


def test_stills_sorted_by_clock_time_with_their_source_file() -> None:
    events = _events()
    stills = []
    for n, (src, off) in enumerate((("c.ts", 1.0), ("a.ts", 3.0), ("a.ts", 1.0))):
        stills.append({"bucket": "d", "key": f"s/{n}", "sha256": f"s{n}", "role": "derived", "kind": "still",
                       "source": {"bucket": "o", "key": f"k/{src}", "version_id": "v"},
                       "info": {"offset": repr(off), "pts": 1}})
    events.append({"seq": 9, "action": "frames_extracted", "time": "t", "actor": {}, "objects": stills})
    tl = build_timeline(EX, events)
    assert [(s["source_name"], s["wallclock"]) for s in tl["stills"]] == [
        ("a.ts", "2026-11-28T12:00:01.000000Z"), ("a.ts", "2026-11-28T12:00:03.000000Z"),
        ("c.ts", "2026-11-28T12:02:11.000000Z")]


def test_range_header_parsing() -> None:
    from pipeline.api.media import parse_range

    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=95-200", 100) == (95, 99)
    assert parse_range("bytes=100-", 100) == "unsatisfiable"
    assert parse_range("bytes=5-1", 100) == "unsatisfiable"
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole object
    assert parse_range("items=0-1", 100) is None


def test_snap_picks_the_frame_the_browser_reported() -> None:
    from pipeline.review.stills import snap

    pts = np.arange(126000, 126000 + 3600 * 50, 3600, dtype=np.int64)  # 25 fps in 1/90000
    i, exact, target = snap(pts, Fraction(1, 90000), 1.1199999)  # a float a hair below frame 28
    assert (i, exact) == (28, pytest.approx(1.12)) and exact < target < exact + 0.04


def test_a_paused_player_is_told_the_frame_on_screen_not_a_nominal_grid() -> None:
    """Recorded frames are not on a regular grid (here they arrive 3.6-9.4 ms late): the frame shown at a seek
    target is the last that starts at or before it, with its own time, not first + k * 40 ms."""
    from pipeline.review.stills import frame_on_screen

    jitter = np.array([0, 850, 0, 320, 0, 0, 0, 0, 0, 0], dtype=np.int64)  # 90 kHz ticks late
    pts = 1000 + np.arange(10, dtype=np.int64) * 3600 + jitter
    tb = Fraction(1, 90000)
    i, exact = frame_on_screen(pts, tb, 0.0450)  # 45 ms in: frame 1, which started at 49.4 ms, is not yet shown
    assert (i, exact) == (0, 0.0)
    i, exact = frame_on_screen(pts, tb, (3600 + 850) / 90000)  # exactly frame 1's own start
    assert i == 1 and exact == pytest.approx(4450 / 90000)
    assert frame_on_screen(pts, tb, 0.1230)[0] == 2  # the grid says frame 3 (120 ms); it starts at 123.6 ms
    assert frame_on_screen(pts, tb, 0.1399)[0] == 3 and frame_on_screen(pts, tb, 99.0)[0] == 9
    with pytest.raises(Exception, match="no readable frames"):
        frame_on_screen(np.array([], dtype=np.int64), tb, 1.0)


def test_clip_plans_widen_stream_copies_to_whole_gops() -> None:
    from pipeline.review.clips import plan_part

    pts = np.arange(0, 100 * 3600, 3600, dtype=np.int64)
    keys = pts[::25]
    exact = plan_part(pts, keys, 1 / 90000, 1.03, 2.5, "frame_exact")
    assert (exact.first, exact.last) == (25, 62)
    gop = plan_part(pts, keys, 1 / 90000, 1.03, 2.5, "stream_copy")
    assert (gop.first, gop.last) == (25, 74) and gop.start_offset == 1.0 and gop.end_offset == pytest.approx(3.0)


def test_seizure_time_zone_is_converted_and_recorded() -> None:
    from pipeline.errors import UsageError
    from pipeline.web.uploads import seizure_facts

    bst = seizure_facts("2026-06-01T08:15", "Europe/London", "Car park", None)
    assert bst["seized_at"] == "2026-06-01T07:15:00Z" and bst["seized_at_offset"] == "+01:00"
    assert bst["seized_at_local"] == "2026-06-01T08:15:00" and bst["seized_at_zone"] == "Europe/London"
    assert seizure_facts("2026-06-01T08:15", "+05:30", None, None)["seized_at"] == "2026-06-01T02:45:00Z"
    with pytest.raises(UsageError, match="does not exist"):
        seizure_facts("2026-03-29T01:30", "Europe/London", None, None)
    with pytest.raises(UsageError, match="not known"):
        seizure_facts("2026-03-29T01:30", "Mars/Olympus", None, None)


def test_reviewed_once_per_user_and_day() -> None:
    from pipeline.review.viewing import already_reviewed

    events = [{"action": "reviewed", "actor": {"name": "alice"}, "time": "2026-11-28T09:00:00.000000Z"}]
    assert already_reviewed(events, "alice", "2026-11-28")
    assert not already_reviewed(events, "alice", "2026-11-29")
    assert not already_reviewed(events, "bob", "2026-11-28")


def test_object_ids_match_the_api() -> None:
    from pipeline.api.cases import object_id as api_id
    from pipeline.review.objects import object_id

    assert object_id("b", "k/1") == api_id("b", "k/1")


def test_activity_spans_and_bins() -> None:
    from pipeline.review.activity import ActivityParams, bins, spans

    offsets = np.arange(0, 5, 0.04)
    scores = np.full(len(offsets), 0.3)
    scores[50:60] = 12.0  # 2.0 .. 2.4 s
    scores[64] = 9.0  # 2.56 s: within the merge window
    scores[110] = 5.0  # 4.4 s: its own span
    threshold, found = spans(offsets, scores, ActivityParams())
    assert threshold == 2.0
    assert [(round(a, 2), round(b, 2), p) for a, b, p in found] == [(2.0, 2.6, 12.0), (4.4, 4.44, 5.0)]
    assert bins(offsets, scores, 1.0) == [0.3, 0.3, 12.0, 0.3, 5.0]


def _clip(path, filters: str, codec: list[str]) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=320x240:r=25:d=2", "-f",
                    "lavfi", "-i", filters, "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", *codec,
                    "-pix_fmt", "yuv420p", str(path)], check=True)


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "mpegts"]


@pytest.mark.parametrize("second, codec, metric", [
    ("testsrc2=s=320x240:r=25:d=1", H264, "coded"),  # movement after a still scene
    ("color=c=red:s=320x240:r=25:d=2", H264, "coded"),  # a cut on a keyframe to another still scene
    ("testsrc2=s=320x240:r=25:d=1", ["-c:v", "mjpeg", "-q:v", "5", "-f", "avi"], "decoded"),  # all-intra
])
def test_activity_index_finds_the_change_at_two_seconds(tmp_path, second, codec, metric) -> None:  # type: ignore[no-untyped-def]
    """Coded sizes for inter-coded footage (keyframes judged by their pictures), every frame decoded for
    all-intra footage: either way the one change, 2 s in, is the first span, and the scores repeat exactly."""
    from pipeline.review.activity import CODED_METRIC, METRIC, index_document

    clip = tmp_path / "c.bin"
    _clip(clip, second, codec)
    doc = index_document(clip, {"sha256": "x"})
    assert doc["metric"] == {"coded": CODED_METRIC, "decoded": METRIC}[metric]
    assert doc["spans"] and abs(doc["spans"][0][0] - 2.0) <= 0.04, doc["spans"]
    assert all(s[0] >= 1.96 for s in doc["spans"]), doc["spans"]
    assert index_document(clip, {"sha256": "x"})["frame_scores"] == doc["frame_scores"]

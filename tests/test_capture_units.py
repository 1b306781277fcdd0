"""Pure units of the capture package: backoff policy, progress clock, error mapping, camera sources, inventory
line numbers, journal compatibility. No processes; the recorder itself is tested against the emulator."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.capture import (
    Backoff,
    EmulatorError,
    EmulatorNotRunning,
    FfmpegNotFound,
    InventoryError,
    MissingCredential,
    RecorderError,
    SegmentInfo,
    SourceError,
    SpoolBusy,
    SpoolError,
    SpoolIntegrityError,
    UnknownEmulatorCamera,
    load_inventory,
    parse_inventory,
    record,
    source_for,
)
from pipeline.capture import sources as sources_pkg
from pipeline.capture.clock import StreamClock
from pipeline.capture.command import build_command, redact_url
from pipeline.errors import InfrastructureError, IntegrityError, UsageError


def test_backoff_retries_at_most_every_second_for_30_s_then_caps_at_5() -> None:
    b = Backoff()
    delay = None
    elapsed, waits = 0.0, []
    while elapsed < 120:
        delay = b.delay(elapsed, delay)
        waits.append((elapsed, delay))
        elapsed += delay
    assert all(d <= 1.0 for t, d in waits if t < 30), waits
    assert all(d <= 5.0 for _, d in waits)
    assert [d for t, d in waits if t >= 30][:5] == [1.0, 2.0, 4.0, 5.0, 5.0]
    # the 26 s outage of issue 13: wherever in it the camera returns, the next attempt is <= 0.5 s away
    assert max(d for t, d in waits if t < 26) == 0.5


def test_backoff_accepts_the_old_tuple_and_rejects_nonsense() -> None:
    assert Backoff.coerce((0.5, 2.0)) == Backoff(interval=0.5, cap=2.0)
    assert Backoff.coerce(None) == Backoff()
    for bad in ((0, 1), (3, 2), "fast"):
        with pytest.raises(RecorderError) as err:
            Backoff.coerce(bad)  # type: ignore[arg-type]
        assert err.value.exit_code == 2


def test_stream_clock_settles_past_ffmpegs_startup_burst() -> None:
    seen = []
    c = StreamClock(on_data=lambda: seen.append(1))
    assert c.wall0 is None and not c.settled
    c.sample(100.40, 0.0)  # first report: the probed packets replayed late
    assert not c.settled and c.wall0 == pytest.approx(100.40)
    c.sample(100.55, 0.40)  # caught up with the live stream
    assert c.settled and c.wall0 == pytest.approx(100.15)
    c.sample(200.0, 0.50, final=True)  # ffmpeg exiting: no arrival, the estimate must not move
    assert c.wall0 == pytest.approx(100.15) and c.last_advance == pytest.approx(100.55) and c.out_time == 0.5
    assert len(seen) == 2


def test_stream_clock_window_follows_a_drifting_camera() -> None:
    c = StreamClock(window=10)
    for i in range(200):  # camera clock 1 % slow: stream time falls behind ours
        c.sample(1000 + i * 0.1, i * 0.1 * 0.99)
    assert c.wall0 == pytest.approx(1000 + 19.9 - 19.9 * 0.99 - 0.1, abs=0.02)  # the last 10 s, not the first


def test_errors_map_to_cli_exit_codes() -> None:
    usage = (RecorderError, SourceError, InventoryError, MissingCredential, SpoolBusy, UnknownEmulatorCamera)
    assert all(issubclass(e, UsageError) and e.exit_code == 2 for e in usage)
    assert all(issubclass(e, InfrastructureError) and e.exit_code == 3
               for e in (FfmpegNotFound, EmulatorError, EmulatorNotRunning))
    assert issubclass(SpoolIntegrityError, IntegrityError) and SpoolIntegrityError.exit_code == 1
    assert issubclass(SpoolError, Exception) and SpoolError.exit_code == 1
    assert issubclass(SpoolBusy, SpoolError) and issubclass(UnknownEmulatorCamera, EmulatorError)


def test_recorder_refuses_a_scheme_no_source_serves(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no camera source for URL scheme ftp://; supported: rtsp://, rtsps://"):
        record("ftp://cam/x", tmp_path, duration=1)
    with pytest.raises(RecorderError, match="segment_seconds"):
        record("rtsp://127.0.0.1:1/x", tmp_path, duration=1, segment_seconds=0)


class MjpegSource:
    """What a new camera kind looks like: one class in one module of pipeline/capture/sources/."""

    name = "mjpeg"
    schemes = ("mjpeg",)

    def validate(self, url: str) -> str:
        if "@" in url:
            raise ValueError("no credentials in the url")
        return url

    def input_args(self, url: str, *, socket_timeout: float) -> tuple[str, dict[str, str]]:
        return "http" + url.removeprefix("mjpeg"), {"f": "mjpeg", "rw_timeout": str(int(socket_timeout * 1e6))}

    def redact(self, url: str) -> str:
        return url.split("?", 1)[0]

    def with_credentials(self, url: str, username: str, password: str | None) -> str:
        return f"{url}?user={username}"

    def describe(self, url: str) -> dict[str, Any]:
        return {"source": self.name, "url": self.redact(url)}


def test_a_new_source_plugs_in_by_scheme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources_pkg, "_REGISTRY", dict(sources_pkg._REGISTRY))
    sources_pkg.register(MjpegSource())
    assert isinstance(source_for("mjpeg://cam/video"), MjpegSource)
    cmd = build_command("mjpeg://cam/video", tmp_path, "x_%05d.ts", tmp_path / "l.csv", segment_seconds=4,
                        socket_timeout=2)
    assert cmd[cmd.index("-i") + 1] == "http://cam/video" and cmd[cmd.index("-f") + 1] == "mjpeg"
    inv = parse_inventory({"cameras": [{"id": "m", "url": "mjpeg://cam/video", "case_ref": "C", "exhibit_prefix": "X",
                                        "username_env": "U"}]})
    assert inv.cameras[0].resolved_url({"U": "op"}) == "mjpeg://cam/video?user=op"
    assert redact_url("mjpeg://cam/video?user=op") == "mjpeg://cam/video"
    with pytest.raises(InventoryError, match="no credentials in the url"):
        parse_inventory({"cameras": [{"id": "m", "url": "mjpeg://a@cam/v", "case_ref": "C", "exhibit_prefix": "X"}]})
    with pytest.raises(TypeError):
        sources_pkg.register(object())  # type: ignore[arg-type]


def test_rtsp_source_redacts_and_fills_credentials() -> None:
    rtsp = source_for("rtsps://cam:322/s")
    assert rtsp.name == "rtsp" and source_for("RTSP://x/y") is rtsp
    assert rtsp.redact("rtsp://op:hunter2@10.0.0.5:554/s") == "rtsp://op:***@10.0.0.5:554/s"
    assert rtsp.with_credentials("rtsp://[::1]:554/s", "o p", "p@ss") == "rtsp://o%20p:p%40ss@[::1]:554/s"
    _, opts = rtsp.input_args("rtsp://h/s", socket_timeout=2.5)
    assert opts["rtsp_transport"] == "tcp" and opts["timeout"] == "2500000" and opts["fpsprobesize"] == "0"


INVENTORY = """\
cameras:
  - id: cam1
    url: rtsp://10.0.0.5/stream1
    case_ref: OP-T/1
    exhibit_prefix: JD/CAM1
  - id: cam2
    url: rtsp://10.0.0.6/stream1
    case_ref: OP-T/1
    exhibit_prefix: JD/CAM2
    segment_seconds: 0
    windows:
      - cron: "0 22 * * *"
        duration: soon
"""


def test_inventory_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(INVENTORY)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    msg = str(err.value)
    assert f"{path}: line 10: camera 'cam2': field segment_seconds" in msg, msg
    assert "line 13: camera 'cam2': field windows.0.duration" in msg, msg
    assert err.value.exit_code == 2
    path.write_text(INVENTORY.replace("    case_ref: OP-T/1\n    exhibit_prefix: JD/CAM2", "    exhibit_prefix: X"))
    with pytest.raises(InventoryError, match=r"line 6: camera 'cam2': field case_ref: Field required"):
        load_inventory(path)
    path.write_text(INVENTORY.replace("  - id: cam2", "  - id: cam2\n   bad: [indent"))
    with pytest.raises(InventoryError, match=r"line 7, column \d+: not valid YAML"):
        load_inventory(path)
    path.write_text(textwrap.dedent("""\
        cameras:
          - {id: a, url: "rtsp://h/s", case_ref: C, exhibit_prefix: X, password: x}
    """))
    with pytest.raises(InventoryError, match=r"line 2: camera 'a': field password: Extra inputs"):
        load_inventory(path)


def test_old_journal_entries_still_load() -> None:
    old = {"path": "/spool/cam1/a.ts", "camera": "cam1", "index": 0, "connection": 1,
           "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:01:00+00:00", "stream_start": 0.0,
           "stream_end": 60.0, "size": 10, "sha256": "0" * 64, "partial": False, "ffmpeg_version": "ffmpeg 5",
           "command": ["ffmpeg"], "item_id": "cam1/a.ts", "some_future_field": 1}
    seg = SegmentInfo.from_json(json.loads(json.dumps(old)))
    assert seg.start == datetime(2026, 1, 1, tzinfo=UTC) and seg.camera_clock_offset is None
    assert "not recorded" in seg.clock_source and seg.source == ()


def test_clock_probe_digest_matches_rfc_2617(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RTCP clock probe authenticates like ffmpeg does; RFC 2617's worked example pins the digest."""
    from pipeline.capture import rtcp

    s = object.__new__(rtcp._Session)
    s.user, s.password = "Mufasa", "Circle Of Life"
    s.auth = {"scheme": "digest", "realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
              "qop": "auth,auth-int"}
    monkeypatch.setattr(rtcp.os, "urandom", lambda n: bytes.fromhex("0a4f113b"))
    header = s._authorization("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header and 'cnonce="0a4f113b"' in header
    s.auth = {"scheme": "basic"}
    assert s._authorization("DESCRIBE", "rtsp://h/s") == "Basic TXVmYXNhOkNpcmNsZSBPZiBMaWZl"


"""Pure units of the orchestration half of camera ingest: window occurrences and coverage spans, stable ports,
the shared process helpers, and the recorder-lock probe behind `cameras status` (real kernel locks)."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.capture.coverage import current_occurrence, next_occurrence, occurrences, recorded, uncovered
from pipeline.capture.inventory import RecordingWindow


def T(h: int, m: int = 0, s: float = 0, day: int = 1) -> datetime:  # noqa: N802 - reads like a time literal
    return datetime(2026, 12, day, h, m, tzinfo=UTC) + timedelta(seconds=s)


NIGHT = RecordingWindow(cron="0 22 * * *", duration="8h")


def _tiles(spans, start: datetime, end: datetime) -> None:  # type: ignore[no-untyped-def]
    assert spans[0].start == start and spans[-1].end == end
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end == b.start, (a, b)


def test_occurrences_cross_midnight() -> None:
    assert current_occurrence(NIGHT, T(2, day=2)) == (T(22), T(6, day=2))
    assert current_occurrence(NIGHT, T(21, 59)) is None
    assert current_occurrence(NIGHT, T(22)) == (T(22), T(6, day=2))  # the first instant belongs to it
    assert current_occurrence(NIGHT, T(6, day=2)) is None  # the end does not
    assert next_occurrence(NIGHT, T(22)) == (T(22, day=2), T(6, day=3))
    assert occurrences(NIGHT, T(12), T(23)) == [(T(22), T(6, day=2))]


def test_overlapping_occurrences_of_one_window_pick_the_latest() -> None:
    w = RecordingWindow(cron="*/10 * * * *", duration="25m")
    assert current_occurrence(w, T(12, 21)) == (T(12, 20), T(12, 45))


def test_catch_up_missed_part_names_the_window_and_the_start() -> None:
    spans = uncovered("cam1", T(22), T(22, 5, 13), [NIGHT], current=(T(22), T(6, day=2)))
    assert [(s.state, s.start, s.end) for s in spans] == [("missed", T(22), T(22, 5, 13))]
    assert spans[0].reason == "worker not running: window began 22:00:00, recording began 22:05:13"


def test_time_between_runs_is_missed_inside_windows_and_not_scheduled_elsewhere() -> None:
    windows = [RecordingWindow(cron="0 10 * * *", duration="1h"), RecordingWindow(cron="0 14 * * *", duration="1h")]
    spans = uncovered("cam1", T(8), T(14, 30), windows, current=(T(14), T(15)))
    assert [(s.state, s.start, s.end) for s in spans] == [
        ("not_scheduled", T(8), T(10)), ("missed", T(10), T(11)), ("not_scheduled", T(11), T(14)),
        ("missed", T(14), T(14, 30))]
    assert "cam1 10:00–11:00 not recorded" in spans[1].reason
    assert spans[3].reason.startswith("worker not running: window began 14:00:00")
    _tiles(spans, T(8), T(14, 30))
    assert uncovered("cam1", T(8), T(8, 0, 0.01), windows) == []  # a sliver is clock rounding


def test_a_run_is_recorded_and_gap_spans_with_the_recorders_reasons() -> None:
    segs = [(T(22, 0, 0.4), T(22, 1)), (T(22, 1), T(22, 2)), (T(22, 2, 30), T(22, 3))]
    gaps = [(T(22, 2), T(22, 2, 30), "ffmpeg exited rc=1")]
    spans = recorded(T(22), T(22, 3), segs, gaps)
    assert [(s.state, s.start, s.end) for s in spans] == [
        ("gap", T(22), T(22, 0, 0.4)), ("recorded", T(22, 0, 0.4), T(22, 2)), ("gap", T(22, 2), T(22, 2, 30)),
        ("recorded", T(22, 2, 30), T(22, 3))]
    assert spans[0].reason.startswith("connecting") and spans[2].reason == "ffmpeg exited rc=1"
    _tiles(spans, T(22), T(22, 3))
    only_gap = recorded(T(22), T(22, 1), [], [(T(22), T(22, 1), "no data at start: refused")])
    assert [(s.state, s.reason) for s in only_gap] == [("gap", "no data at start: refused")]
    sliver = recorded(T(22), T(22, 1), [(T(22, 0, 0.01), T(22, 1))], [])
    assert [(s.state, s.start) for s in sliver] == [("recorded", T(22))]


# ---- ports ----------------------------------------------------------------------------------------------------
def test_stable_port_is_remembered_and_moves_only_when_taken(tmp_path: Path) -> None:
    from pipeline.ops.ports import remember, stable_port
    from pipeline.settings import Settings

    settings = Settings(home=tmp_path / "home")
    first = stable_port(settings, "svc", 40000, span=200)
    assert stable_port(Settings(home=tmp_path / "home"), "svc", 40000, span=200) == first  # derived, not hash()
    remember(settings, "svc", first)
    assert stable_port(settings, "svc", 40000, span=200) == first
    with socket.socket() as s:
        s.bind(("127.0.0.1", first))
        s.listen()
        moved = stable_port(settings, "svc", 40000, span=200)
        assert moved != first and 40000 <= moved < 40200


# ---- processes and the recorder lock ------------------------------------------------------------------------
def test_shared_process_helpers_stop_and_reap_a_child(tmp_path: Path) -> None:
    from pipeline.ops.processes import alive, cmdline_has, kill, tail, track

    proc = track(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    deadline = time.monotonic() + 10
    while not cmdline_has(proc.pid, "time.sleep(60)"):  # until the child has exec'd
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert alive(proc.pid)
    kill(proc.pid, timeout=5)
    assert not alive(proc.pid) and proc.returncode is not None  # reaped, not left a zombie
    log = tmp_path / "x.log"
    log.write_text("a\nb\nc\n")
    assert tail(log, 2) == "b | c" and tail(tmp_path / "missing") == ""


def test_lock_holder_sees_a_live_recorders_lock_without_taking_it(tmp_path: Path) -> None:
    from pipeline.capture.status import lock_holder

    path = tmp_path / ".recording.lock"
    path.touch()
    assert lock_holder(path) is None
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert lock_holder(path) == os.getpid()
        fd2 = os.open(path, os.O_RDWR)  # the probe left the lock alone: a second taker is still refused
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd2)
    finally:
        os.close(fd)
    assert lock_holder(path) is None

"""Capture benchmark: CPU of the ffmpeg recorders per 1080p 4 Mbit/s camera, segment-close -> callback delay,
window-start latency, camera-return latency, and segment-close -> custody event delay (through a real store).

A generated 1080p25 4 Mbit/s H.264 file is looped (no re-encoding) by the emulator's file cameras; N recorders
pull them over RTSP/TCP with `-c copy`. CPU time of the recorder ffmpeg processes comes from
getrusage(RUSAGE_CHILDREN) (the emulator is not reaped until afterwards, so it is excluded), divided by the
recorded wall time, then extrapolated linearly to 16 cameras against the goal of < 0.5 core in total.

Window start (goal <= 1 s to ffmpeg start): from calling record() to the first ffmpeg being started, and to
the first packet (the recorder's wall0). Camera return (goal <= 1.5 s): a camera is stopped for 3 s (--quick:
2 s) and started again; from the emulator's own start time to the first packet of the new connection (the gap's
end), and to the emulator's PLAY from the recorder (its own clock only); also the start -> on_gap delay.

    .venv/bin/python bench/capture.py [--quick]      # --quick: < 60 s
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import print_json_line  # noqa: E402
from pipeline.capture import (  # noqa: E402
    GapInfo,
    SegmentInfo,
    camera_url,
    control_camera,
    emulator_status,
    record,
    start_emulator,
    stop_emulator,
)

GOAL_CORES_16 = 0.5
GOAL_WINDOW_START_S = 1.0
GOAL_RETURN_S = 1.5
OUTAGE_S = 3.0  # 2 s with --quick


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout:g} s waiting for {what}")
        threading.Event().wait(0.02)


def camera_returns(info, state: Path, spool: Path, cycles: int,  # type: ignore[no-untyped-def]
                   outage: float) -> dict[str, list[float]]:
    """Stop/start one camera `cycles` times while recording it; seconds from each start to what followed."""
    gaps: list[tuple[float, GapInfo]] = []
    segs: list[SegmentInfo] = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: record(camera_url(info, "hd1"), spool, segment_seconds=2, stall_timeout=5,
                                               on_segment=segs.append, stop_event=stop, camera_clock=False,
                                               on_gap=lambda g: gaps.append((time.time(), g))))
    t.start()
    out: dict[str, list[float]] = {"first_packet": [], "play": [], "on_gap": []}
    def recording_since(t: float) -> bool:
        return any(p.stat().st_mtime > t and p.stat().st_size > 0 for p in (spool / "hd1").glob("*.ts"))

    try:
        started = 0.0
        for n in range(cycles):
            wait_for(lambda t=started: recording_since(t + 0.5), 30, "data flowing")
            control_camera(state, "hd1", "stop")
            threading.Event().wait(outage)  # the outage itself
            started = control_camera(state, "hd1", "start")["at"]
            wait_for(lambda n=n: len(gaps) > n, 30, "the gap to be reported")
            reported, gap = gaps[n]
            plays = [x for x, what in emulator_status(state)["events"]["hd1"] if what == "play" and x >= started]
            out["first_packet"].append(gap.end.timestamp() - started)
            out["play"].append(min(plays) - started if plays else float("nan"))
            out["on_gap"].append(reported - started)
    finally:
        stop.set()
        t.join()
    return out


def ms(values: list[float], fn=statistics.median) -> float:  # type: ignore[no-untyped-def]
    return round(fn(values) * 1000, 1) if values else -1


def make_source(path: Path, seconds: int = 8) -> None:
    """1080p25, 4 Mbit/s CBR-ish H.264 elementary stream, 2 s GOP (a typical covert camera profile)."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=25", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
                    "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50", "-pix_fmt", "yuv420p", "-f", "h264",
                    str(path)], check=True)


def cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 cameras x 20 s (under a minute)")
    ap.add_argument("--cameras", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    cams = args.cameras or (2 if args.quick else 4)
    seconds = args.seconds or (20.0 if args.quick else 90.0)
    segment = 4.0 if args.quick else 10.0

    with tempfile.TemporaryDirectory(prefix="custody-bench-capture-") as d:
        tmp = Path(d)
        src = tmp / "hd.h264"
        make_source(src)
        state = tmp / "emu"
        info = start_emulator(state, cameras=0, file_cameras={f"hd{i}": src for i in range(1, cams + 1)})
        delays: list[float] = []
        segs: list[SegmentInfo] = []
        lock = threading.Lock()

        def on_segment(seg: SegmentInfo) -> None:
            now = time.time()
            with lock:
                segs.append(seg)
                if not seg.partial:
                    delays.append(now - seg.path.stat().st_mtime)  # last write = segment close

        summaries = []
        called: dict[str, float] = {}

        def run_camera(n: int) -> None:
            called[f"hd{n}"] = time.time()
            summaries.append(record(camera_url(info, f"hd{n}"), tmp / "spool", segment_seconds=segment,
                                    duration=seconds, stall_timeout=10, on_segment=on_segment))

        try:
            c0, s0, t0 = cpu(resource.RUSAGE_CHILDREN), cpu(resource.RUSAGE_SELF), time.monotonic()
            threads = [threading.Thread(target=run_camera, args=(n,)) for n in range(1, cams + 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            ff_cpu = cpu(resource.RUSAGE_CHILDREN) - c0
            py_cpu = cpu(resource.RUSAGE_SELF) - s0
            to_ffmpeg = [s.attempts[0].timestamp() - called[s.camera] for s in summaries]
            to_packet = [min(x.start for x in s.segments).timestamp() - called[s.camera] for s in summaries
                         if s.segments]
            returns = camera_returns(info, state, tmp / "spool-return", *((2, 2.0) if args.quick else (5, OUTAGE_S)))
            # phase 2: one camera through the whole custody path (spool -> S3 -> signed event)
            from bench._common import temp_stack
            from pipeline.capture.ingest import ingest_camera
            from pipeline.settings import load_settings

            with temp_stack():
                rep = ingest_camera(load_settings(), camera="hd1", url=camera_url(info, "hd1"), case_ref="BENCH/1",
                                    duration=10.0 if args.quick else 40.0, segment_seconds=segment,
                                    stall_timeout=10, drain_interval=0.5)
            event_delays = rep.close_to_event_s
        finally:
            stop_emulator(state)

    recorded = sum(s.recorded_seconds for s in summaries)
    mbytes = sum(s.size for s in segs) / 1e6
    per_cam = ff_cpu / (wall * cams)
    py_per_cam = py_cpu / (wall * cams)
    figures = {
        "cameras": cams,
        "wall_seconds": round(wall, 2),
        "recorded_seconds": round(recorded, 2),
        "segments": len(segs),
        "megabytes": round(mbytes, 1),
        "mbit_per_s_per_camera": round(mbytes * 8 / max(recorded, 1e-9), 2),
        "ffmpeg_cpu_seconds": round(ff_cpu, 3),
        "ffmpeg_cores_per_camera": round(per_cam, 4),
        "ffmpeg_cores_16_cameras": round(per_cam * 16, 3),
        "python_cores_per_camera": round(py_per_cam, 4),
        "total_cores_16_cameras": round((per_cam + py_per_cam) * 16, 3),
        "goal_cores_16_cameras": GOAL_CORES_16,
        "meets_goal": int(per_cam * 16 < GOAL_CORES_16),
        "close_to_callback_ms_median": round(statistics.median(delays) * 1000, 1) if delays else -1,
        "close_to_callback_ms_max": round(max(delays) * 1000, 1) if delays else -1,
        "close_to_custody_event_ms_median": round(statistics.median(event_delays) * 1000, 1) if event_delays else -1,
        "close_to_custody_event_ms_max": round(max(event_delays) * 1000, 1) if event_delays else -1,
        "window_start_to_ffmpeg_ms_max": ms(to_ffmpeg, max),
        "window_start_to_first_packet_ms_median": ms(to_packet),
        "window_start_to_first_packet_ms_max": ms(to_packet, max),
        "goal_window_start_to_ffmpeg_ms": GOAL_WINDOW_START_S * 1000,
        "camera_return_to_first_packet_ms_median": ms(returns["first_packet"]),
        "camera_return_to_first_packet_ms_max": ms(returns["first_packet"], max),
        "camera_return_to_emulator_play_ms_max": ms(returns["play"], max),
        "camera_return_to_on_gap_ms_max": ms(returns["on_gap"], max),
        "goal_camera_return_to_first_packet_ms": GOAL_RETURN_S * 1000,
        "meets_latency_goals": int(bool(to_ffmpeg and returns["first_packet"]) and max(to_ffmpeg) <= GOAL_WINDOW_START_S
                                   and max(returns["first_packet"]) <= GOAL_RETURN_S),
    }
    table = Table(title=f"capture: {cams} x 1080p25 4 Mbit/s cameras, {seconds:g} s, {segment:g} s segments")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in figures.items():
        table.add_row(k, str(v))
    Console(stderr=True).print(table)
    print_json_line(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

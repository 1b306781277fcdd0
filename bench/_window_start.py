"""Window-start latency through the product's own paths, and what Prefect in the stack costs (bench/capture.py).

- `custody cameras run`: from launching the command to its ffmpeg being started (the run's `ffmpeg_started`),
  with and without a Prefect server to report to;
- `cameras serve`'s scheduler: from an occurrence's scheduled instant to ffmpeg started (in-process Scheduler,
  the code `cameras serve` runs; and, in the full run, the real `custody cameras serve` on a cron minute);
- `custody stack up` wall time with and without Prefect, and the Prefect server's RSS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import CUSTODY


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cameras_run(env: dict[str, str], url: str, n: int, *, prefect: bool) -> list[float]:
    """Seconds from launching `custody cameras run` to its ffmpeg start, `n` times."""
    out = []
    for _ in range(n):
        t0 = time.time()
        proc = subprocess.run([CUSTODY, "cameras", "run", "--camera", "hd1", "--url", url, "--case", "BENCH/RUN",
                               "--duration", "3s", "--segment", "2s", "--json", *([] if prefect else ["--no-prefect"])],
                              env=env, capture_output=True, text=True, check=True, timeout=180)
        out.append(_ts(json.loads(proc.stdout)["ffmpeg_started"]) - t0)
    return out


def scheduler(url: str, n: int) -> list[float]:
    """Seconds from each occurrence's instant to ffmpeg started, through the Scheduler `cameras serve` runs."""
    from pipeline.capture.inventory import parse_inventory
    from pipeline.capture.scheduler import Scheduler
    from pipeline.settings import load_settings

    inv = parse_inventory({"cameras": [{"id": "hd1", "url": url, "case_ref": "BENCH/SERVE", "exhibit_prefix": "SRV",
                                        "segment_seconds": 2, "camera_clock": False,
                                        "windows": [{"cron": "0 0 1 1 *", "duration": 10}]}]})
    sched = Scheduler(load_settings(), inv, drain_interval=0.5)
    stop = threading.Event()
    loop = threading.Thread(target=sched.run, args=(stop,))
    loop.start()
    out = []
    try:
        for _ in range(n):
            at = datetime.now(UTC) + timedelta(seconds=1)
            sched.add_occurrence("hd1", at, at + timedelta(seconds=3))
            deadline = time.monotonic() + 60
            while not ((run := sched.active.get("hd1")) and run.window_start == at and run.done):
                if time.monotonic() > deadline:
                    raise SystemExit("bench: a scheduled run did not finish within 60 s")
                threading.Event().wait(0.05)
            out.append(run.ffmpeg_started - at.timestamp())
    finally:
        stop.set()
        loop.join()
    return out


def serve_on_a_cron_minute(env: dict[str, str], home: Path, url: str) -> float:
    """The real `custody cameras serve`: the next minute's window, from its instant to ffmpeg started."""
    now = datetime.now(UTC)
    at = now.replace(second=0, microsecond=0) + timedelta(minutes=1 if now.second < 50 else 2)
    with tempfile.TemporaryDirectory(prefix="custody-bench-serve-") as d:
        inv = Path(d) / "cameras.yaml"
        inv.write_text(f"cameras:\n  - id: hd1\n    url: {url}\n    case_ref: BENCH/CRON\n    exhibit_prefix: CRON\n"
                       f"    segment_seconds: 2\n    camera_clock: false\n    windows:\n"
                       f"      - cron: \"{at.minute} {at.hour} * * *\"\n        duration: 4\n")
        proc = subprocess.Popen([CUSTODY, "cameras", "serve", "--inventory", str(inv), "--no-prefect"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status = home / "spool" / "hd1" / "status.json"
        try:
            deadline = time.monotonic() + 150
            while True:
                st = json.loads(status.read_text()) if status.exists() else {}
                if st.get("window", {}) and _ts(st["window"]["start"]) == at.timestamp() and st.get("ended"):
                    return _ts(st["ffmpeg_started"]) - at.timestamp()
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("bench: cameras serve did not record its window")
                threading.Event().wait(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def _group_rss_mb(pgid: int) -> float:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # fields after the name: state ppid pgrp ...
                continue
            rss = [ln for ln in (stat.parent / "status").read_text().splitlines() if ln.startswith("VmRSS:")]
            total += int(rss[0].split()[1]) if rss else 0
        except (OSError, ValueError, IndexError):
            continue
    return round(total / 1024, 1)


def stack_up_costs(env: dict[str, str], home: Path) -> dict[str, float]:
    """`custody stack up` wall time without and with Prefect (fresh home each), and the server's RSS."""
    out = {}
    for name, flag in (("no_prefect", "--no-prefect"), ("prefect", "--prefect")):
        h = home / name
        e = {**env, "CUSTODY_HOME": str(h), "PREFECT_HOME": str(h / "prefect")}
        t0 = time.monotonic()
        subprocess.run([CUSTODY, "stack", "up", flag], env=e, check=True, capture_output=True, timeout=300)
        out[f"stack_up_seconds_{name}"] = round(time.monotonic() - t0, 2)
        if flag == "--prefect":
            pid = json.loads((h / "stack" / "prefect.json").read_text())["pid"]
            out["prefect_server_rss_mb"] = _group_rss_mb(os.getpgid(pid))
        subprocess.run([CUSTODY, "stack", "down"], env=e, capture_output=True, timeout=120)
    return out

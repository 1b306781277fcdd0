"""A big card: 2,000 small stills from one card through `custody upload`, and whether cost stays flat.

Figures (one JSON line at the end):
  upload_seconds          wall time of `custody upload card/` (one subprocess, real S3; goal <= 60 s)
  per_file_ms_first/last  median time per file over the first and the last 10 % of the card, from
                          the `time` of each file's `ingested` event in the chain (the real CLI, not a model)
  flatness_ratio          per_file_ms_last / per_file_ms_first (goal <= 1.2: flat as the chain grows)
  append_ms_short/long    one custody-log append on a chain of ~10 events and on the card's chain
                          (~2 events per file): what the per-file cost owes to the chain append
  append_share_last       share of per_file_ms_last spent in the chain appends (2 per still)
  rerun_seconds           the same command again: everything is recognised as already stored
Each still is a real JPEG (so each file also gets probe + metadata, two events, as on a real card),
made unique by bytes after its end marker. Noisy on a shared machine: the ratios within one run are
the figures to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import CUSTODY, print_json_line, temp_stack


def make_card(card: Path, n: int) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    base = jpg.tobytes()
    for i in range(n):
        d = card / "DCIM" / f"{100 + i // 500}MEDIA"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"IMG_{i:05d}.JPG").write_bytes(base + i.to_bytes(4, "big"))


def _t(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def per_file_ms(events: list[dict], n: int) -> tuple[float, float]:
    """Median gap between consecutive files' `ingested` events, over the first and the last 10 %."""
    times = [_t(e["time"]) for e in events if e["action"] == "ingested"]
    gaps = [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]
    k = max(5, len(gaps) // 10)
    return statistics.median(gaps[:k]), statistics.median(gaps[-k:])


def append_ms(ev, case, exhibit, rounds: int = 20) -> float:  # type: ignore[no-untyped-def]
    from pipeline.custody.actor import Actor

    who = Actor("bench")
    t = []
    for i in range(rounds):
        t0 = time.perf_counter()
        ev.record(case, exhibit, "note", actor=who, parameters={"i": i})
        t.append(time.perf_counter() - t0)
    return statistics.median(t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="300 stills (< 60 s)")
    ap.add_argument("--files", type=int, default=None)
    args = ap.parse_args()
    n = args.files or (300 if args.quick else 2000)
    with temp_stack() as home, tempfile.TemporaryDirectory(prefix="custody-card-") as d:
        env = {"CUSTODY_HOME": str(home)}
        import os

        env = {**os.environ, **env}
        card = Path(d) / "card"
        make_card(card, n)
        subprocess.run([CUSTODY, "case", "create", "--ref", "BENCH/1"], env=env, check=True, capture_output=True)
        cmd = [CUSTODY, "upload", str(card), "--case", "BENCH/1", "--exhibit", "CARD/1", "--officer", "DC Bench",
               "--json"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        upload_s = time.perf_counter() - t0
        stored = json.loads(out.stdout)["objects"]
        assert len(stored) == n, len(stored)
        t0 = time.perf_counter()
        again = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        rerun_s = time.perf_counter() - t0
        assert all(o["status"] == "already_stored" for o in json.loads(again.stdout)["objects"])

        from pipeline.custody.actor import Actor
        from pipeline.evidence import Evidence

        ev = Evidence()
        c, e = ev.get("BENCH/1", "CARD/1")
        events = ev.log.events(e.id)
        first, last = per_file_ms(events, n)
        _c, short = ev.ensure_exhibit("BENCH/1", "SHORT/1", "DC Bench", Actor("bench"))
        for i in range(10):
            ev.record(c, short, "note", actor=Actor("bench"), parameters={"i": i})
        a_short = append_ms(ev, c, short)
        a_long = append_ms(ev, c, e)
    figures = {"files": n, "upload_seconds": round(upload_s, 1), "files_per_second": round(n / upload_s, 1),
               "per_file_ms_first": round(first, 1), "per_file_ms_last": round(last, 1),
               "flatness_ratio": round(last / first, 2), "chain_events": len(events),
               "append_ms_short": round(a_short, 1), "append_ms_long": round(a_long, 1),
               "append_share_last": round(min(1.0, 2 * a_long / last), 2), "rerun_seconds": round(rerun_s, 1),
               "goal_upload_seconds": 60 * n / 2000, "goal_flatness_ratio": 1.2}
    print(f"{n} stills: {upload_s:.1f} s ({n / upload_s:.1f}/s); per file {first:.1f} ms at the start, "
          f"{last:.1f} ms at the end ({last / first:.2f}x); one append {a_short:.1f} ms on a short chain, "
          f"{a_long:.1f} ms on {len(events)} events; rerun {rerun_s:.1f} s", file=sys.stderr)
    print_json_line(figures)


if __name__ == "__main__":
    main()

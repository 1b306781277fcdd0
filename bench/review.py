"""Review benchmark: camera segment stored -> review copy and activity index ready; exhibit page with 500 stills.

Phase 1 stores a 1080p25 4 Mbit/s H.264 MPEG-TS camera segment (a typical covert camera profile) as a real
`segment_recorded` original, then times `prepare_original` (hash-checked fetch, stream-copy review copy,
activity index from coded frame sizes and decoded keyframes, both stored and recorded), per minute of
footage, against the goal of <= 2 s. Side by side in the same run: `ffmpeg -f null` decoding every frame
(what an index decoding every frame could not beat) and the alternative for continuous playback, re-concatenating the
exhibit's copies into one file each time a segment arrives (cost grows with the hour; measured per added
segment at 5 segments). Phase 2 seeds an exhibit with 500 stills and loads its page in headless Chromium
through `custody serve` (load event, and the first row of thumbnails decoded), cold and warm.

    .venv/bin/python bench/review.py [--quick]      # --quick: a 20 s segment, under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import CUSTODY, print_json_line, temp_stack  # noqa: E402

GOAL_S_PER_MIN = 2.0
GOAL_PAGE_S = 2.0
CHROMIUM = "/usr/bin/chromium"
FIRST_ROW = ("() => { const im = Array.from(document.querySelectorAll('img.still')).slice(0, 6);"
             " return im.length === 6 && im.every((i) => i.complete && i.naturalWidth > 0); }")


def make_segment(path: Path, seconds: int) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=25:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-tune", "zerolatency", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50",
                    "-pix_fmt", "yuv420p", "-f", "mpegts", str(path)], check=True)


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def phase_ready(tmp: Path, seconds: int, repeats: int) -> dict:
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence
    from pipeline.intake.mediainfo import MediaReport
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import store_original
    from pipeline.review.prepare import prepare_original

    seg = tmp / "seg.ts"
    make_segment(seg, seconds)
    ev = Evidence()
    rec = Actor("bench recorder", "system")
    c, e = ev.ensure_exhibit(f"BENCH/{uuid.uuid4().hex[:6]}", "CAM1/BENCH", "bench", rec)
    ready, parts, floor = [], [], []
    t0 = datetime.now(UTC)
    for i in range(repeats):
        offer = Offer(f"seg{i}.ts", action="segment_recorded", index=False, key=None,
                      parameters={"camera": "cam1", "segment_index": i, "wallclock_start": t0 + timedelta(minutes=i),
                                  "wallclock_end": t0 + timedelta(minutes=i, seconds=seconds)})
        store_original(ev, c, e, seg, offer, actor=rec, resumable=False,
                       media=MediaReport("ok", "bench segment", "video", "mpeg-ts"))
        obj = next(o for o in reversed(ev.objects(ev.log.events(e.id), roles=("original",))))
        t = time.perf_counter()  # the segment is stored and recorded: from here to both products recorded
        p = prepare_original(ev, c, e, obj, actor=rec)
        ready.append(time.perf_counter() - t)
        parts.append(p.seconds)
        floor.append(timed(["ffmpeg", "-v", "error", "-i", str(seg), "-f", "null", "-"]))
    per_min = 60.0 / seconds
    copy = tmp / "copy.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(seg), "-c", "copy", "-movflags", "+faststart",
                    str(copy)], check=True)
    listing = tmp / "list.txt"
    listing.write_text("".join(f"file '{copy}'\n" for _ in range(5)))
    concat = timed(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-movflags", "+faststart", str(tmp / "hour.mp4")])
    med = statistics.median(ready)
    return {"segment_seconds": seconds, "repeats": repeats,
            "ready_s_per_min_1080p": round(med * per_min, 3), "ready_goal_s_per_min": GOAL_S_PER_MIN,
            "ready_breakdown_s": {k: round(statistics.median(x[k] for x in parts), 3) for k in parts[0]},
            "ffmpeg_decode_all_s_per_min": round(statistics.median(floor) * per_min, 3),
            "ready_vs_ffmpeg_decode": round(med / statistics.median(floor), 3),
            "hour_file_rebuild_s_at_5_segments": round(concat, 3),  # paid again for every new segment
            "per_segment_copy_s": round(statistics.median(x["copy"] for x in parts), 3)}


def phase_page(tmp: Path, stills: int) -> dict:
    from playwright.sync_api import sync_playwright

    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence
    from pipeline.frames import ExtractParams
    from pipeline.frames.derive import extract_object
    from pipeline.intake.mediainfo import MediaReport
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import store_original

    fps = 25
    clip = tmp / "small.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x180:rate={fps}:duration={stills / fps + 0.5}", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-f", "mpegts", str(clip)], check=True)
    ev = Evidence()
    who = Actor("bench", "examiner")
    case_ref = f"BENCH-PAGE/{uuid.uuid4().hex[:6]}"
    c, e = ev.ensure_exhibit(case_ref, "CAM9/STILLS", "bench", who)
    t0 = datetime.now(UTC)
    store_original(ev, c, e, clip, Offer("small.ts", action="segment_recorded", index=False, parameters={
        "camera": "cam9", "wallclock_start": t0, "wallclock_end": t0 + timedelta(seconds=stills / fps + 0.5)}),
        actor=who, resumable=False, media=MediaReport("ok", "bench", "video", "mpeg-ts"))
    obj = ev.objects(ev.log.events(e.id), roles=("original",))[0]
    t = time.perf_counter()
    extract_object(ev, c, e, obj, ExtractParams(every_seconds=1 / fps), actor=who)
    seeded = time.perf_counter() - t
    env = {**os.environ}
    token = json.loads(subprocess.run([CUSTODY, "user", "add", f"bench-{uuid.uuid4().hex[:6]}", "--role",
                                       "supervisor", "--json"], env=env, capture_output=True, text=True,
                                      check=True).stdout)["token"]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("custody serve did not start")
            time.sleep(0.05)  # readiness polling
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                   "--disable-background-networking"])
            pg = b.new_page(viewport={"width": 1280, "height": 900})
            pg.goto(url + "/signin")
            pg.get_by_label("Access token").fill(token)
            pg.get_by_role("button", name="Sign in").click()
            pg.wait_for_url("**/cases")
            loads = []
            for _ in range(2):  # cold (first read of the chain in this server), then warm
                t = time.perf_counter()
                pg.goto(f"{url}/cases/{c.id}/exhibits/{e.id}", wait_until="load")
                loaded = time.perf_counter() - t
                pg.locator("#stills-h").scroll_into_view_if_needed()
                pg.wait_for_function(FIRST_ROW, timeout=30_000)
                loads.append((loaded, time.perf_counter() - t))
            html_kb = len(pg.content()) / 1024
            shown = pg.locator("img.still").count()
            b.close()
    finally:
        srv.terminate()
        srv.wait(10)
    return {"stills": stills, "seed_extract_s": round(seeded, 2), "page_load_cold_s": round(loads[0][0], 3),
            "page_load_warm_s": round(loads[1][0], 3), "first_thumbs_cold_s": round(loads[0][1], 3),
            "first_thumbs_warm_s": round(loads[1][1], 3), "page_goal_s": GOAL_PAGE_S,
            "page_html_kib": round(html_kb, 1), "thumbnails_on_page": shown}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 20 s segment, one repeat (under a minute)")
    args = ap.parse_args()
    seconds, repeats = (20, 1) if args.quick else (60, 3)
    t = time.perf_counter()
    with temp_stack(), tempfile.TemporaryDirectory(prefix="custody-bench-review-") as d:
        figures = {"bench": "review", "quick": args.quick, **phase_ready(Path(d), seconds, repeats),
                   **phase_page(Path(d), 500)}
    figures["seconds"] = round(time.perf_counter() - t, 1)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print_json_line(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The investigator's command end to end against ffmpeg, and what a light command costs.

`custody extract EX --every 1s` in a fresh process on an ingested exhibit (fetch with hash check, extract,
store every still and thumbnail, record the event), on a throwaway embedded stack, against the same
footage from local disk through ffmpeg, rounds interleaved so drift hits all alike (medians):
  cli_vs_ffmpeg_fps       `ffmpeg -i X -vf fps=1 out_%d.png` / `custody extract --every 1s`      [>= 3]
  cli_vs_decode_limit     `ffmpeg -threads 0 -i X -f null -` (a full decode) / the same           [>= 1.5]
  keyframes_vs_nokey      `ffmpeg -skip_frame nokey -i X -fps_mode vfr k_%d.png` / a fresh process
                          calling extract_frames(keyframes=True)                                  [>= 3]
  cli_keyframes_vs_nokey  the same ffmpeg / `custody extract --keyframes` (stored and recorded)
  still_bytes_vs_ffmpeg   our PNG bytes / ffmpeg's default PNG of the same pixels                [<= 1.1]
  light_vs_imports        `custody exhibit list` / `python -c "import minio, typer, rich"`, each a
                          fresh process, medians of many runs                                     [<= 1.5]
  cold_cli_vs_ffmpeg_fps  the same with CUSTODY_COMMAND_SERVER=0: the command in a process of its own
                          (importing everything), not a fork of the warm command server `stack up` starts
  cli_peak_rss_mb         peak RSS of `custody extract` (of the server's child: it counts the ~100 MB of
                          libraries the child shares with the server); cold_peak_rss_mb in its own process
  cli_after_s             how long the served command's child went on after its launcher returned (it
                          reports first, then does its transparency-log round; not in the wall times above)
Footage (made once, cached in ~/.cache/custody-bench): the issue's (60 s 1080p H.264, 25 fps, 1 s GOP,
no B-frames, 4 Mbit/s, mandelbrot + noise) and bench/frames.py's (1080p, 30 fps, 2 s GOP, 3 B-frames,
testsrc2 + noise). `--quick`: 20 s of testsrc2 + noise with the issue's encoding, 2 rounds (< 60 s).
Headline figures are the worst variant; per-variant figures follow in the JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench._common import CUSTODY, cached_footage, print_json_line, run_timed, temp_stack

ROOT = Path(__file__).resolve().parent.parent
# the code measured (its processes get it as PYTHONPATH): CUSTODY_BENCH_CODE=/path/to/checkout gives "before"
CODE = Path(os.environ.get("CUSTODY_BENCH_CODE") or ROOT)
# the same command in a process of its own instead of a fork of the warm command server (`stack up` starts it)
COLD = {"CUSTODY_COMMAND_SERVER": "0"}


def x264(gop: int, bframes: int, preset: str = "veryfast", rate: str = "4M") -> list[str]:
    """A fixed GOP of `gop` frames (no scene-cut keyframes), `bframes` B-frames, constrained `rate`."""
    return ["-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-b:v", rate, "-maxrate", rate,
            "-bufsize", f"{2 * int(rate[:-1])}M", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-bf", str(bframes)]


X264_ISSUE = x264(25, 0)
X264_FRAMES_PY = x264(60, 3)
VARIANTS = {
    "issue": ["-f", "lavfi", "-i", "mandelbrot=size=1920x1080:rate=25,noise=alls=10:allf=t+u", "-t", "60",
              *X264_ISSUE],
    "frames_py": ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=60,noise=alls=10:allf=t+u",
                  *X264_FRAMES_PY],
    "quick": ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=20,noise=alls=10:allf=t+u",
              *X264_ISSUE],
    # the other kinds of footage a covert camera gives (`--variants`; not in the default run, for its length)
    "720p": ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=60,noise=alls=10:allf=t+u",
             *x264(50, 0)],
    "gop10": ["-f", "lavfi", "-i", "mandelbrot=size=1920x1080:rate=25,noise=alls=10:allf=t+u", "-t", "60",
              *x264(250, 2)],
    "hevc": ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=30,noise=alls=10:allf=t+u",
             "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "4M",
             "-x265-params", "keyint=50:min-keyint=50:scenecut=0:bframes=3:log-level=error"],
    "mjpeg": ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=30,noise=alls=10:allf=t+u",
              "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", "-f", "avi"],
    "4k": ["-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=25:duration=20,noise=alls=8:allf=t+u",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "16M", "-g", "50",
           "-keyint_min", "50", "-sc_threshold", "0", "-bf", "2"],
}
CORE_INTERVAL = ("import sys; from pathlib import Path; from pipeline.frames import ExtractParams, extract_frames; "
                 "r = extract_frames(Path(sys.argv[1]), Path(sys.argv[2]), ExtractParams(every_seconds=1)); "
                 "print(len(r.stills))")
CORE_KEYFRAMES = ("import sys; from pathlib import Path; from pipeline.frames import ExtractParams, extract_frames; "
                  "r = extract_frames(Path(sys.argv[1]), Path(sys.argv[2]), ExtractParams(keyframes=True)); "
                  "print(len(r.stills))")


def ffmpeg(*args: str) -> list[str]:
    return ["ffmpeg", "-v", "error", "-y", *args]


def fresh(d: Path) -> Path:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def dir_bytes(d: Path) -> tuple[int, int]:
    files = [p for p in d.glob("*.png") if "_contact_" not in p.name]  # stills only, not contact sheets
    return sum(p.stat().st_size for p in files), len(files)


def stored_still_bytes(exhibit: str, case: str, seq: int) -> tuple[int, int]:
    """Bytes and count of the stills the event `seq` recorded."""
    from pipeline.evidence import Evidence

    ev = Evidence()
    _, e = ev.get(case, exhibit)
    event = next(x for x in ev.log.events(e.id) if x["seq"] == seq)
    stills = [o for o in event["objects"] if o.get("kind") == "still"]
    return sum(int(o["size"]) for o in stills), len(stills)


def same_frames_bytes(video: Path, tmp: Path, env: dict[str, str]) -> tuple[int, int]:
    """Our stills' bytes and ffmpeg's default PNG of exactly the same pixels (`ffmpeg -vf fps=1` picks
    neighbouring frames, whose sizes differ by noise alone), from one core extraction at 1 still/s."""
    ours, theirs = fresh(tmp / "same"), fresh(tmp / "same_ffmpeg")
    run_timed([sys.executable, "-P", "-c", CORE_INTERVAL, str(video), str(ours)], {**env, "PYTHONPATH": str(CODE)})
    run_timed(ffmpeg("-pattern_type", "glob", "-i", str(ours / "frame_t*.png"), "-fps_mode", "passthrough",
                     str(theirs / "ff_%05d.png")))
    (a, n), (b, m) = dir_bytes(ours), dir_bytes(theirs)
    assert n == m and n > 0, f"{n} stills but ffmpeg wrote {m}"
    return a, b


def light_command(env: dict[str, str], case: str, runs: int) -> dict[str, float]:
    """Median wall time of `custody exhibit list` and of the bare imports, fresh processes, interleaved."""
    cmds = {"exhibit_list": ([CUSTODY, "exhibit", "list", "--case", case], env),
            "exhibit_list_cold": ([CUSTODY, "exhibit", "list", "--case", case], {**env, **COLD}),
            "imports": ([sys.executable, "-c", "import minio, typer, rich"], env)}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, (cmd, e) in cmds.items():
            times[k].append(run_timed(cmd, e)[0])
    return {k: statistics.median(v) for k, v in times.items()}


def run_variant(name: str, video: Path, env: dict[str, str], case: str, rounds: int, tmp: Path,
                con: Console) -> dict[str, float]:
    exhibit = f"V/{name}"
    subprocess.run([CUSTODY, "ingest", str(video), "--case", case, "--exhibit", exhibit, "--officer", "bench",
                    "--json"], env=env, check=True, capture_output=True)
    out = tmp / "out"
    jobs = {
        "cli_interval": lambda: run_timed([CUSTODY, "extract", exhibit, "--case", case, "--every", "1s", "--json"],
                                          env),
        "cli_interval_cold": lambda: run_timed([CUSTODY, "extract", exhibit, "--case", case, "--every", "1s",
                                                "--json"], {**env, **COLD}),
        "ffmpeg_fps": lambda: run_timed(ffmpeg("-i", str(video), "-vf", "fps=1", str(fresh(out) / "out_%d.png"))),
        "ffmpeg_null": lambda: run_timed(ffmpeg("-threads", "0", "-i", str(video), "-f", "null", "-")),
        "core_keyframes": lambda: run_timed([sys.executable, "-P", "-c", CORE_KEYFRAMES, str(video), str(fresh(out))],
                                            {**env, "PYTHONPATH": str(CODE)}),
        "ffmpeg_nokey": lambda: run_timed(ffmpeg("-skip_frame", "nokey", "-i", str(video), "-fps_mode", "vfr",
                                                 str(fresh(out) / "k_%d.png"))),
        "cli_keyframes": lambda: run_timed([CUSTODY, "extract", exhibit, "--case", case, "--keyframes", "--json"],
                                           env),
    }
    times: dict[str, list[float]] = {k: [] for k in jobs}
    cpu: dict[str, list[float]] = {k: [] for k in jobs}
    after: dict[str, list[float]] = {k: [] for k in jobs}
    rss: dict[str, list[int]] = {"cli_interval": [], "cli_interval_cold": []}
    ours_bytes = ff_bytes = (0, 0)
    for r in range(rounds):
        for k, job in jobs.items():
            t = job()
            secs, maxrss, stdout, used = t.seconds, t.maxrss_kb, t.stdout, t.cpu
            after[k].append(t.after_s)
            times[k].append(secs)
            cpu[k].append(used)
            if k in rss:
                rss[k].append(maxrss)
                seq = json.loads(stdout)["results"][0]["event_seq"]
                ours_bytes = stored_still_bytes(exhibit, case, seq)
            elif k == "ffmpeg_fps":
                ff_bytes = dir_bytes(out)
        con.print(f"{name} round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    same_ours, same_ff = same_frames_bytes(video, tmp, env)
    per_still = ours_bytes[0] / max(1, ours_bytes[1])
    ff_per_still = ff_bytes[0] / max(1, ff_bytes[1])
    return {**{f"{k}_s": round(v, 3) for k, v in med.items()},
            "cli_vs_ffmpeg_fps": round(med["ffmpeg_fps"] / med["cli_interval"], 3),
            "cli_vs_decode_limit": round(med["ffmpeg_null"] / med["cli_interval"], 3),
            "cold_cli_vs_ffmpeg_fps": round(med["ffmpeg_fps"] / med["cli_interval_cold"], 3),
            "keyframes_vs_nokey": round(med["ffmpeg_nokey"] / med["core_keyframes"], 3),
            "cli_keyframes_vs_nokey": round(med["ffmpeg_nokey"] / med["cli_keyframes"], 3),
            # CPU seconds (theirs / ours): what the wall ratios become when other tenants take the cores
            "cpu_cli_vs_ffmpeg_fps": round(mcpu["ffmpeg_fps"] / mcpu["cli_interval"], 3),
            "cpu_keyframes_vs_nokey": round(mcpu["ffmpeg_nokey"] / mcpu["core_keyframes"], 3),
            "still_bytes_vs_ffmpeg": round(same_ours / max(1, same_ff), 3),
            "still_mb": round(per_still / 1e6, 3), "ffmpeg_png_mb": round(same_ff / max(1, ours_bytes[1]) / 1e6, 3),
            "ffmpeg_fps_png_mb": round(ff_per_still / 1e6, 3),
            "stills": ours_bytes[1], "ffmpeg_pngs": ff_bytes[1],
            # a served command reports its exit, then finishes its transparency-log round (not in the wall time)
            "cli_after_s": round(statistics.median(after["cli_interval"]), 3),
            "cli_peak_rss_mb": round(max(rss["cli_interval"]) / 1024, 1),
            "cold_peak_rss_mb": round(max(rss["cli_interval_cold"]) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 s clip, 2 rounds, one variant (< 60 s)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--variants", default=None,
                    help=f"comma-separated, of {', '.join(VARIANTS)} (default issue,frames_py)")
    ap.add_argument("--footage", type=Path, action="append", default=[],
                    help="your own footage file, measured like a variant (repeatable)")
    args = ap.parse_args()
    names = ["quick"] if args.quick else [] if args.footage and not args.variants else (
        args.variants or "issue,frames_py").split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    missing = [str(f) for f in args.footage if not f.is_file()]
    if missing:
        ap.error(f"no such footage file: {', '.join(missing)}")
    rounds = args.rounds or (2 if args.quick else 3)
    con = Console(stderr=True)
    videos = {}
    for n in names:
        with con.status(f"footage {n} (made once, then cached)"):
            videos[n] = cached_footage(n, VARIANTS[n])
    for i, f in enumerate(args.footage, 1):
        videos[f"file{i}"] = f.resolve()
        con.print(f"file{i}: {f}")
    names = list(videos)
    figures: dict[str, float] = {}
    per: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    with temp_stack() as home, tempfile.TemporaryDirectory(prefix="custody-bench-extract-") as d:
        env = {**os.environ, "CUSTODY_HOME": str(home), "PYTHONPATH": str(CODE)}
        case = "BENCH/X"
        subprocess.run([CUSTODY, "case", "create", "--ref", case], env=env, check=True, capture_output=True)
        for n in names:
            per[n] = run_variant(n, videos[n], env, case, rounds, Path(d), con)
        light = light_command(env, case, 8 if args.quick else 20)
    for n, f in per.items():
        figures.update({f"{k}_{n}": v for k, v in f.items()})
    for k, worst in (("cli_vs_ffmpeg_fps", min), ("cold_cli_vs_ffmpeg_fps", min), ("cli_vs_decode_limit", min),
                     ("keyframes_vs_nokey", min),
                     ("cli_keyframes_vs_nokey", min), ("still_bytes_vs_ffmpeg", max), ("cli_peak_rss_mb", max),
                     ("cold_peak_rss_mb", max)):
        figures[k] = worst(f[k] for f in per.values())
    figures["exhibit_list_s"] = round(light["exhibit_list"], 3)
    figures["exhibit_list_cold_s"] = round(light["exhibit_list_cold"], 3)
    figures["cold_light_vs_imports"] = round(light["exhibit_list_cold"] / light["imports"], 3)
    figures["imports_s"] = round(light["imports"], 3)
    figures["light_vs_imports"] = round(light["exhibit_list"] / light["imports"], 3)
    figures["rounds"] = rounds
    figures["bench_s"] = round(time.perf_counter() - t0, 1)

    table = Table(title=f"custody extract end to end vs ffmpeg, medians of {rounds} (ratio = theirs / ours)")
    for col in ("footage", "custody extract 1/s", "(own process)", "ffmpeg fps=1", "ffmpeg null", "core keys",
                "ffmpeg nokey",
                "extract --keyframes", "vs fps", "vs null", "keys vs nokey", "MB/still (ffmpeg)"):
        table.add_column(col, justify="right")
    for n, f in per.items():
        table.add_row(n, *(f"{f[k]:.2f}s" for k in ("cli_interval_s", "cli_interval_cold_s", "ffmpeg_fps_s",
                                                      "ffmpeg_null_s", "core_keyframes_s", "ffmpeg_nokey_s",
                                                      "cli_keyframes_s")),
                      f"{f['cli_vs_ffmpeg_fps']:.2f}", f"{f['cli_vs_decode_limit']:.2f}",
                      f"{f['keyframes_vs_nokey']:.2f}", f"{f['still_mb']:.2f} ({f['ffmpeg_png_mb']:.2f})")
    out = Console(width=170)
    out.print(table)
    out.print(f"`custody exhibit list` {light['exhibit_list']:.3f}s vs `import minio, typer, rich` "
              f"{light['imports']:.3f}s: {figures['light_vs_imports']:.2f}x (goal <= 1.5; in its own process "
              f"{light['exhibit_list_cold']:.3f}s, {figures['cold_light_vs_imports']:.2f}x); "
              f"custody extract peak RSS {figures['cli_peak_rss_mb']:.0f} MB (in its own process "
              f"{figures['cold_peak_rss_mb']:.0f} MB)")
    out.print("goals: vs fps >= 3, vs null >= 1.5, keys vs nokey >= 3, bytes <= 1.1x ffmpeg's")
    print_json_line(figures)


if __name__ == "__main__":
    main()

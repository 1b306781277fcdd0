"""Bundle build throughput against a plain `zip -0 -r` of the same files, and peak RSS.

In one run, on a fresh embedded stack:
  baseline  `zip -0 -r` of the footage already downloaded to local disk (page cache warm)
  ours      pipeline.bundle.build_bundle streaming the same footage from S3 into a BagIt zip,
            SHA-256 checked against custody in the same pass (time until the zip is complete;
            storing the finished bundle back into S3 is a separate upload, not counted)
Figures: ratio = ours throughput / baseline throughput (goal >= 0.8) and peak RSS of the
build process (child process, resource.getrusage(RUSAGE_CHILDREN) in a one-child wrapper).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench._common import print_json_line, temp_stack, write_random

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from pipeline.export.bundle import build_bundle
from pipeline.custody.actor import Actor
from pipeline.evidence import Evidence
r = build_bundle(Evidence(), sys.argv[1], None, Path(sys.argv[2]), actor=Actor("bench"), store_bundle=False)
print(json.dumps({"build_seconds": r.build_seconds, "payload_bytes": r.payload_bytes, "size": r.size}))
"""
# A wrapper whose only child is the build, so RUSAGE_CHILDREN is exactly the build's peak.
PROBE = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
         "sys.stderr.write(p.stderr); d = json.loads(p.stdout.strip().splitlines()[-1]); "
         "d['peak_rss_kb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; print(json.dumps(d)); "
         "sys.exit(p.returncode)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="~300 MB, < 60 s")
    ap.add_argument("--size-mb", type=int, default=None, help="total footage (default 5120, quick 300)")
    ap.add_argument("--files", type=int, default=None, help="number of footage files (default 5, quick 3)")
    args = ap.parse_args()
    total = (args.size_mb or (300 if args.quick else 5120)) * 1024 * 1024
    nfiles = args.files or (3 if args.quick else 5)
    repeats = 3 if args.quick else 2  # quick runs are short, so noisier: one more round
    con = Console(stderr=True)

    with temp_stack() as home:
        from pipeline.custody.actor import Actor
        from pipeline.evidence import Evidence
        from pipeline.intake.mediainfo import MediaReport
        from pipeline.intake.originals import Offer
        from pipeline.intake.upload import store_original

        ev = Evidence()
        actor = Actor("bench")
        case_ref = "OP-BENCH/1"
        case, ex = ev.ensure_exhibit(case_ref, "BN/1", "DC Bench", actor)
        src = home / "src"
        local = home / "local" / "footage"
        src.mkdir()
        local.mkdir(parents=True)
        t = time.perf_counter()
        for i in range(nfiles):
            p = src / f"cam{i:02d}.ts"
            con.print(f"writing + ingesting {p.name} ({total // nfiles >> 20} MiB)")
            write_random(p, total // nfiles)
            store_original(ev, case, ex, p, Offer(p.name, action="segment_recorded", index=False), actor=actor,
                           media=MediaReport("ok", "camera segment", "video", "mpeg-ts"))
            p.unlink()
        ingest_s = time.perf_counter() - t
        # the baseline zips local files: download them first (verified against custody)
        for o in ev.objects(ev.log.events(ex.id), roles=("original",)):
            ev.store.download_verified(o.bucket, o.key, o.version_id, o.sha256, local / (o.original_name or o.key))
        payload = sum(p.stat().st_size for p in local.iterdir())

        base_t: list[float] = []
        ours_t: list[float] = []
        rss: list[int] = []
        for r in range(repeats):  # interleaved so drift hits both alike
            bz = home / "baseline.zip"
            t = time.perf_counter()
            subprocess.run(["zip", "-0", "-r", "-q", str(bz), "footage"], cwd=local.parent, check=True)
            base_t.append(time.perf_counter() - t)
            bz.unlink()
            oz = home / "ours.zip"
            proc = subprocess.run([sys.executable, "-c", PROBE, sys.executable, "-c", CHILD, case_ref, str(oz),
                                   str(ROOT)], capture_output=True, text=True, check=True)
            d = json.loads(proc.stdout.strip().splitlines()[-1])
            ours_t.append(d["build_seconds"])
            rss.append(d["peak_rss_kb"])
            oz.unlink()
            con.print(f"round {r + 1}/{repeats}: zip -0 {base_t[-1]:.2f}s, bundle build {ours_t[-1]:.2f}s, "
                      f"peak RSS {d['peak_rss_kb'] / 1024:.0f} MB")
        shutil.rmtree(local.parent)

    bt, ot = statistics.median(base_t), statistics.median(ours_t)
    figures = {
        "bench": "bundle", "size_mb": payload >> 20, "files": nfiles, "repeats": repeats,
        "ingest_mb_s": round(payload / ingest_s / 1e6, 1),
        "zip0_s": round(bt, 3), "zip0_mb_s": round(payload / bt / 1e6, 1),
        "bundle_build_s": round(ot, 3), "bundle_build_mb_s": round(payload / ot / 1e6, 1),
        "throughput_ratio": round(bt / ot, 3), "goal_ratio": 0.8,
        "peak_rss_mb": round(max(rss) / 1024, 1), "rss_limit_mb": 300,
    }
    table = Table(title="bundle build vs zip -0 -r (same files)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in figures.items():
        table.add_row(k, str(v))
    con.print(table)
    print_json_line(figures)


if __name__ == "__main__":
    main()

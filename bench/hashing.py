"""Cost of hashing while uploading, against upload alone and hashing alone.

Three timings over the same file in one run, each the median of several:
  upload_alone   raw minio fput_object (same part size and parallelism)
  ours           EvidenceStore.put_file: SHA-256 in the same pass + post-write checks
  hash_alone     plain hashlib.sha256 over the file
Figure of merit: single_pass_overhead = ours / upload_alone - 1 (goal < 0.10).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench._common import print_json_line, temp_stack, write_random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small file, fewer repeats (< 60 s)")
    ap.add_argument("--size-mb", type=int, default=None)
    args = ap.parse_args()
    size = (args.size_mb or (256 if args.quick else 2048)) * 1024 * 1024
    repeats = 3 if args.quick else 5
    con = Console(stderr=True)

    with temp_stack() as home:
        from pipeline.settings import load_settings
        from pipeline.storage.store import EvidenceStore

        settings = load_settings()
        store = EvidenceStore.connect(settings)
        bucket = store.buckets["derived"]
        src = home / "data.bin"
        con.print(f"writing {size >> 20} MiB test file")
        sha = write_random(src, size)
        part = settings.part_size_mb * 1024 * 1024

        from minio.sse import SseS3

        def upload_alone() -> None:  # same encryption request as ours, so only hashing differs
            store.client.fput_object(bucket, f"bench/{uuid.uuid4().hex}", str(src), part_size=part,
                                     num_parallel_uploads=settings.upload_threads,
                                     sse=SseS3() if settings.sse else None)

        def ours() -> None:
            obj = store.put_file(bucket, f"bench/{uuid.uuid4().hex}", src)
            assert obj.sha256 == sha

        def hash_alone() -> None:
            h = hashlib.sha256()
            with open(src, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            assert h.hexdigest() == sha

        times: dict[str, list[float]] = {"upload_alone": [], "ours": [], "hash_alone": []}
        fns = {"upload_alone": upload_alone, "ours": ours, "hash_alone": hash_alone}
        hash_alone()  # warm the page cache so every contender reads from memory
        for r in range(repeats):
            for name, fn in fns.items():  # interleaved so drift hits all alike
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            con.print(f"round {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))

    med = {k: statistics.median(v) for k, v in times.items()}
    mbps = {k: size / v / 1e6 for k, v in med.items()}
    figures = {
        "size_mb": size >> 20,
        "upload_alone_mb_s": round(mbps["upload_alone"], 1),
        "hashing_upload_mb_s": round(mbps["ours"], 1),
        "hashlib_sha256_mb_s": round(mbps["hash_alone"], 1),
        "single_pass_overhead": round(med["ours"] / med["upload_alone"] - 1, 3),
        "single_pass_vs_two_pass": round((med["upload_alone"] + med["hash_alone"]) / med["ours"], 3),
    }
    t = Table(title="hashing while uploading")
    t.add_column("path")
    t.add_column("median s", justify="right")
    t.add_column("MB/s", justify="right")
    for k in med:
        t.add_row(k, f"{med[k]:.2f}", f"{mbps[k]:.0f}")
    Console().print(t)
    Console().print(f"single-pass overhead over upload alone: {figures['single_pass_overhead']:+.1%} (goal < 10%)")
    print_json_line(figures)


if __name__ == "__main__":
    main()

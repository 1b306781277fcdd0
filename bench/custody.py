"""Custody log costs before and after issue 15 (case logs, transparency log, constant-cost append), side by side.

In one run, on one fresh embedded stack (with its local TSA), the baseline is the code at BASE (default
d4e727f, `git archive`d into a temp dir) and the contender is this checkout; each runs in its own processes
(PYTHONPATH), interleaved round by round so machine noise hits both alike:
  append   8 processes appending concurrently, to one exhibit (they contend for every sequence number) and to
           eight exhibits (one each); events/s = all events / (last finish - first start), after a warm-up
           append; the contender's exit flush (log round + time-stamp) is reported apart
  verify   `custody verify --case C --exhibit E` (CLI wall time, start-up included) of one exhibit of N events
           (10,000; 1,000 with --quick), built once with the contender's code and read by both
  growth   per-append time of one process at event ~10 and at event ~N, for both
  check    the contender's chain check before a command works on that exhibit (`CustodyLog.read`): every byte
           from the store, against unchanged documents from the home's copies (doccache), in one process
Goals: contender append throughput >= 0.8 x baseline; contender verify of 10,000 events < 10 s.
Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from bench._common import CUSTODY, print_json_line, temp_stack

ROOT = Path(__file__).resolve().parent.parent
APPENDER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pipeline.custody.actor import Actor
from pipeline.evidence import Evidence
ev = Evidence()
case, ex = ev.get(sys.argv[2], sys.argv[3])
n = int(sys.argv[4])
ev.record(case, ex, "note", actor=Actor("warm-up"))
print("ready", flush=True)
sys.stdin.readline()
t0 = time.time()
times = []
for i in range(n):
    a = time.perf_counter()
    ev.record(case, ex, "note", actor=Actor("bench"), parameters={"i": i})
    times.append(time.perf_counter() - a)
t1 = time.time()
f0 = time.perf_counter()
if hasattr(ev, "flush"):
    ev.flush()
print(json.dumps({"t0": t0, "t1": t1, "n": n, "flush": time.perf_counter() - f0,
                  "median_append": sorted(times)[len(times) // 2]}), flush=True)
"""
SETUP = """
import sys
sys.path.insert(0, sys.argv[1])
from pipeline.custody.actor import Actor
from pipeline.evidence import Evidence
ev = Evidence()
for ref in sys.argv[3:]:
    ev.ensure_exhibit(sys.argv[2], ref, "DC Bench", Actor("bench"))
if hasattr(ev, "flush"):
    ev.flush()
"""


def base_tree(commit: str, dest: Path) -> Path:
    with open(dest / "base.tar", "wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", commit], stdout=f, check=True)
    with tarfile.open(dest / "base.tar") as t:
        t.extractall(dest / "base", filter="data")
    return dest / "base"


def env_for(code: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "CUSTODY_HOME": str(home), "CUSTODY_ACTOR": "bench"}


def append_round(code: Path, home: Path, case: str, refs: list[str], n: int) -> dict[str, float]:
    """Eight appender processes; returns events/s and the mean exit flush."""
    subprocess.run([sys.executable, "-c", SETUP, str(code), case, *sorted(set(refs))], env=env_for(code, home),
                   check=True)
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(code), case, ref, str(n)], env=env_for(code, home),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for ref in refs]
    for p in procs:  # all imported, connected and warmed up before the clock starts
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=600)
        assert p.returncode == 0
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    span = max(o["t1"] for o in out) - min(o["t0"] for o in out)
    return {"events_per_s": sum(o["n"] for o in out) / span, "flush_s": statistics.mean(o["flush"] for o in out)}


def verify_time(code: Path, home: Path, case: str, ref: str) -> float | None:
    """CLI wall time; None when the baseline's CLI no longer starts with today's packages (said on stderr)."""
    t = time.perf_counter()
    proc = subprocess.run([CUSTODY, "verify", "--case", case, "--exhibit", ref], env=env_for(code, home),
                          capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        if code != ROOT and "Traceback" in proc.stderr:
            print(f"baseline verify does not run with today's packages: {proc.stderr.strip().splitlines()[-1]}",
                  file=sys.stderr)
            return None
        raise SystemExit(f"verify failed ({code}):\n{proc.stdout}\n{proc.stderr}")
    return took


def per_append(code: Path, home: Path, case: str, ref: str, n: int = 20) -> float:
    """Median seconds per append of one process to an existing chain."""
    proc = subprocess.Popen([sys.executable, "-c", APPENDER, str(code), case, ref, str(n)], env=env_for(code, home),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    stdout, _ = proc.communicate("go\n", timeout=600)
    return float(json.loads(stdout.strip().splitlines()[-1])["median_append"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer events, < 60 s")
    ap.add_argument("--base", default="d4e727f", help="baseline commit (default: main before issue 15)")
    ap.add_argument("--events", type=int, default=None, help="events in the verified exhibit (10000; quick 1000)")
    args = ap.parse_args()
    con = Console(stderr=True)
    n_verify = args.events or (1000 if args.quick else 10000)
    per, rounds = (15, 1) if args.quick else (60, 3)
    with tempfile.TemporaryDirectory(prefix="custody-bench-base-") as d, temp_stack() as home:
        base, ours = base_tree(args.base, Path(d)), ROOT
        variants = {"base": base, "ours": ours}
        figs: dict[str, list[float]] = {}
        for r in range(rounds):
            for name, code in (variants.items() if r % 2 == 0 else reversed(variants.items())):
                for shape, refs in (("one", ["AP/1"] * 8), ("eight", [f"AQ/{i}" for i in range(8)])):
                    case = f"OP-BENCH-{name}/{r}-{shape}"
                    got = append_round(code, home, case, refs, per)
                    con.print(f"append {name:4} round {r} 8 appenders on {shape} exhibit(s): "
                              f"{got['events_per_s']:.0f} events/s (exit flush {got['flush_s'] * 1000:.0f} ms)")
                    figs.setdefault(f"{name}_{shape}", []).append(got["events_per_s"])
                    figs.setdefault(f"{name}_flush", []).append(got["flush_s"])

        con.print(f"building an exhibit of {n_verify} events ...")
        from pipeline.custody.actor import Actor
        from pipeline.evidence import Evidence

        ev = Evidence()
        case, ex = ev.ensure_exhibit("OP-BENCH/verify", "VF/1", "DC Bench", Actor("bench"))
        t = time.perf_counter()
        for i in range(n_verify - 1):  # + exhibit_created
            ev.record(case, ex, "note", actor=Actor("bench"), parameters={"i": i})
        ev.flush()
        build = time.perf_counter() - t
        con.print(f"built in {build:.1f} s")
        check = {"store": [], "cached": []}  # the check a command makes before working on the exhibit
        Evidence().log.read(ex.id, cached=True)  # fills the home's copies (what the first command pays)
        for _ in range(1 if args.quick else 3):
            for mode in check:
                t = time.perf_counter()
                rep = Evidence().log.read(ex.id, cached=mode == "cached")
                check[mode].append(time.perf_counter() - t)
                assert rep.ok and len(rep.events) == n_verify, rep.findings[:3]
        con.print(f"chain check of {n_verify} events before work: every byte from the store "
                  f"{min(check['store']):.2f} s, unchanged documents from the home's copies "
                  f"{min(check['cached']):.2f} s")
        growth = {name: per_append(code, home, case.ref, "VF/1") for name, code in variants.items()}
        short = {}
        for name, code in variants.items():
            subprocess.run([sys.executable, "-c", SETUP, str(code), f"OP-BENCH-short-{name}/1", "SH/1"],
                           env=env_for(code, home), check=True)
            short[name] = per_append(code, home, f"OP-BENCH-short-{name}/1", "SH/1")
        vt: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(1 if args.quick else 2):
            for name, code in variants.items():
                if (took := verify_time(code, home, case.ref, "VF/1")) is not None:
                    vt[name].append(took)
        best = {name: round(min(v), 2) if v else None for name, v in vt.items()}
        for name in variants:
            con.print(f"verify {name:4}: {best[name]} s for {n_verify}+ events; append at ~10 events "
                      f"{short[name] * 1000:.1f} ms, at ~{n_verify} events {growth[name] * 1000:.1f} ms")

    med = {k: statistics.median(v) for k, v in figs.items()}
    out = {
        "append_one_exhibit_base_eps": round(med["base_one"], 1),
        "append_one_exhibit_ours_eps": round(med["ours_one"], 1),
        "append_one_exhibit_ratio": round(med["ours_one"] / med["base_one"], 3),
        "append_eight_exhibits_base_eps": round(med["base_eight"], 1),
        "append_eight_exhibits_ours_eps": round(med["ours_eight"], 1),
        "append_eight_exhibits_ratio": round(med["ours_eight"] / med["base_eight"], 3),
        "exit_flush_ours_ms": round(med["ours_flush"] * 1000, 1),
        "verify_events": n_verify, "verify_base_s": best["base"], "verify_ours_s": best["ours"],
        "chain_check_store_s": round(min(check["store"]), 3), "chain_check_cached_s": round(min(check["cached"]), 3),
        "chain_check_ratio": round(min(check["store"]) / min(check["cached"]), 2),
        "append_ms_at_10_base": round(short["base"] * 1000, 2), "append_ms_at_10_ours": round(short["ours"] * 1000, 2),
        "append_ms_at_n_base": round(growth["base"] * 1000, 2), "append_ms_at_n_ours": round(growth["ours"] * 1000, 2),
        "rounds": rounds, "events_per_appender": per, "base": args.base, "quick": args.quick,
    }
    print_json_line(out)


if __name__ == "__main__":
    main()

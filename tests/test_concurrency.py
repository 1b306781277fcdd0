"""Eight processes appending to one exhibit leave one unbroken chain."""

from __future__ import annotations

import multiprocessing as mp
import os


def _append(home: str, case_ref: str, worker: int, n: int) -> int:
    os.environ["CUSTODY_HOME"] = home
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence

    ev = Evidence()
    case, ex = ev.get(case_ref, "CC/1")
    for i in range(n):
        ev.record(case, ex, "note", actor=Actor(f"worker-{worker}"), parameters={"worker": worker, "i": i})
    return n


def test_eight_concurrent_appenders(cli, case_ref, evidence):
    from pipeline.custody.actor import Actor

    case, ex = evidence.ensure_exhibit(case_ref, "CC/1", "DC Test", Actor("pytest"))
    per = 5
    ctx = mp.get_context("spawn")
    with ctx.Pool(8) as pool:
        done = pool.starmap(_append, [(str(cli.home), case_ref, w, per) for w in range(8)])
    assert sum(done) == 8 * per
    rep = evidence.log.read(ex.id)
    assert rep.ok, rep.findings
    assert [e["seq"] for e in rep.events] == list(range(1 + 8 * per))
    seen = {(e["parameters"]["worker"], e["parameters"]["i"]) for e in rep.events[1:]}
    assert seen == {(w, i) for w in range(8) for i in range(per)}
    assert cli.run("verify", "--case", case_ref, "--exhibit", "CC/1").returncode == 0

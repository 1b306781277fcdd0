"""The transparency log and the constant-cost append, against the real S3 server (and the tiles, purely)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.custody.merkle import MerkleTree, leaf_hash
from pipeline.custody.tiles import TiledTree, TileWriter, last_tiles, right_edge, tile_name
from tests.conftest import wait_for
from tests.homes import examiner, failures, verify_json


# ---- tiles: the same tree as the reference MerkleTree, whatever the batch sizes -------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12), st.randoms())
def test_tiles_give_the_reference_roots_and_proofs(batches, rnd):  # type: ignore[no-untyped-def]
    store: dict[str, bytes] = {}
    ref = MerkleTree()
    size, edges, sizes = 0, {}, []
    for b in batches:
        w = TileWriter(size, edges)
        for _ in range(b):
            h = leaf_hash(rnd.randbytes(4))
            w.append(h)
            ref.append(h)
        for k, v in w.tiles().items():
            assert store.setdefault(k, v) == v  # write-once: a key never gets other content
        # what a verifier waits for before proving against this size: all stored once this batch is, the
        # bottom one always by this batch
        last = [tile_name(*t) for t in last_tiles(w.size)]
        assert all(k in store for k in last) and last[0] in w.tiles()
        size, edges = w.size, w.edges()
        sizes.append(size)
        assert {(lv, store[tile_name(lv, i, wd)]) for lv, i, wd in right_edge(size)} == set(edges.items())
    for n in sizes:
        t = TiledTree(n, store.__getitem__)
        assert t.root() == ref.root(n)
        i = rnd.randrange(n)
        assert t.inclusion_proof(i) == ref.inclusion_proof(i, n)
        m = rnd.randint(0, n)
        assert t.consistency_proof(m) == ref.consistency_proof(m, n)


# ---- appending costs the same at event 10 and at event 2,000 ------------------------------------------------
class _Count:
    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self.store, self.calls = store, Counter()
        self._orig = store._call

    def __enter__(self):  # type: ignore[no-untyped-def]
        def counting(fn, *a, **kw):  # type: ignore[no-untyped-def]
            self.calls[getattr(fn, "__name__", str(fn))] += 1
            return self._orig(fn, *a, **kw)

        self.store._call = counting
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self.store._call = self._orig


def test_append_cost_does_not_grow_with_the_chain(evidence, case_ref):  # type: ignore[no-untyped-def]
    from pipeline.custody.actor import Actor
    from pipeline.custody.chainstore import ChainStore, Witness
    from pipeline.custody.events import build_event
    from pipeline.custody.log import events_prefix

    case, ex = evidence.ensure_exhibit(case_ref, "AC/1", "DC Test", Actor("pytest"))
    prefix = events_prefix(ex.id)
    chains = evidence.log.chains

    def build(seq, prev, when):  # type: ignore[no-untyped-def]
        return build_event(case=case.brief(), exhibit=ex.brief(), seq=seq, prev_hash=prev, actor={"name": "t"},
                           action="note", objects=[], tools={}, parameters={}, time=when)

    def cost() -> Counter:
        with _Count(evidence.store) as c:
            chains.append(ex.id, prefix, build, evidence.signer)
        return c.calls

    while chains.head(ex.id, prefix).length < 10:
        chains.append(ex.id, prefix, build, evidence.signer)
    at_10 = cost()
    while chains.head(ex.id, prefix).length < 1000:
        chains.append(ex.id, prefix, build, evidence.signer)
    at_1000 = cost()
    assert at_10 == at_1000 == Counter({"_put_object": 1}), (at_10, at_1000)  # one PUT, no listing, no read
    # a home that has never seen the chain finds its head by probing: O(log n) HEADs, still no listing
    fresh = ChainStore(evidence.store, Witness(evidence.settings.home / "no-such-witness"))
    with _Count(evidence.store) as c:
        head = fresh.head(ex.id, prefix)
    assert head == chains.head(ex.id, prefix)
    assert c.calls["stat_object"] <= 2 * 11 + 2 and not any("list" in k for k in c.calls), c.calls
    # the whole append, transparency log included: one PUT; a chain's marker (at most one per half interval) adds
    # a second, and a log round (about once a second, by one of the appenders) a few more
    costs = []
    for _ in range(20):
        with _Count(evidence.store) as c:
            evidence.record(case, ex, "note", actor=Actor("pytest"))
        costs.append(c.calls)
    assert min(costs, key=lambda x: sum(x.values())) == Counter({"_put_object": 1}), costs
    assert sum(1 for c in costs if c == Counter({"_put_object": 1})) >= 10, costs


# ---- many appenders: every chain head reaches the log ---------------------------------------------------------
def _append(home: str, case_ref: str, ref: str, worker: int, n: int) -> int:
    os.environ["CUSTODY_HOME"] = home
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence

    ev = Evidence()
    case, ex = ev.get(case_ref, ref)
    for i in range(n):
        ev.record(case, ex, "note", actor=Actor(f"worker-{worker}"), parameters={"worker": worker, "i": i})
    return n  # no flush: a killed worker leaves its last heads queued, the next round folds them in


def test_eight_appenders_every_head_logged(cli, stack_status, evidence, case_ref, tmp_path):  # type: ignore[no-untyped-def]
    from pipeline.custody.actor import Actor
    from pipeline.custody.log import events_prefix
    from pipeline.custody.tlogview import LogView

    refs = ["MP/1"] + [f"MQ/{w}" for w in range(8)]
    for r in refs:
        evidence.ensure_exhibit(case_ref, r, "DC Test", Actor("pytest"))
    jobs = [(str(cli.home), case_ref, "MP/1", w, 6) for w in range(8)]  # eight on one exhibit
    jobs += [(str(cli.home), case_ref, f"MQ/{w}", w, 6) for w in range(8)]  # and one each on eight more
    with mp.get_context("spawn").Pool(8) as pool:
        assert sum(pool.starmap(_append, jobs)) == 16 * 6
    cli.run("log", "sync")
    view = LogView(evidence.store, evidence.log.trusted_keys())
    for r in refs:
        _c, ex = evidence.get(case_ref, r)
        chain = evidence.log.read(ex.id)
        assert chain.ok, chain.findings
        entries = view.entries(events_prefix(ex.id))
        assert max(e.length for e in entries) == len(chain.events) == (49 if r == "MP/1" else 7)
    rc, rep = verify_json(examiner(cli, stack_status, tmp_path / "examiner"), "--case", case_ref)
    assert rc == 0, failures(rep)


# ---- a sequencer that dies after claiming its round: the next round publishes for it -------------------------
def test_crashed_round_is_published_by_the_next(cli, stack_status, evidence, case_ref, tmp_path):  # type: ignore[no-untyped-def]
    from pipeline.custody import treehead
    from pipeline.custody.actor import Actor
    from pipeline.custody.log import events_prefix
    from pipeline.custody.merkle import CompactRange
    from pipeline.custody.tlog import TransparencyLog
    from pipeline.custody.tlogformat import BATCH_SCHEMA, batch_key, head_key, leaf, leaf_hash_of
    from pipeline.custody.tlogview import LogView

    case, ex = evidence.ensure_exhibit(case_ref, "CR/1", "DC Test", Actor("pytest"))
    cli.run("log", "sync")
    tl = evidence.log.tlog
    st = tl.integrate(force=True)
    assert st is not None and st.head is not None
    chain = evidence.log.read(ex.id)
    lf = leaf(events_prefix(ex.id), len(chain.events), chain.head_hash)
    cr = CompactRange(st.size, st.frontier)
    cr.append(leaf_hash_of(lf))
    head = treehead.build(st.log_id, cr.size, cr.root(), prev=st.head)
    doc = {"schema": BATCH_SCHEMA, "batch": st.batch + 1, "log_id": st.log_id, "start": st.size, "size": cr.size,
           "leaves": [lf], "frontier": [h.hex() for h in cr.hashes], "treehead": treehead.sign(head, evidence.signer)}
    bucket = evidence.store.buckets["custody"]
    evidence.store.put_bytes(bucket, batch_key(st.batch + 1), json.dumps(doc).encode(), if_absent=True, lock=True,
                             retention_mode="COMPLIANCE")  # claimed, then the process died: nothing published
    assert evidence.store.stat(bucket, head_key(cr.size)) is None
    # a verifier meanwhile uses the newest batch whose tiles exist, and names this one
    view = LogView(evidence.store, evidence.log.trusted_keys())
    stale = view.latest(wait_s=0.3)
    assert stale is not None and (stale.batch, stale.head.size) == (st.batch, st.size)
    assert [f.problem for f in view.findings if batch_key(st.batch + 1) in f.subject] == [
        "claimed, but its tiles were not published within 0.3 s (its sequencer stopped mid-round; the next "
        "appending command publishes them): checked against the batch before"]

    # while a round is in progress the verifier waits for its head instead of proving against missing tiles
    polls = [0]

    class Watched:  # the real store, counting the verifier's looks at the head it waits for
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(evidence.store, name)

        def stat(self, b: str, key: str, *a, **k):  # type: ignore[no-untyped-def]
            polls[0] += key == head_key(cr.size)
            return evidence.store.stat(b, key, *a, **k)

    waiting = LogView(Watched(), evidence.log.trusted_keys())  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(waiting.latest, -1, 120.0)
        deadline = time.monotonic() + 60
        while polls[0] < 2 and not fut.done():
            assert time.monotonic() < deadline, "the verifier never looked for the head"
            time.sleep(0.02)
        fresh = TransparencyLog(evidence.store, evidence.signer, evidence.settings, evidence.log.trusted_keys)
        fresh.integrate(force=True)
        assert evidence.store.stat(bucket, head_key(cr.size)) is not None
        got = fut.result(timeout=120)
    assert got is not None and got.head.size >= cr.size and not waiting.findings, waiting.findings
    rc, rep = verify_json(examiner(cli, stack_status, tmp_path / "examiner"), "--case", case_ref)
    assert rc == 0, failures(rep)


_EXIT_MID_ROUND = """
import json, sys, threading, time
from pipeline.custody.log import events_prefix
from pipeline.custody.tlog import TransparencyLog
from pipeline.custody.tlogformat import leaf
from pipeline.evidence import Evidence

ev = Evidence()
chain = ev.log.read(sys.argv[1])
claimed = threading.Event()

class Slow:  # the real store; each tile PUT a little slower, so the exit comes between claim and head
    def __getattr__(self, name):
        return getattr(ev.store, name)

    def put_bytes(self, bucket, key, data, *a, **k):
        if key.startswith("tlog/tiles/"):
            time.sleep(0.3)
        out = ev.store.put_bytes(bucket, key, data, *a, **k)
        if key.startswith("tlog/batches/"):
            print(json.dumps({"size": json.loads(data)["size"]}), flush=True)
            claimed.set()
        return out

tl = TransparencyLog(Slow(), ev.signer, ev.settings, ev.log.trusted_keys)
lf = leaf(events_prefix(sys.argv[1]), len(chain.events), chain.head_hash)
threading.Thread(target=tl.integrate, args=([lf],), kwargs={"force": True}, daemon=True).start()
assert claimed.wait(120), "no batch claimed"
sys.exit(0)  # an ordinary exit while the round's daemon thread is between its claim and its head
"""


def test_a_process_exiting_mid_round_finishes_it_first(cli, evidence, case_ref):  # type: ignore[no-untyped-def]
    """A command or `cameras serve` that exits while its timer thread is publishing a round waits for the
    round: cut off after the claim, the newest batch would be unprovable until the next appender came."""
    import subprocess
    import sys

    from pipeline.custody.actor import Actor
    from pipeline.custody.tlogformat import head_key
    from pipeline.custody.tlogview import LogView

    _, ex = evidence.ensure_exhibit(case_ref, "EX/1", "DC Test", Actor("pytest"))
    proc = subprocess.run([sys.executable, "-c", _EXIT_MID_ROUND, ex.id], env=cli.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    size = json.loads(proc.stdout.splitlines()[0])["size"]
    assert evidence.store.stat(evidence.store.buckets["custody"], head_key(size)) is not None  # published
    view = LogView(evidence.store, evidence.log.trusted_keys())
    got = view.latest(wait_s=0.0)
    assert got is not None and got.head.size >= size and not view.findings, view.findings


# ---- the verifier's memory: a log that no longer extends what it saw is reported --------------------------------
def test_rolled_back_or_forked_log_is_reported(cli, stack_status, evidence, case_ref, tmp_path):  # type: ignore[no-untyped-def]
    from pipeline.custody import treehead
    from pipeline.custody.seen import Seen
    from pipeline.custody.tlogview import LogView

    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(900))
    cli.run("ingest", str(f), "--case", case_ref, "--exhibit", "RB/1", "--officer", "DC Test")
    ex = examiner(cli, stack_status, tmp_path / "examiner")
    assert verify_json(ex, "--case", case_ref)[0] == 0
    (remembered,) = (ex.home / "seen").glob("treehead-*.json")
    seen = json.loads(remembered.read_text())
    latest = LogView(evidence.store, evidence.log.trusted_keys()).latest()
    assert seen["envelope"] == latest.envelope  # it remembered the head it verified
    cur = latest.head
    for size, problem in ((cur.size + 50, "shrank"), (cur.size, "forked")):
        # as if this verifier had seen a longer (or different) log signed by the operator: the store now
        # shows less, or something else, than it once committed to
        other = treehead.build(cur.log_id, size, random.randbytes(32), time=cur.when)
        seen["envelope"] = treehead.sign(other, evidence.signer)
        remembered.write_text(json.dumps(seen))
        rc, rep = verify_json(ex, "--case", case_ref)
        assert rc == 1 and problem in failures(rep), failures(rep)
        assert json.loads(remembered.read_text())["envelope"] == seen["envelope"]  # not overwritten by a worse one
    del Seen


def test_hidden_newest_batch_is_named_and_not_sequenced_over(cli, stack_status, evidence, raw_client, case_ref,
                                                             tmp_path):  # type: ignore[no-untyped-def]
    from pipeline.custody.actor import Actor
    from pipeline.custody.tlogview import LogView
    from tests.homes import hide, unhide

    case, ex = evidence.ensure_exhibit(case_ref, f"HB/{uuid.uuid4().hex[:4]}", "DC Test", Actor("pytest"))
    cli.run("log", "sync")
    latest = LogView(evidence.store, evidence.log.trusted_keys()).latest()
    key = f"tlog/batches/{latest.batch:012d}.json"
    hide(raw_client, key)
    try:
        rc, rep = verify_json(examiner(cli, stack_status, tmp_path / "examiner"), "--case", case_ref)
        assert rc == 1 and key in failures(rep) and "hidden by a delete marker" in failures(rep)
        evidence.record(case, ex, "note", actor=Actor("pytest"))  # appending still works, and the log goes on ...
        cli.run("log", "sync", check=False)  # ... from a process that cannot see the hidden batch too
        versions = list(raw_client.list_objects("custody-custody", prefix=key, include_version=True))
        assert sorted(v.is_delete_marker for v in versions) == [False, True]  # nobody claimed the hidden number
    finally:
        unhide(raw_client, key)
    cli.run("log", "sync")


# ---- a quiet process's last events are time-stamped without waiting for another append --------------------------
def _stamped_at_least(ev, size: int) -> bool:  # type: ignore[no-untyped-def]
    keys = ev.store.list_keys(ev.store.buckets["custody"], "tlog/tokens/")
    return any(int(k.rsplit("/", 1)[1].split(".")[0]) >= size for k in keys)


def _head_size(ev) -> int:  # type: ignore[no-untyped-def]
    from pipeline.custody.tlogview import LogView

    got = LogView(ev.store, ev.log.trusted_keys()).latest(wait_s=0.0)
    return got.head.size if got is not None else 0


def test_a_quiet_process_time_stamps_its_last_events_without_another_append(settings_env, case_ref):  # type: ignore[no-untyped-def]
    """A round asks the TSA at most once per `tsa_interval_s`. The events a server recorded just after a stamp were
    stamped only when some later append came, and verify then called them backdated (a restarted API server:
    events stamped 10 minutes late). Now the timer asks once the interval allows, and a process that stops asks
    for its newest head on the way out."""
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence
    from pipeline.settings import load_settings

    ev = Evidence(load_settings(tsa_interval_s=5))
    case, ex = ev.ensure_exhibit(case_ref, "QT/1", "DC Test", Actor("pytest"))
    before = _head_size(ev)
    ev.record(case, ex, "note", actor=Actor("pytest"))
    wait_for(lambda: _head_size(ev) > before, 30, "the first round")
    first = _head_size(ev)
    wait_for(lambda: _stamped_at_least(ev, first), 30, "the first round's stamp")
    ev.record(case, ex, "note", actor=Actor("pytest"))  # within the interval: its round does not ask the TSA
    wait_for(lambda: _head_size(ev) > first, 30, "a round that logs the second event")
    last = _head_size(ev)
    wait_for(lambda: _stamped_at_least(ev, last), 30, "a time-stamp on the quiet process's last head")

    slow = Evidence(load_settings(tsa_interval_s=3600))  # a server that stops before the interval comes round
    slow.record(case, ex, "note", actor=Actor("pytest"))
    wait_for(lambda: _stamped_at_least(slow, _head_size(slow)) and _head_size(slow) > last, 30, "its first stamp")
    stamped = _head_size(slow)
    slow.record(case, ex, "note", actor=Actor("pytest"))
    wait_for(lambda: _head_size(slow) > stamped, 30, "its last round")
    last = _head_size(slow)
    assert not _stamped_at_least(slow, last)  # the interval holds the TSA back
    slow.log.tlog.close()  # what atexit does when `custody serve` stops
    assert _stamped_at_least(slow, last)


"""Issue 15: proving that nothing is missing. The five attacks, each against the real S3 server.

The attacker is a raw minio client with the stack's keys (and, for attack 5, the signing key file). The
detector is `custody verify` (case and bundle) run from a second CUSTODY_HOME on the same store, with no
witness state, trusting only the operator's public key and the TSA root it was given.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.custody.catalog import exhibit_index_key
from pipeline.custody.events import build_event, canonical, envelope, event_hash
from pipeline.custody.signing import Signer
from pipeline.custody.tlogformat import queue_key
from tests.forge import reseal, rezip, unzip, write_manifests
from tests.homes import B, bypass_delete, examiner, failures, hide, put, verify_json

WHY = ("--recipient", "CPS reviewing lawyer", "--reason", "test disclosure")


def _files(tmp: Path, n: int, tag: str) -> list[str]:
    out = []
    for i in range(n):
        p = tmp / f"{tag}{i}.bin"
        p.write_bytes(os.urandom(1500 + i))
        out.append(str(p))
    return out


def _case(cli, tmp: Path, refs=("AA/1", "AA/2"), n: int = 2, env: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    """A fresh case with exhibits `refs`, n originals each, ingested through the CLI (so logged and time-stamped)."""
    case = f"OP-C15/{uuid.uuid4().hex[:8]}"
    ids = {}
    for ref in refs:
        out = cli.json("ingest", *_files(tmp, n, ref.replace("/", "_")), "--case", case, "--exhibit", ref,
                       "--officer", "DC Test", env=env)
        ids[ref] = out["exhibit_id"]
        case_id = out["case_id"]
    return {"ref": case, "id": case_id, "exhibits": ids}


def _event_key(exhibit_id: str, seq: int) -> str:
    return f"exhibits/{exhibit_id}/events/{seq:08d}.json"


# ---- attack 1: one delete marker on an index entry hid a whole exhibit ---------------------------------
def test_attack1_hidden_index_entry_hides_nothing(cli, stack_status, raw_client, tmp_path):  # type: ignore[no-untyped-def]
    c = _case(cli, tmp_path)
    key = exhibit_index_key(c["id"], "AA/2")
    hide(raw_client, key)
    ex = examiner(cli, stack_status, tmp_path / "examiner")
    rc, rep = verify_json(ex, "--case", c["ref"])
    assert rc == 1 and rep["result"] == "FAIL"
    assert [x["exhibit"] for x in rep["exhibits"]] == ["AA/1", "AA/2"]  # listed from the case log, not the index
    assert all(x["result"] == "PASS" for x in rep["exhibits"])  # the exhibit itself is intact and verified
    assert key in failures(rep) and "hidden by a delete marker" in failures(rep)
    assert rep["case_log"]["exhibits"] == ["AA/1", "AA/2"]

    out = tmp_path / "b.zip"  # the operator's bundle still holds both, and the examiner's verify agrees
    cli.run("bundle", "--case", c["ref"], "--out", str(out), "--recipient", "CPS", "--reason", "disclosure")
    rc, brep = verify_json(ex, str(out))
    assert rc == 0, brep["failures"]
    assert [x["exhibit"] for x in brep["exhibits"]] == ["AA/1", "AA/2"]

    cli.run("log", "rebuild-index", "--case", c["ref"])  # the index is a cache of the case log
    rc, rep = verify_json(ex, "--case", c["ref"])
    assert rc == 0, failures(rep)


# ---- attack 2: truncating a bundle and fixing the unsigned metadata ---------------------------------------
def test_attack2_truncated_bundle_with_fixed_metadata(cli, stack_status, tmp_path):  # type: ignore[no-untyped-def]
    import bagit

    c = _case(cli, tmp_path, refs=("TR/1",), n=4)
    z = tmp_path / "b.zip"
    cli.run("bundle", "--case", c["ref"], "--out", str(z), *WHY)
    bag = unzip(z, tmp_path / "x")
    events = sorted((bag / "data/exhibits/TR_1/custody/events").glob("*.json"))
    for p in events[-2:]:
        p.unlink()
    index = json.loads((bag / "data/bundle.json").read_bytes())
    last = json.loads(events[-3].read_bytes())
    index["exhibits"][0]["chain"] = {"length": len(events) - 2, "head": last["event_sha256"]}
    index["exhibits"][0]["files"] = [f for f in index["exhibits"][0]["files"]
                                     if f["path"] not in {p.relative_to(bag).as_posix() for p in events[-2:]}]
    (bag / "data/bundle.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    write_manifests(bag)
    b = bagit.Bag(str(bag))
    b.validate()  # the standard validator is satisfied: BagIt alone cannot see the truncation
    bad = rezip(bag, tmp_path / "truncated.zip")
    ex = examiner(cli, stack_status, tmp_path / "examiner")
    rc, rep = verify_json(ex, str(bad))
    assert rc == 1
    f = failures(rep)
    assert "missing" in f and events[-1].name in f  # named: the signed file list still lists the dropped events
    assert "data/bundle.json" in f and "signed statement" in f


# ---- attack 3: a bundle re-signed with another key verifies only if you trust that key -------------------
def test_attack3_resigned_bundle_is_refused_unless_its_key_is_trusted(cli, stack_status, tmp_path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pipeline.custody.signing import public_pem
    from pipeline.ops import tsa_server

    c = _case(cli, tmp_path, refs=("RS/1",))
    z = tmp_path / "b.zip"
    cli.run("bundle", "--case", c["ref"], "--out", str(z), *WHY)
    bag = unzip(z, tmp_path / "x")
    planted = next(p for p in sorted((bag / "data/exhibits/RS_1/originals").iterdir()))
    mallory = Signer(Ed25519PrivateKey.generate())
    evil = tsa_server.start(tmp_path / "evil-tsa")  # the forger's own time-stamp authority
    try:
        reseal(bag, mallory, evil.url, evil.ca_cert, plant=(planted.relative_to(bag).as_posix(), b"planted footage"))
    finally:
        tsa_server.stop(tmp_path / "evil-tsa")
    forged = rezip(bag, tmp_path / "forged.zip")
    ex = examiner(cli, stack_status, tmp_path / "examiner")
    proc = ex.run("verify", str(forged), check=False)
    assert proc.returncode == 1 and proc.stdout.strip() == "FAIL"
    assert mallory.key_id in proc.stderr and "confirm this id with the sender" in proc.stderr
    rc, rep = verify_json(ex, str(forged))
    assert rc == 1 and f"untrusted key {mallory.key_id}" in failures(rep)
    # the forgery is internally perfect: trusting the forger's key and TSA is the only thing that passes it
    pem = tmp_path / "mallory.pem"
    pem.write_bytes(public_pem(mallory.public))
    rc, rep = verify_json(ex, str(forged), "--trusted-key", str(pem), "--tsa-root", str(evil.ca_cert))
    assert rc == 0, failures(rep)
    # while the genuine bundle passes for the examiner, and by key id alone for anyone who confirmed it
    assert verify_json(ex, str(z))[0] == 0
    stranger = examiner(cli, stack_status, tmp_path / "stranger", trust_operator=False)
    assert verify_json(stranger, str(z))[0] == 1
    operator_id = Signer.load_or_create(cli.home / "keys" / "signing-ed25519.pem").key_id
    assert verify_json(stranger, str(z), "--key-id", operator_id)[0] == 0


# ---- attack 4: deleting the last events with a governance bypass -------------------------------------
def test_attack4_governance_truncation_is_seen_from_any_home(cli, stack_status, raw_client, tmp_path):  # type: ignore[no-untyped-def]
    from minio.error import S3Error

    c = _case(cli, tmp_path, refs=("GV/1",), n=3, env={"CUSTODY_RETENTION_MODE": "GOVERNANCE"})
    ex_id = c["exhibits"]["GV/1"]
    for seq in (3, 2):  # the last two of exhibit_created + 3 ingested
        key = _event_key(ex_id, seq)
        for v in list(raw_client.list_objects(B, prefix=key, include_version=True)):
            bypass_delete(raw_client, key, v.version_id)
        assert not list(raw_client.list_objects(B, prefix=key, include_version=True))  # truly gone
    entries = [o.object_name for o in raw_client.list_objects(B, prefix=f"tlog/chains/exhibits/{ex_id}/",
                                                               recursive=True, include_version=True)]
    assert entries
    with pytest.raises(S3Error):  # the transparency log is COMPLIANCE-locked whatever the evidence mode
        v = next(raw_client.list_objects(B, prefix=entries[-1], include_version=True))
        bypass_delete(raw_client, entries[-1], v.version_id)
    ex = examiner(cli, stack_status, tmp_path / "examiner")  # no witness state at all
    rc, rep = verify_json(ex, "--case", c["ref"])
    assert rc == 1
    f = failures(rep)
    assert "events 2..3" in f and "missing: the transparency log recorded 4 documents" in f


# ---- attack 5: backdating, and replaying an older bundle ---------------------------------------------------
def _forge_event(raw_client, cli, case: dict, exhibit_id: str, when: str) -> int:  # type: ignore[no-untyped-def]
    signer = Signer.load_or_create(cli.home / "keys" / "signing-ed25519.pem")
    seqs = sorted(o.object_name for o in raw_client.list_objects(B, prefix=f"exhibits/{exhibit_id}/events/",
                                                                 recursive=True))
    last = json.loads(raw_client.get_object(B, seqs[-1]).read())["event"]
    seq = last["seq"] + 1
    ev = build_event(case={"id": case["id"], "ref": case["ref"]}, exhibit=last["exhibit"], seq=seq,
                     prev_hash=event_hash(last), actor={"name": "DC Test", "role": "officer"}, action="note",
                     objects=[], tools={}, parameters={"text": "seen at the scene"}, time=when)
    put(raw_client, _event_key(exhibit_id, seq),
        json.dumps(envelope(ev, signer.sign(canonical(ev)), signer.key_id)).encode())
    return seq


def test_attack5_backdated_event_is_named(cli, stack_status, raw_client, tmp_path):  # type: ignore[no-untyped-def]
    c = _case(cli, tmp_path, refs=("BD/1", "BD/2"))
    ex_id = c["exhibits"]["BD/1"]
    seq = _forge_event(raw_client, cli, c, ex_id, "2019-03-01T10:00:00.000000Z")
    ex = examiner(cli, stack_status, tmp_path / "examiner")
    rc, rep = verify_json(ex, "--case", c["ref"], "--exhibit", "BD/1")
    assert rc == 1
    f = failures(rep)
    assert f"event {seq}" in f and "time goes backwards" in f
    assert "not in the transparency log although older than the tolerance" in f
    # the insider also queues it for the log, as the software would: now it is logged, and backdated
    put(raw_client, queue_key(datetime.now(UTC), f"exhibits/{ex_id}/events/", seq), b"")
    cli.run("ingest", *_files(tmp_path, 1, "late"), "--case", c["ref"], "--exhibit", "BD/2", "--officer", "DC Test")
    rc, rep = verify_json(ex, "--case", c["ref"], "--exhibit", "BD/1")
    f = failures(rep)
    assert rc == 1 and "backdated: claims 2019-03-01T10:00:00.000000Z but was first time-stamped at 20" in f


def test_attack5_replayed_older_bundle_is_superseded(cli, stack_status, tmp_path):  # type: ignore[no-untyped-def]
    c = _case(cli, tmp_path, refs=("RP/1",))
    old, new = tmp_path / "old.zip", tmp_path / "new.zip"
    cli.run("bundle", "--case", c["ref"], "--out", str(old), *WHY)
    cli.run("ingest", *_files(tmp_path, 1, "more"), "--case", c["ref"], "--exhibit", "RP/1", "--officer", "DC Test")
    cli.run("bundle", "--case", c["ref"], "--out", str(new), *WHY)
    first = examiner(cli, stack_status, tmp_path / "saw-old-first")
    assert verify_json(first, str(old))[0] == 0
    rc, rep = verify_json(first, str(new))
    assert rc == 0 and any("extends bundle" in n for n in rep["notes"])
    second = examiner(cli, stack_status, tmp_path / "saw-new-first")
    assert verify_json(second, str(new))[0] == 0
    rc, rep = verify_json(second, str(old))
    assert rc == 1 and rep["superseded"]["consistency_proof"] is True
    assert "superseded" in failures(rep) and "newer events exist" in failures(rep)


# ---- trusted time and the independent check ----------------------------------------------------------------
def test_bundle_tokens_verify_with_openssl_and_the_standalone_checker(cli, tmp_path):  # type: ignore[no-untyped-def]
    c = _case(cli, tmp_path, refs=("TS/1",))
    cli.run("ingest", *_files(tmp_path, 1, "two"), "--case", c["ref"], "--exhibit", "TS/1", "--officer", "DC Test")
    z = tmp_path / "b.zip"
    cli.run("bundle", "--case", c["ref"], "--out", str(z), *WHY)
    bag = unzip(z, tmp_path / "x")
    ca = cli.home / "stack" / "tsa" / "ca.pem"
    tokens = [bag / "data/transparency/treehead.tsr", *sorted((bag / "data/transparency/anchors").glob("*.tsr"))]
    for tok in tokens:
        head = json.loads(tok.with_suffix(".json").read_bytes())
        digest = hashlib.sha256(canonical(head["treehead"])).hexdigest()
        assert digest == head["treehead_sha256"]
        proc = subprocess.run(["openssl", "ts", "-verify", "-digest", digest, "-in", str(tok), "-token_in",
                               "-CAfile", str(ca)], capture_output=True, text=True)
        assert proc.returncode == 0 and "Verification: OK" in proc.stdout, proc.stdout + proc.stderr
        wrong = subprocess.run(["openssl", "ts", "-verify", "-digest", "00" * 32, "-in", str(tok), "-token_in",
                                "-CAfile", str(ca)], capture_output=True, text=True)
        assert wrong.returncode != 0
    readme = (bag / "README.txt").read_text()
    assert "openssl ts -verify" in readme and "openssl pkeyutl -verify" in readme and "check_bundle.py" in readme
    # the statement's signature, by the commands the README gives
    st = json.loads((bag / "custody-statement.json").read_bytes())
    (tmp_path / "s.bin").write_bytes(canonical(st["statement"]))
    import base64

    (tmp_path / "s.sig").write_bytes(base64.b64decode(st["signature"]["value"]))
    key = bag / "data/keys" / f"{st['signature']['key_id']}.pem"
    proc = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin", "-in",
                           str(tmp_path / "s.bin"), "-sigfile", str(tmp_path / "s.sig")], capture_output=True,
                          text=True)
    assert "Signature Verified Successfully" in proc.stdout, proc.stdout + proc.stderr
    checker = bag / "data/transparency/check_bundle.py"
    proc = subprocess.run(["/usr/bin/python3", str(checker), str(bag)], capture_output=True, text=True, env={})
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr
    events = sorted((bag / "data/exhibits/TS_1/custody/events").glob("*.json"))
    events[-1].unlink()
    proc = subprocess.run(["/usr/bin/python3", str(checker), str(bag)], capture_output=True, text=True, env={})
    assert proc.returncode == 1 and events[-1].name in proc.stdout


def test_untrusted_signer_fails_and_says_how_to_confirm(cli, stack_status, tmp_path):  # type: ignore[no-untyped-def]
    c = _case(cli, tmp_path, refs=("UK/1",), n=1)
    z = tmp_path / "b.zip"
    cli.run("bundle", "--case", c["ref"], "--out", str(z), *WHY)
    stranger = examiner(cli, stack_status, tmp_path / "stranger", trust_operator=False)
    proc = stranger.run("verify", str(z), check=False)
    kid = Signer.load_or_create(cli.home / "keys" / "signing-ed25519.pem").key_id
    assert proc.returncode == 1 and kid in proc.stderr and "--key-id" in proc.stderr
    with zipfile.ZipFile(z) as zf:
        assert any(n.endswith("custody-statement.json") for n in zf.namelist())


def test_stack_runs_and_stops_its_local_tsa(tmp_path):  # type: ignore[no-untyped-def]
    import urllib.request

    from tests.conftest import Cli

    c = Cli(tmp_path / "home")
    c.run("stack", "up", "--no-prefect")  # the TSA is the subject; Prefect would add ~15 s
    try:
        tsa = c.json("stack", "status")["tsa"]
        url, ca = tsa["local"]["url"], tsa["local"]["ca"]
        assert tsa["urls"] == [url] and ca in tsa["roots"] and Path(ca).read_bytes().startswith(b"-----BEGIN")
        with urllib.request.urlopen(url + "health", timeout=5) as r:  # noqa: S310 - loopback
            assert r.read() == b"ok\n"
        pid = json.loads((tmp_path / "home/stack/tsa/tsa.json").read_text())["pid"]
    finally:
        c.run("stack", "down")
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert c.json("stack", "status", check=False)["tsa"]["local"]["url"] is None


def test_case_log_names_each_exhibit_once_and_heals_a_missing_entry(evidence, cli):  # type: ignore[no-untyped-def]
    """A new exhibit is added to the case log without reading it (one GET per entry would make every new
    exhibit of a big case slow); an exhibit whose creation was interrupted before its entry gets one, once."""
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence

    ref = f"OP-HEAL/{uuid.uuid4().hex[:8]}"
    actor = Actor("pytest")
    case, _ = evidence.create_case(ref, actor)
    reads: list[str] = []
    documents = evidence.log.chains.documents
    evidence.log.chains.documents = lambda prefix: reads.append(prefix) or documents(prefix)  # type: ignore[method-assign]
    try:
        evidence.ensure_exhibit(ref, "NW/1", "DC New", actor)
    finally:
        evidence.log.chains.documents = documents  # type: ignore[method-assign]
    assert len(reads) == 1  # the lookup for a hidden index entry only, not a second read to check membership
    interrupted, created = evidence.catalog.create_exhibit(case, "IN/1", "DC Cut")  # catalog only: no entry
    assert created
    for ev in (evidence, Evidence(evidence.settings), Evidence(evidence.settings)):
        ev.ensure_exhibit(ref, "IN/1", "DC Cut", actor)
    entries = [d["event"]["record"]["ref"] for d in Evidence(evidence.settings).log.chains.documents(
        f"cases/{case.id}/log/") if d["event"]["action"] == "exhibit_added"]
    assert sorted(entries) == ["IN/1", "NW/1"], entries
    rep = cli.json("verify", "--case", ref)
    assert rep["result"] == "PASS", failures(rep)

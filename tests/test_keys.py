"""Keys: rotation by a signed key-change record, and an external signer (tested with the file key)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid

from pipeline.custody.events import build_event, canonical, envelope, event_hash
from pipeline.custody.signing import Signer
from tests.homes import B, examiner, failures, put, verify_json

WHY = ("--recipient", "CPS reviewing lawyer", "--reason", "test disclosure")


def _operator(cli, stack_status, home, env: dict | None = None):  # type: ignore[no-untyped-def]
    """Another host writing to the session store, time-stamping with the TSA named in its settings. Hosts of one
    store sign each other's tree heads, so they trust each other: its key goes into the session home's trusted
    folder, as adding a worker would."""
    c = examiner(cli, stack_status, home)
    c.env["CUSTODY_TSA_URLS"] = json.dumps([json.loads((cli.home / "stack/tsa/tsa.json").read_text())["url"]])
    c.env["CUSTODY_ACTOR"] = "operator-2"
    c.env.update(env or {})
    kid = c.json("key", "show")["key_id"]
    pub = c.json("key", "show")["public_key"]
    shutil.copy(pub, cli.home / "keys" / "trusted" / f"{kid}.pem")
    return c


def test_rotation_keeps_trust_and_flags_the_retired_key(cli, stack_status, raw_client, tmp_path):  # type: ignore[no-untyped-def]
    op = _operator(cli, stack_status, tmp_path / "op2")
    case = f"OP-KEY/{uuid.uuid4().hex[:8]}"
    f1, f2 = tmp_path / "a.bin", tmp_path / "b.bin"
    f1.write_bytes(os.urandom(800))
    f2.write_bytes(os.urandom(900))
    out = op.json("ingest", str(f1), "--case", case, "--exhibit", "KR/1", "--officer", "DC Key")
    old_pub = tmp_path / "op2-old.pem"
    shutil.copy(op.home / "keys" / "signing-ed25519.pub", old_pub)
    rot = op.json("key", "rotate", "--reason", "annual rotation")
    assert rot["old_key_id"] != rot["new_key_id"]
    assert op.json("key", "show")["key_id"] == rot["new_key_id"]
    op.run("ingest", str(f2), "--case", case, "--exhibit", "KR/1", "--officer", "DC Key")
    z = tmp_path / "b.zip"
    op.run("bundle", "--case", case, "--out", str(z), *WHY)
    # an examiner given only the OLD key trusts the new one through the record (in the store, and in the bundle)
    ex = examiner(cli, stack_status, tmp_path / "ex")  # trusts the session host, and op2's old key only:
    shutil.copy(old_pub, ex.home / "keys" / "trusted" / "op2.pem")
    rc, rep = verify_json(ex, "--case", case)
    assert rc == 0, failures(rep)
    rc, rep = verify_json(ex, str(z))
    assert rc == 0, failures(rep)
    assert any("successor" in k["source"] for k in rep["keys"] if k["key_id"] == rot["new_key_id"])
    # the retired key signing after the change (a stolen old key file) is named
    old = Signer.load_or_create(op.home / "keys" / "retired" / f"{rot['old_key_id']}.pem")
    ex_id = out["exhibit_id"]
    keys = sorted(o.object_name for o in raw_client.list_objects(B, prefix=f"exhibits/{ex_id}/events/",
                                                                 recursive=True))
    last = json.loads(raw_client.get_object(B, keys[-1]).read())["event"]
    ev = build_event(case=last["case"], exhibit=last["exhibit"], seq=last["seq"] + 1, prev_hash=event_hash(last),
                     actor={"name": "x", "role": "y"}, action="note", objects=[], tools={}, parameters={})
    put(raw_client, f"exhibits/{ex_id}/events/{ev['seq']:08d}.json",
        json.dumps(envelope(ev, old.sign(canonical(ev)), old.key_id)).encode())
    rc, rep = verify_json(ex, "--case", case)
    assert rc == 1 and "retired by a key change" in failures(rep)


def test_external_signer_with_the_file_key(cli, stack_status, tmp_path):  # type: ignore[no-untyped-def]
    key = tmp_path / "hsm" / "key.pem"
    key.parent.mkdir()
    signer = Signer.load_or_create(key)  # stands in for the key an HSM would hold
    op = _operator(cli, stack_status, tmp_path / "op3", {
        "CUSTODY_SIGNER_COMMAND": json.dumps([sys.executable, "-m", "pipeline.custody.keys", "sign", "--key",
                                              str(key)]),
        "CUSTODY_SIGNER_PUBLIC_KEY": str(key.with_suffix(".pub"))})
    show = op.json("key", "show")
    assert show == {**show, "key_id": signer.key_id, "backend": "CommandSigner"}
    f = tmp_path / "c.bin"
    f.write_bytes(os.urandom(700))
    case = f"OP-HSM/{uuid.uuid4().hex[:8]}"
    op.run("ingest", str(f), "--case", case, "--exhibit", "HS/1", "--officer", "DC Key")
    view = op.json("exhibit", "show", "--case", case, "--exhibit", "HS/1")
    assert view["chain"]["ok"]
    ex = examiner(cli, stack_status, tmp_path / "ex")
    shutil.copy(key.with_suffix(".pub"), ex.home / "keys" / "trusted" / "hsm.pem")
    rc, rep = verify_json(ex, "--case", case)
    assert rc == 0, failures(rep)
    # a signer that answers with another key's signatures is refused before anything is stored
    other = Signer.load_or_create(tmp_path / "other.pem")
    op.env["CUSTODY_SIGNER_PUBLIC_KEY"] = str(tmp_path / "other.pub")
    del other
    proc = op.run("ingest", str(f), "--case", case, "--exhibit", "HS/2", "--officer", "DC Key", check=False)
    assert proc.returncode == 3 and "does not verify with its public key" in proc.stderr


def test_a_new_homes_key_is_one_key_however_many_create_it_at_once(tmp_path):  # type: ignore[no-untyped-def]
    """Threads (and processes: the file is linked into place) creating the key together all get the same key."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.custody.keys import DeferredSigner
    from pipeline.custody.signing import Signer

    path = tmp_path / "keys" / "signing-ed25519.pem"
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _i: Signer.load_or_create(path).key_id, range(16)))
    assert ids == {Signer.load_or_create(path).key_id}
    assert path.stat().st_mode & 0o777 == 0o600 and not list(path.parent.glob("*.tmp"))

    class Settings:  # the two fields load_signer reads
        signer_command: list[str] = []
        signing_key_path = tmp_path / "other" / "signing-ed25519.pem"

    deferred = DeferredSigner(Settings())
    assert not Settings.signing_key_path.exists()  # nothing is loaded, nor created, until a signature is needed
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _i: deferred.key_id, range(16)))
    assert ids == {Signer.load_or_create(Settings.signing_key_path).key_id}

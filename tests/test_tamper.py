"""Every tamper made with a raw S3 client is detected and pinpointed by `custody verify`."""

from __future__ import annotations

import io
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.custody.events import canonical, event_hash
from pipeline.custody.signing import Signer


@pytest.fixture
def exhibit(cli, case_ref, tmp_path):
    """An exhibit with three originals (events 0..3)."""
    files = []
    for i in range(3):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(2000 + i))
        files.append(str(p))
    out = cli.json("ingest", *files, "--case", case_ref, "--exhibit", "TT/1", "--officer", "DC Test")
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "TT/1")
    assert [e["action"] for e in view["events"]] == ["exhibit_created", "ingested", "ingested", "ingested"]
    assert cli.run("verify", "--case", case_ref).returncode == 0
    return {"case": case_ref, "id": out["exhibit_id"], "objects": out["objects"]}


def _event_key(ex, seq):
    return f"exhibits/{ex['id']}/events/{seq:08d}.json"


def _get(raw, bucket, key):
    return raw.get_object(bucket, key).read()


def _put(raw, bucket, key, data: bytes):
    raw.put_object(bucket, key, io.BytesIO(data), len(data))


def _verify_fails(cli, ex) -> str:
    proc = cli.run("verify", "--case", ex["case"], "--json", check=False)
    assert proc.returncode == 1, proc.stdout
    rep = json.loads(proc.stdout)
    assert rep["result"] == "FAIL"
    return json.dumps(rep["exhibits"][0]["failures"])


B = "custody-custody"


def test_overwritten_original(cli, exhibit, raw_client):
    obj = exhibit["objects"][1]
    _put(raw_client, obj["bucket"], obj["key"], b"replacement footage")
    msg = _verify_fails(cli, exhibit)
    assert obj["key"] in msg and "overwritten" in msg


def test_edited_event(cli, exhibit, raw_client):
    key = _event_key(exhibit, 2)
    doc = json.loads(_get(raw_client, B, key))
    doc["event"]["actor"]["name"] = "someone else"
    _put(raw_client, B, key, json.dumps(doc).encode())
    msg = _verify_fails(cli, exhibit)
    assert "event 2" in msg and "altered" in msg


def test_deleted_event(cli, exhibit, raw_client):
    raw_client.remove_object(B, _event_key(exhibit, 1))
    msg = _verify_fails(cli, exhibit)
    assert "event 1" in msg and "deleted" in msg


def test_swapped_events(cli, exhibit, raw_client):
    a, b = _get(raw_client, B, _event_key(exhibit, 1)), _get(raw_client, B, _event_key(exhibit, 2))
    _put(raw_client, B, _event_key(exhibit, 1), b)
    _put(raw_client, B, _event_key(exhibit, 2), a)
    msg = _verify_fails(cli, exhibit)
    assert "event 1" in msg and "event 2" in msg and "out of place" in msg


def test_event_signed_by_another_key(cli, exhibit, raw_client):
    key = _event_key(exhibit, 3)
    doc = json.loads(_get(raw_client, B, key))
    doc["event"]["actor"]["name"] = "mallory"
    other = Signer(Ed25519PrivateKey.generate())
    doc["event_sha256"] = event_hash(doc["event"])
    doc["signature"] = {"alg": "ed25519", "key_id": other.key_id, "value": other.sign(canonical(doc["event"]))}
    _put(raw_client, B, key, json.dumps(doc).encode())
    msg = _verify_fails(cli, exhibit)
    assert "event 3" in msg and "untrusted key" in msg


def test_home_copies_of_events_spare_the_gets_but_never_hide_a_change(exhibit, raw_client, evidence, tmp_path):
    """The pre-work chain check reads unchanged events from the home's copies; a rewritten event in the store
    or an edited copy on disk is fetched afresh, and verification (cached=False) always reads the store."""
    from pipeline.custody.chain import check_chain
    from pipeline.custody.chainstore import ChainStore, Witness
    from pipeline.custody.doccache import DocCache
    from pipeline.custody.log import events_prefix

    gets: list[str] = []

    class Counting:  # the real store, counting document reads
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(evidence.store, name)

        def try_get_bytes(self, bucket: str, key: str, *a, **k):  # type: ignore[no-untyped-def]
            gets.append(key)
            return evidence.store.try_get_bytes(bucket, key, *a, **k)

    docs = DocCache(tmp_path / "docs")
    chains = ChainStore(Counting(), Witness(tmp_path / "witness"), docs)  # type: ignore[arg-type]
    prefix, trusted = events_prefix(exhibit["id"]), evidence.log.trusted_keys()

    def read(cached: bool = True):  # type: ignore[no-untyped-def]
        gets.clear()
        slots = chains.slots(prefix, trusted, cached=cached)
        return slots, sorted(gets)

    first, got = read()
    assert got == [_event_key(exhibit, i) for i in range(4)]
    again, got = read()
    assert got == [] and [s.data for s in again] == [s.data for s in first]
    assert check_chain(again, trusted, exhibit["id"]).ok
    assert read(cached=False)[1] == [_event_key(exhibit, i) for i in range(4)]  # verification reads every byte

    copy = next(p for p in (tmp_path / "docs").rglob("*") if p.is_file() and p.read_bytes() == first[1].data)
    copy.write_bytes(first[1].data + b" ")  # edited on this machine: MD5 no longer fits
    slots, got = read()
    assert got == [_event_key(exhibit, 1)] and slots[1].data == first[1].data

    key = _event_key(exhibit, 2)
    doc = json.loads(_get(raw_client, B, key))
    doc["event"]["actor"]["name"] = "someone else"
    _put(raw_client, B, key, json.dumps(doc).encode())  # a second version in the store
    slots, got = read()
    assert got == [key] and slots[2].versions == 2
    report = check_chain(slots, trusted, exhibit["id"])
    assert not report.ok and any("event 2" in str(f) for f in report.findings), report.findings


def test_doc_cache_keeps_only_bytes_whose_md5_is_the_etag(tmp_path):
    import hashlib

    from pipeline.custody.doccache import DocCache

    c, data = DocCache(tmp_path), b'{"event": {}}'
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    c.put("k", "0" * 32, data)  # the listing says other bytes: not kept
    assert c.get("k", "0" * 32) is None
    c.put("k", f'"{md5}"', data)
    assert c.get("k", md5) == data and c.get("other", md5) is None
    assert c.get("k", f"{md5}-2") is None and c.get("k", None) is None  # multipart or no ETag: never a hit

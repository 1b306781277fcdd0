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

"""Pure tests of the event format and chain checks (no storage)."""

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.custody.chain import Slot, check_chain
from pipeline.custody.events import GENESIS, build_event, canonical, envelope, event_hash
from pipeline.custody.signing import Signer


def make_chain(signer: Signer, n: int = 4) -> list[Slot]:
    prev = GENESIS
    slots = []
    for i in range(n):
        ev = build_event(case={"id": "c", "ref": "C"}, exhibit={"id": "e", "ref": "E/1"}, seq=i, prev_hash=prev,
                         actor={"name": "a", "role": "r"}, action="x", objects=[], tools={},
                         parameters={"every": 1.5, "n": i})
        doc = envelope(ev, signer.sign(canonical(ev)), signer.key_id)
        slots.append(Slot(f"{i:08d}.json", i, json.dumps(doc).encode()))
        prev = event_hash(ev)
    return slots


def test_canonical_form_is_stable_and_float_free():
    ev = build_event(case={"id": "c", "ref": "C"}, exhibit={"id": "e", "ref": "E"}, seq=0, prev_hash=GENESIS,
                     actor={"name": "é", "role": "r"}, action="x", objects=[], tools={}, parameters={"f": 0.1},
                     time="2026-01-01T00:00:00.000000Z")
    assert ev["parameters"]["f"] == "0.1"
    b = canonical(ev)
    assert b == canonical(json.loads(b))
    assert b"\n" not in b and b", " not in b
    assert "é".encode() in b


def test_intact_chain_passes():
    s = Signer(Ed25519PrivateKey.generate())
    rep = check_chain(make_chain(s), {s.key_id: s.public}, "e")
    assert rep.ok, rep.findings
    assert len(rep.events) == 4


def test_each_tamper_is_named():
    s = Signer(Ed25519PrivateKey.generate())
    trusted = {s.key_id: s.public}
    # edited
    slots = make_chain(s)
    doc = json.loads(slots[2].data)
    doc["event"]["actor"]["name"] = "mallory"
    slots[2].data = json.dumps(doc).encode()
    assert any("event 2" in f.subject and "altered" in f.problem for f in check_chain(slots, trusted).findings)
    # deleted
    slots = make_chain(s)
    del slots[1]
    assert any(f.subject == "event 1" and "missing" in f.problem for f in check_chain(slots, trusted).findings)
    # swapped
    slots = make_chain(s)
    slots[1].data, slots[2].data = slots[2].data, slots[1].data
    found = check_chain(slots, trusted).findings
    assert any("event 1" in f.subject and "out of place" in f.problem for f in found)
    # re-signed by another key
    other = Signer(Ed25519PrivateKey.generate())
    slots = make_chain(s)
    doc = json.loads(slots[3].data)
    doc["signature"] = {"alg": "ed25519", "key_id": other.key_id, "value": other.sign(canonical(doc["event"]))}
    slots[3].data = json.dumps(doc).encode()
    assert any("event 3" in f.subject and "untrusted" in f.problem for f in check_chain(slots, trusted).findings)
    # signature forged under our key id
    doc["signature"]["key_id"] = s.key_id
    slots[3].data = json.dumps(doc).encode()
    assert any("event 3" in f.subject and "bad signature" in f.problem for f in check_chain(slots, trusted).findings)
    # tail truncated: only a witness can tell
    slots = make_chain(s)[:3]
    assert any("at the end" in f.problem for f in check_chain(slots, trusted, expected_min_len=4).findings)

"""Transparency log building blocks: RFC 6962 Merkle tree, signed tree heads, RFC 3161 time-stamps.

Merkle reference vectors: transparency-dev/merkle, proof/verify_test.go (commit
02194e9afb6c1d95b5381350007963aa70fff472), the Go successor of google/certificate-transparency's
merkle_tree_test.cc; inclusion and consistency vectors there number leaves from 1, converted here to
0-based indices. The local TSA is real (openssl ts -reply behind HTTP) and its tokens are also checked with
`openssl ts -verify`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import rfc3161_client
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.custody import der, merkle, treehead, tsa
from pipeline.custody.events import canonical
from pipeline.custody.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from pipeline.custody.signing import Signer
from pipeline.custody.tsa_authority import ensure_authority
from pipeline.ops import tsa_server

h = bytes.fromhex
LEAVES = [h(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [h(x) for x in [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # empty tree: SHA-256("")
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]]
INCLUSION = [  # (index, size, proof)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (size1, size2, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME = h("abacaba000000000000000000000000000000000000000000060061e00123456")
REF_HASHES = [leaf_hash(x) for x in LEAVES]


# --- the RFC's recursive definitions, verbatim, as the oracle for the iterative code -------------------------

def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return merkle.node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = _k(len(d))
    return subproof(m, d[:k], b) + [mth(d[k:])] if m <= k else subproof(m - k, d[k:], False) + [mth(d[:k])]


def leaves(n: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


def flipped(proof: list[bytes], i: int, bit: int = 8) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


# --- Merkle tree ----------------------------------------------------------------------------------------------

def test_reference_roots_for_every_size():
    tree = MerkleTree(REF_HASHES)
    for n in range(9):
        assert tree.root(n) == ROOTS[n] == merkle.root(REF_HASHES[:n]), n
    assert merkle.EMPTY_ROOT == ROOTS[0]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_reference_inclusion_proofs(index, size, proof):
    proof = [h(p) for p in proof]
    assert merkle.inclusion_proof(index, REF_HASHES[:size]) == proof
    leaf, root = REF_HASHES[index], ROOTS[size]
    assert verify_inclusion(leaf, index, size, proof, root)
    # the reference implementation's corruptions (corruptInclusionProof), each must fail
    bad = [(index - 1, size, root, leaf, proof), (index + 1, size, root, leaf, proof),
           (index ^ 2, size, root, leaf, proof), (index, size * 2, root, leaf, proof),
           (index, size // 2, root, leaf, proof), (index, size, root, leaf_hash(b"WrongLeaf"), proof),
           (index, size, ROOTS[0], leaf, proof), (index, size, SOME, leaf, proof),
           (index, size, root, leaf, [*proof, b""]), (index, size, root, leaf, [*proof, root]),
           (index, size, root, leaf, [b"", *proof]), (index, size, root, leaf, [root, *proof]),
           (index, size, root, leaf, proof[:-1]), (index, size, root, leaf, [proof[0], SOME, *proof[1:]])]
    bad += [(index, size, root, leaf, flipped(proof, i)) for i in range(len(proof))]
    for i, (m, n, r, lf, p) in enumerate(bad):
        assert not verify_inclusion(lf, m, n, p, r), f"corruption {i} verified"


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_reference_consistency_proofs(size1, size2, proof):
    proof = [h(p) for p in proof]
    assert merkle.consistency_proof(size1, size2, REF_HASHES) == proof
    r1, r2 = ROOTS[size1], ROOTS[size2]
    assert verify_consistency(size1, size2, r1, r2, proof)
    bad = [(size1 - 1, size2, r1, r2, proof), (size1 + 1, size2, r1, r2, proof), (size1 ^ 2, size2, r1, r2, proof),
           (size1, size2 * 2, r1, r2, proof), (size1, size2 // 2, r1, r2, proof), (size1, size2, SOME, r2, proof),
           (size1, size2, r1, SOME, proof), (size1, size2, r2, r1, proof), (size1, size2, r1, r2, []),
           (size1, size2, r1, r2, [*proof, b""]), (size1, size2, r1, r2, [*proof, r1]),
           (size1, size2, r1, r2, [*proof, r2]), (size1, size2, r1, r2, [b"", *proof]),
           (size1, size2, r1, r2, [r1, *proof]), (size1, size2, r1, r2, [r2, *proof]),
           (size1, size2, r1, r2, [proof[0], *proof]), (size1, size2, r1, r2, proof[:-1])]
    bad += [(size1, size2, r1, r2, flipped(proof, i, 16)) for i in range(len(proof))]
    for i, (m, n, a, b, p) in enumerate(bad):
        assert not verify_consistency(m, n, a, b, p), f"corruption {i} verified"


def test_consistency_edge_cases_as_the_reference_implementation():
    e = ROOTS[0]
    assert verify_consistency(0, 0, SOME, SOME, [])
    assert verify_consistency(0, 1, SOME, e, [])
    assert verify_consistency(1, 1, e, e, [])
    assert not verify_consistency(1, 1, SOME, e, [])  # one size, two roots: a fork
    assert not verify_consistency(1, 0, e, e, [])  # the tree shrank
    assert not verify_consistency(2, 1, e, e, [])
    assert not verify_consistency(1, 2, SOME, e, [])  # empty proof for a real extension
    for m, n in [(0, 0), (0, 1), (1, 1)]:
        assert not verify_consistency(m, n, e, e, [e])  # roots match but the proof is not empty


def test_inclusion_edge_cases():
    one = leaf_hash(b"data")
    assert verify_inclusion(one, 0, 1, [], one)
    assert not verify_inclusion(one, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], one)
    for index, size in [(0, 0), (1, 0), (2, 1), (-1, 1)]:
        assert not verify_inclusion(SOME, index, size, [], ROOTS[0])
    with pytest.raises(ValueError):
        MerkleTree(REF_HASHES).inclusion_proof(8)
    with pytest.raises(ValueError):
        MerkleTree(REF_HASHES).root(9)
    with pytest.raises(ValueError):
        MerkleTree([b"short"])


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(size, data):
    hs = leaves(size, salt=size)
    tree = MerkleTree(hs)
    root = tree.root()
    assert root == mth(hs)
    for i in range(size):
        p = tree.inclusion_proof(i)
        assert verify_inclusion(hs[i], i, size, p, root), i
    i = data.draw(st.integers(0, size - 1))
    p = tree.inclusion_proof(i)
    assert p == path(i, hs)
    assert not verify_inclusion(hs[i], i, size, p, SOME)
    assert not verify_inclusion(leaf_hash(b"other"), i, size, p, root)
    if size > 1:
        assert not verify_inclusion(hs[i], (i + 1) % size, size, p, root)
        j = data.draw(st.integers(0, len(p) - 1))
        assert not verify_inclusion(hs[i], i, size, flipped(p, j, 1 << data.draw(st.integers(0, 7))), root)


def test_consistency_between_all_pairs_of_small_sizes():
    hs = leaves(40)
    tree = MerkleTree(hs)
    for n in range(41):
        for m in range(n + 1):
            p = tree.consistency_proof(m, n)
            assert p == ([] if m in (0, n) else subproof(m, hs[:n], True)), (m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), p), (m, n)
            if 0 < m < n:
                assert not verify_consistency(m, n, tree.root(m), tree.root(n), flipped(p, len(p) - 1))
                assert not verify_consistency(m, n, tree.root(m), SOME, p)
                assert not verify_consistency(m, n, SOME, tree.root(n), p)


def test_a_rewritten_leaf_breaks_consistency():
    hs = leaves(20)
    forged = list(hs)
    forged[3] = leaf_hash(b"rewritten")
    honest, other = MerkleTree(hs), MerkleTree(forged)
    assert not verify_consistency(10, 20, honest.root(10), other.root(20), other.consistency_proof(10, 20))


def test_compact_range_gives_every_root_and_resumes():
    hs = leaves(70)
    tree, cr = MerkleTree(), merkle.CompactRange()
    for i, x in enumerate(hs):
        tree.append(x)
        cr.append(x)
        assert cr.root() == tree.root() == tree.root(i + 1)
        if i == 40:
            cr = merkle.CompactRange(cr.size, cr.hashes)  # as if reloaded from storage
    assert len(cr.hashes) == (70).bit_count()
    with pytest.raises(ValueError):
        merkle.CompactRange(3, [SOME])


def test_ten_thousand_inclusion_checks_take_well_under_a_second():
    n = 10_000
    hs = leaves(n)
    t0 = time.perf_counter()
    tree = MerkleTree(hs)
    root = tree.root()
    proofs = [tree.inclusion_proof(i) for i in range(n)]
    t1 = time.perf_counter()
    assert all(verify_inclusion(hs[i], i, n, proofs[i], root) for i in range(n))
    t2 = time.perf_counter()
    print(f"\n10,000 leaves: build + all proofs {t1 - t0:.3f} s, verify all {t2 - t1:.3f} s")
    assert t2 - t1 < 1.0


def test_the_by_hand_recipe_in_format_md_agrees():
    """The examiner's stand-alone checker printed in FORMAT.md must accept what we prove and reject tampering."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "transparency-format.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    ns: dict = {}
    exec(compile(code, "FORMAT.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert [ns["leaf_hash"](x) for x in LEAVES] == REF_HASHES
    for index, size, proof in INCLUSION:
        assert ns["check_inclusion"](REF_HASHES[index], index, size, [h(p) for p in proof], ROOTS[size])
    for m, n, proof in CONSISTENCY:
        assert ns["check_consistency"](m, n, ROOTS[m], ROOTS[n], [h(p) for p in proof])
    hs = leaves(37)
    tree = MerkleTree(hs)
    for n in range(1, 38):
        for m in range(n + 1):
            p = tree.consistency_proof(m, n)
            assert ns["check_consistency"](m, n, tree.root(m), tree.root(n), p)
            if p:
                assert not ns["check_consistency"](m, n, tree.root(m), tree.root(n), flipped(p, 0))
        for i in range(n):
            p = tree.inclusion_proof(i, n)
            assert ns["check_inclusion"](hs[i], i, n, p, tree.root(n))
            assert not ns["check_inclusion"](hs[i], i, n, p, SOME)


# --- signed tree heads ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def trusted(s: Signer) -> dict:
    return {s.key_id: s.public}


def heads(hs: list[bytes], sizes: list[int], start: datetime | None = None) -> list[treehead.TreeHead]:
    tree, out = MerkleTree(hs), []
    t = start or datetime(2026, 12, 1, tzinfo=UTC)
    for i, n in enumerate(sizes):
        out.append(treehead.build("store-1", n, tree.root(n), time=t + timedelta(minutes=i),
                                  prev=out[-1] if out else None))
    return out


def test_tree_head_signs_and_verifies(signer):
    head = heads(leaves(5), [5])[0]
    env = treehead.sign(head, signer)
    doc = env["treehead"]
    assert doc == {"schema": "custody.treehead/1", "log_id": "store-1", "size": 5, "root": mth(leaves(5)).hex(),
                   "time": "2026-12-01T00:00:00.000000Z", "prev": None}
    assert env["treehead_sha256"] == hashlib.sha256(canonical(doc)).hexdigest() == head.sha256.hex()
    assert env["signature"]["key_id"] == signer.key_id
    assert treehead.verify(env, trusted(signer)) == head


def test_tree_head_tampering_and_untrusted_keys_fail(signer):
    env = treehead.sign(heads(leaves(5), [5])[0], signer)
    altered = {**env, "treehead": {**env["treehead"], "size": 4}}
    with pytest.raises(treehead.TreeHeadError, match="does not match"):
        treehead.verify(altered, trusted(signer))
    altered["treehead_sha256"] = hashlib.sha256(canonical(altered["treehead"])).hexdigest()
    with pytest.raises(treehead.TreeHeadError, match="bad signature"):
        treehead.verify(altered, trusted(signer))
    other = Signer(Ed25519PrivateKey.generate())
    with pytest.raises(treehead.TreeHeadError, match="not trusted"):
        treehead.verify(treehead.sign(heads(leaves(5), [5])[0], other), trusted(signer))
    for field, value in [("size", True), ("size", -1), ("root", "AB" * 32), ("time", "2026-12-01T00:00:00Z"),
                         ("time", "2026-13-01T00:00:00.000000Z"), ("schema", "custody.treehead/2"),
                         ("prev", {"size": 9, "root": "0" * 64}), ("extra", 1)]:
        with pytest.raises(treehead.TreeHeadError):
            treehead.TreeHead.from_document({**env["treehead"], field: value})


def test_a_newer_head_must_extend_the_older(signer):
    hs = leaves(30)
    tree = MerkleTree(hs)
    old, new = heads(hs, [12, 30])
    treehead.check_consistent(old, new, tree.consistency_proof(12, 30))
    treehead.check_consistent(old, old, [])
    with pytest.raises(treehead.InconsistentTreeHeads, match="shrank"):
        treehead.check_consistent(new, old, [])
    backdated = treehead.build("store-1", 30, tree.root(30), time=old.when - timedelta(seconds=1))
    with pytest.raises(treehead.InconsistentTreeHeads, match="backwards"):
        treehead.check_consistent(old, backdated, tree.consistency_proof(12, 30))
    forged = list(hs)
    forged[2] = leaf_hash(b"rewritten")
    ftree = MerkleTree(forged)
    fork = treehead.build("store-1", 12, ftree.root(12), time=new.when)
    with pytest.raises(treehead.InconsistentTreeHeads, match="forked"):
        treehead.check_consistent(old, fork, [])
    rewritten = treehead.build("store-1", 30, ftree.root(30), time=new.when)
    with pytest.raises(treehead.InconsistentTreeHeads, match="not a prefix"):
        treehead.check_consistent(old, rewritten, ftree.consistency_proof(12, 30))
    elsewhere = treehead.build("store-2", 30, tree.root(30), time=new.when)
    with pytest.raises(treehead.InconsistentTreeHeads, match="different logs"):
        treehead.check_consistent(old, elsewhere, tree.consistency_proof(12, 30))
    lying_prev = treehead.TreeHead("store-1", 30, new.root, new.time, (12, "0" * 64))
    with pytest.raises(treehead.InconsistentTreeHeads, match="different root"):
        treehead.check_consistent(old, lying_prev, tree.consistency_proof(12, 30))


# --- RFC 3161 time-stamps -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_tsa(tmp_path_factory):
    d = tmp_path_factory.mktemp("tsa")
    t0 = time.perf_counter()
    server = tsa_server.start(d)
    print(f"\nlocal TSA answering after {time.perf_counter() - t0:.3f} s (keys created on first start)")
    yield server
    assert tsa_server.stop(d)
    assert not (d / tsa_server.STATE_FILE).exists()


def roots_of(server: tsa_server.LocalTsa) -> list[x509.Certificate]:
    return tsa.load_certificates(server.ca_cert)


def openssl_verify(digest: bytes, token: Path, ca: Path, untrusted: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ts", "-verify", "-digest", digest.hex(), "-in", str(token), "-token_in",
                           "-CAfile", str(ca), "-untrusted", str(untrusted)], capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_token_verifies_with_our_client_and_with_openssl(local_tsa, tmp_path):
    digest = hashlib.sha256(b"a tree head").digest()
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = tsa.request_timestamp(digest, [local_tsa.url], roots_of(local_tsa))
    assert before <= stamp.gen_time <= datetime.now(UTC) and stamp.tsa_url == local_tsa.url
    assert tsa.verify_token(stamp.token, digest, roots_of(local_tsa)) == stamp.gen_time
    token = tmp_path / "token.tsr"
    token.write_bytes(stamp.token)
    r = openssl_verify(digest, token, local_tsa.ca_cert, local_tsa.tsa_cert)
    assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr


def test_token_for_another_digest_or_another_ca_fails(local_tsa, tmp_path):
    digest, other = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()
    stamp = tsa.request_timestamp(digest, [local_tsa.url], roots_of(local_tsa))
    token = tmp_path / "token.tsr"
    token.write_bytes(stamp.token)
    with pytest.raises(tsa.TimestampInvalid, match="not " + other.hex()):
        tsa.verify_token(stamp.token, other, roots_of(local_tsa))
    assert openssl_verify(other, token, local_tsa.ca_cert, local_tsa.tsa_cert).returncode != 0
    stranger = ensure_authority(tmp_path / "other-ca")
    with pytest.raises(tsa.TimestampInvalid, match="trusted TSA roots"):
        tsa.verify_token(stamp.token, digest, tsa.load_certificates(stranger.ca_cert))
    assert openssl_verify(digest, token, stranger.ca_cert, local_tsa.tsa_cert).returncode != 0
    with pytest.raises(tsa.TimestampInvalid, match="nonce"):
        tsa.verify_token(stamp.token, digest, roots_of(local_tsa), nonce=1)
    broken = bytearray(stamp.token)
    broken[-5] ^= 1  # inside the signature
    with pytest.raises(tsa.TimestampInvalid):
        tsa.verify_token(bytes(broken), digest, roots_of(local_tsa))
    with pytest.raises(tsa.TimestampInvalid, match="not an RFC 3161"):
        tsa.verify_token(b"\x30\x03junk", digest, roots_of(local_tsa))


def test_token_with_a_certificate_chain_in_chain_order_verifies(tmp_path):
    """OpenSSL-based TSAs write SignedData.certificates in chain order, not DER SET OF order; still accepted."""
    files = ensure_authority(tmp_path / "chain-tsa")
    files.config.write_text(files.config.read_text().replace("signer_key =", "certs = ./ca.pem\nsigner_key ="))
    server = tsa_server.start(files.directory)
    try:
        digest = hashlib.sha256(b"chain").digest()
        stamp = tsa.request_timestamp(digest, [server.url], roots_of(server))
    finally:
        assert tsa_server.stop(files.directory)
    assert der.sort_token_certificates(stamp.token) != stamp.token  # the TSA's order is not DER's
    assert tsa.verify_token(stamp.token, digest, roots_of(server)) == stamp.gen_time
    token = tmp_path / "token.tsr"
    token.write_bytes(stamp.token)  # stored as the TSA sent it
    assert openssl_verify(digest, token, server.ca_cert, server.tsa_cert).returncode == 0


def test_tsa_certificate_and_keys(local_tsa):
    cert = x509.load_pem_x509_certificate(local_tsa.tsa_cert.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca = x509.load_pem_x509_certificate(local_tsa.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    for key in ("tsa.key", "ca.key"):
        assert stat.S_IMODE(os.stat(local_tsa.directory / key).st_mode) == 0o600


def test_request_is_what_openssl_reads(tmp_path):
    digest = hashlib.sha256(b"x").digest()
    q = tmp_path / "q.tsq"
    q.write_bytes(tsa.build_request(digest, 0xFEDCBA9876543210))
    out = subprocess.run(["openssl", "ts", "-query", "-in", str(q), "-text"], capture_output=True, text=True,
                         check=True).stdout
    assert "Hash Algorithm: sha256" in out and "Nonce: 0xFEDCBA9876543210" in out
    assert "Certificate required: yes" in out and " ".join(f"{b:02x}" for b in digest[:8]) in out


def test_tsa_failover_and_all_down(local_tsa):
    digest = hashlib.sha256(b"x").digest()
    dead = f"http://127.0.0.1:{free_port()}/"
    stamp = tsa.request_timestamp(digest, [dead, local_tsa.url], roots_of(local_tsa), timeout=5)
    assert stamp.tsa_url == local_tsa.url
    dead2 = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(tsa.TsaUnavailable) as exc:
        tsa.request_timestamp(digest, [dead, dead2], roots_of(local_tsa), timeout=5)
    assert dead in str(exc.value) and dead2 in str(exc.value) and exc.value.exit_code == 3
    with pytest.raises(tsa.TsaUnavailable, match="trusted TSA roots"):  # a TSA we do not trust is no TSA
        tsa.request_timestamp(digest, [local_tsa.url], [x509.load_pem_x509_certificate(
            ensure_authority(local_tsa.directory / "stranger").ca_cert.read_bytes())])


def test_server_refuses_what_is_not_a_time_stamp_query(local_tsa):
    with httpx.Client(base_url=local_tsa.url) as c:
        assert c.get("/health").text == "ok\n"
        assert c.post("/", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
        big = b"\x30" * (tsa_server.MAX_QUERY + 1)
        assert c.post("/", content=big, headers={"Content-Type": tsa.QUERY_TYPE}).status_code == 413
        r = c.post("/", content=b"\x30\x03junk", headers={"Content-Type": tsa.QUERY_TYPE})
    # as RFC 3161 §2.4.2 asks: a reply whose status says why, not a token
    assert r.status_code == 200 and r.headers["content-type"] == tsa.REPLY_TYPE
    reply = rfc3161_client.decode_timestamp_response(r.content)
    assert reply.status == rfc3161_client.PKIStatus.REJECTION and "Bad request format" in reply.status_string[0]


def test_start_reuses_a_running_tsa_and_stop_ends_it(local_tsa, tmp_path):
    assert tsa_server.start(local_tsa.directory) == local_tsa
    own = tsa_server.start(tmp_path / "second")
    assert own.port != local_tsa.port
    assert tsa_server.stop(tmp_path / "second")
    assert not Path(f"/proc/{own.pid}").exists()  # our child, so stop() reaped it
    assert not tsa_server.stop(tmp_path / "second")


def test_time_stamp_round_trip_time(local_tsa):
    digest = hashlib.sha256(b"x").digest()
    roots = roots_of(local_tsa)
    with urllib3.PoolManager() as c:
        tsa.request_timestamp(digest, [local_tsa.url], roots, client=c)
        t0 = time.perf_counter()
        for _ in range(20):
            tsa.request_timestamp(digest, [local_tsa.url], roots, client=c)
        per = (time.perf_counter() - t0) / 20
    print(f"\nlocal TSA round trip (request, openssl ts -reply, verify): {per * 1000:.1f} ms")
    assert per < 1.0

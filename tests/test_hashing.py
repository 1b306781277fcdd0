import hashlib
import io
import os

import pytest

from hashing.stream import Digests, HashingReader, HashingWriter, UnsupportedAlgorithm, copy_hashed, hash_file


def test_one_pass_digests_match_hashlib(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = io.BytesIO(data)
    dst = io.BytesIO()
    d = copy_hashed(src, dst, ("sha256", "md5", "sha1"), chunk=65536)
    assert dst.getvalue() == data
    assert d.size == len(data)
    assert d.hexdigests() == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
    }
    p = tmp_path / "f"
    p.write_bytes(data)
    assert hash_file(p).sha256 == hashlib.sha256(data).hexdigest()


def test_reader_and_writer_hash_what_passes():
    r = HashingReader(io.BytesIO(b"abcdef"))
    assert r.read(2) + r.read() == b"abcdef"
    assert r.digests.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    out = io.BytesIO()
    w = HashingWriter(out, ("md5",))
    w.write(b"xyz")
    assert w.digests.hexdigests()["md5"] == hashlib.md5(b"xyz").hexdigest()
    assert "sha256" in w.digests.hexdigests()  # always present


def test_unknown_algorithm_is_refused():
    with pytest.raises(UnsupportedAlgorithm):
        Digests(("crc32",))

"""Content credentials (C2PA) on stills, contact sheets and clips, checked with the c2pa library itself.

Real stills and contact sheets come from the frame extractor on an ffmpeg clip; tampering is done the way
a forger would (a valid PNG with one pixel changed, a manifest byte changed with its CRC fixed, a manifest
re-signed by someone else), and each must fail validation while the untouched file passes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from pipeline.frames.png import pixel_sha256
from pipeline.provenance import (
    ACTIONS,
    CredentialsError,
    Embedder,
    ProvenanceError,
    SourceRef,
    ensure_local_ca,
    load_credentials,
    read,
    validate,
)
from pipeline.provenance.c2pa_manifest import unsigned_png_sha256
from pipeline.provenance.credentials import issue_signer, make_ca
from pipeline.settings import load_settings
from tests import recovery_footage as rf

SOURCE = SourceRef(case_id="case-" + "1" * 32, case="OP-LANTERN/26", exhibit_id="exh-" + "2" * 32, exhibit="JB/1",
                   bucket="custody-originals", key=f"case-{'1' * 32}/exh-{'2' * 32}/{'3' * 32}",
                   version_id="3f1c2e9a-0000-4000-8000-000000000001", sha256=hashlib.sha256(b"original").hexdigest(),
                   size=123456789, event_seq=7, original_name="JB-1.mp4", content_type="video/mp4")


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return ensure_local_ca(tmp_path_factory.mktemp("home") / "keys" / "c2pa")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A real extraction: stills (PNG level 0, as stored) and a contact sheet from a 2 s ffmpeg clip."""
    from pipeline.frames import ExtractParams, extract_frames

    d = tmp_path_factory.mktemp("frames")
    clip = rf.record(d / "clip.mp4", seconds=2, audio=False, size="1280x720")
    params = ExtractParams(every_seconds=0.5, name_prefix="JB_1", png_compression=0)  # stored blocks: patchable
    res = extract_frames(clip, d / "out", params, workers=1)
    return clip, res


def _pixels(path_or_bytes: Path | bytes) -> np.ndarray:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


# ---- PNG surgery, as a forger would do it: valid files, CRCs and checksums fixed --------------------------
def _chunks(png: bytes) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of every chunk."""
    out, pos = [], 8
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        out.append((kind, pos + 8, pos + 8 + n))
        pos += 12 + n
    return out


def _fix_crc(buf: bytearray, kind: bytes, start: int, end: int) -> None:
    buf[end:end + 4] = struct.pack(">I", zlib.crc32(kind + bytes(buf[start:end])))


def _change_one_pixel(png: bytes, row: int, col: int) -> bytes:
    """Change one colour byte of one pixel of a level-0 PNG in place (stored deflate blocks): same length and
    structure, chunk CRCs and the zlib Adler-32 recomputed, so it is a valid PNG. Rows filtered UP carry the
    change down the column, so the row below gets the opposite change and only the one pixel differs."""
    buf = bytearray(png)
    chunks = _chunks(png)
    width = struct.unpack(">I", png[16:20])[0]
    idat = [(s, e) for k, s, e in chunks if k == b"IDAT"]
    where = [p for s, e in idat for p in range(s, e)]  # file offset of each zlib stream byte
    stream = bytes(buf[p] for p in where)
    raw_at, pos, raw_len = [], 2, 0  # map raw (inflated) offsets to stream offsets through the stored blocks
    while True:
        head = stream[pos]
        assert (head >> 1) & 3 == 0, "only stored (level 0) deflate blocks can be patched in place"
        n = int.from_bytes(stream[pos + 1:pos + 3], "little")
        raw_at.append((raw_len, pos + 5, n))
        raw_len, pos = raw_len + n, pos + 5 + n
        if head & 1:
            break
    stride = 1 + 3 * width
    height = struct.unpack(">I", png[20:24])[0]

    def at(raw_offset: int) -> int:  # file offset of one raw (inflated) byte
        r0, s0, _n = next(x for x in raw_at if x[0] <= raw_offset < x[0] + x[2])
        return where[s0 + raw_offset - r0]

    target = row * stride + 1 + 3 * col
    buf[at(target)] = (buf[at(target)] + 0x40) % 256
    if row + 1 < height and buf[at((row + 1) * stride)] == 2:  # the next row is filtered UP: compensate
        below = at(target + stride)
        buf[below] = (buf[below] - 0x40) % 256
    patched = bytes(buf[p] for p in where)
    raw = b"".join(patched[s:s + n] for _r, s, n in raw_at)
    for i, b in enumerate(struct.pack(">I", zlib.adler32(raw))):
        buf[where[len(stream) - 4 + i]] = b
    for s, e in idat:
        _fix_crc(buf, b"IDAT", s, e)
    return bytes(buf)


def test_still_manifest_validates_and_keeps_the_pixel_hash(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clip, res = extracted
    still = res.stills[1]
    src = Path(res.out_dir) / still.png
    out = tmp_path / "still.png"
    info = Embedder(creds).embed(src, out, SOURCE, ACTIONS["still"], {"every_seconds": 0.5, "index": still.index},
                                 pixel_sha256=still.pixel_sha256, procedure="frames_extracted", run_id="run-1",
                                 tools={"ffmpeg": "test"})
    v = validate(out, creds.trust_anchors_pem)
    assert v.ok and v.state == "Trusted" and v.failures == [], v
    assert info.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() != still.png_sha256
    assert unsigned_png_sha256(out.read_bytes()) == still.png_sha256  # the manifest is one chunk, nothing else
    # The pixels are untouched: the pixel hash reproduces; the file hash does not (fresh signature each time).
    assert pixel_sha256(_pixels(out)) == pixel_sha256(_pixels(src)) == still.pixel_sha256
    again = Embedder(creds).embed(src, tmp_path / "again.png", SOURCE, ACTIONS["still"], {})
    assert again.sha256 != info.sha256 and pixel_sha256(_pixels(tmp_path / "again.png")) == still.pixel_sha256
    assert 0 < info.added_bytes < 16 << 10 and info.label.startswith("urn:c2pa:")
    assert info.actions == ["c2pa.opened", "c2pa.transcoded"]


def test_a_still_out_of_a_bundle_traces_back_by_its_manifest_alone(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clip, res = extracted
    out = tmp_path / "renamed-by-a-press-office.png"
    Embedder(creds).embed(Path(res.out_dir) / res.stills[0].png, out, SOURCE, ACTIONS["still"], {},
                          pixel_sha256=res.stills[0].pixel_sha256, run_id="run-7")
    data = out.read_bytes()  # only the bytes: no name, no store, no bundle
    m = read(data)
    assert (m["source"]["exhibit_id"], m["source"]["event_seq"], m["source"]["sha256"]) == \
        (SOURCE.exhibit_id, SOURCE.event_seq, SOURCE.sha256)
    assert m["source"]["case_id"] == SOURCE.case_id and m["source"]["key"] == SOURCE.key
    assert m["source"]["version_id"] == SOURCE.version_id and m["source"]["bucket"] == SOURCE.bucket
    (ingredient,) = m["ingredients"]
    assert ingredient["relationship"] == "parentOf" and ingredient["instance_id"] == f"urn:sha256:{SOURCE.sha256}"
    assert SOURCE.exhibit_id in ingredient["description"] and "event #7" in ingredient["description"]
    assert m["process"]["run_id"] == "run-7" and m["process"]["pixel_sha256"] == res.stills[0].pixel_sha256
    assert m["actions"] == ["c2pa.opened", "c2pa.transcoded"]
    assert validate(data, creds.trust_anchors_pem).source == SOURCE


def test_one_changed_pixel_fails_validation(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clip, res = extracted
    out = tmp_path / "still.png"
    Embedder(creds).embed(Path(res.out_dir) / res.stills[2].png, out, SOURCE, ACTIONS["still"], {})
    signed = out.read_bytes()
    forged = _change_one_pixel(signed, row=100, col=200)
    a, b = _pixels(signed), _pixels(forged)
    assert len(forged) == len(signed) and b is not None
    assert int((a != b).any(axis=2).sum()) == 1, "precondition: exactly one pixel differs, the PNG stays valid"
    v = validate(forged, creds.trust_anchors_pem)
    assert not v.ok and "assertion.dataHash.mismatch" in v.failures, v


def test_a_changed_manifest_or_a_foreign_signer_fails_validation(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clip, res = extracted
    out = tmp_path / "still.png"
    Embedder(creds).embed(Path(res.out_dir) / res.stills[0].png, out, SOURCE, ACTIONS["still"], {})
    buf = bytearray(out.read_bytes())
    (kind, s, e), = [c for c in _chunks(bytes(buf)) if c[0] == b"caBX"]
    cbor = b"\x67exhibit\x64" + SOURCE.exhibit.encode()  # custody.source's "exhibit": "JB/1" in CBOR
    at = bytes(buf[s:e]).index(cbor) + len(cbor) - 4
    buf[s + at:s + at + 4] = b"JB/9"  # claim the still came from another exhibit
    _fix_crc(buf, kind, s, e)
    assert read(bytes(buf))["source"]["exhibit"] == "JB/9"  # reading alone would believe it...
    v = validate(bytes(buf), creds.trust_anchors_pem)
    assert not v.ok and any("mismatch" in f for f in v.failures), v  # ...validation does not
    # Someone else's CA signing a manifest that says the same things: intact, but not trusted.
    other = ensure_local_ca(tmp_path / "other-ca")
    Embedder(other).embed(Path(res.out_dir) / res.stills[0].png, tmp_path / "foreign.png", SOURCE,
                          ACTIONS["still"], {})
    v = validate(tmp_path / "foreign.png", creds.trust_anchors_pem)
    assert not v.ok and v.state == "Valid" and "signingCredential.untrusted" in v.failures
    assert validate(tmp_path / "foreign.png", other.trust_anchors_pem).ok
    # No manifest at all (stripped) is reported as absent, not as valid.
    plain = validate(Path(res.out_dir) / res.stills[0].png, creds.trust_anchors_pem)
    assert not plain.ok and plain.state == "absent"


def test_a_run_checks_its_signer_on_the_first_file_and_every_file_validates(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """c2pa checks what it signed on a run's first file only (the signer is the run's): a key that does not
    match its certificate is refused there, and stays refused; a good run's later files validate too."""
    _clip, res = extracted
    src = Path(res.out_dir) / res.stills[0].png
    mismatched = dataclasses.replace(creds, key_pem=ensure_local_ca(tmp_path / "other-ca").key_pem)
    e = Embedder(mismatched)
    for name in ("first.png", "second.png"):
        with pytest.raises(ProvenanceError, match="signature does not match"):
            e.embed(src, tmp_path / name, SOURCE, ACTIONS["still"], {})
        assert not (tmp_path / name).exists()
    e = Embedder(creds)
    assert e.describe()["verify_after_sign"] == "first file of each run"
    for i, still in enumerate(res.stills[:3]):
        e.embed(Path(res.out_dir) / still.png, tmp_path / f"s{i}.png", SOURCE, ACTIONS["still"], {})
        v = validate(tmp_path / f"s{i}.png", creds.trust_anchors_pem)
        assert v.ok and v.state == "Trusted", (i, v)


def _hash_assertion(signed: bytes) -> dict:
    """The active manifest's `c2pa.hash.data` as c2pa itself reports it."""
    import io
    import json

    import c2pa

    with c2pa.Reader("image/png", io.BytesIO(signed)) as r:
        store = json.loads(r.detailed_json())
    return store["manifests"][store["active_manifest"]]["assertion_store"]["c2pa.hash.data"]


def test_pngs_signed_from_their_encoders_hash_are_what_c2pa_signs_and_still_catch_a_changed_pixel(  # type: ignore[no-untyped-def]
        creds, extracted, tmp_path: Path) -> None:
    """After a run's first file (signed and checked by c2pa the ordinary way), a PNG whose SHA-256 is known is
    signed from that hash without c2pa reading it: the same chunk after IHDR, the same data-hash binding
    over the unchanged PNG, validated by c2pa; one changed pixel still fails, and the event says how."""
    _clip, res = extracted
    e = Embedder(creds)
    pngs = [(Path(res.out_dir) / s.png).read_bytes() for s in res.stills[:3]]
    signed = [e.embed_bytes(d, SOURCE, ACTIONS["still"], {}, data_sha256=hashlib.sha256(d).hexdigest())[0]
              for d in pngs]
    assert e.describe()["png_binding"].startswith("2 PNG(s) signed from")  # the first: the ordinary way
    ordinary, fast = _hash_assertion(signed[0]), _hash_assertion(signed[1])
    for d, out in zip(pngs, signed, strict=True):
        v = validate(out, creds.trust_anchors_pem)
        assert v.ok and v.state == "Trusted", v
        assert unsigned_png_sha256(out) == hashlib.sha256(d).hexdigest()
        (kind, start, end), = [c for c in _chunks(out) if c[0] == b"caBX"]
        assert start - 8 == 33 and out[:33] == d[:33] and out[end + 4:] == d[33:]  # spliced in after IHDR
    assert [x["start"] for x in ordinary["exclusions"]] == [x["start"] for x in fast["exclusions"]] == [33]
    assert fast["alg"] == ordinary["alg"] == "sha256"
    for assertion, d in ((ordinary, pngs[0]), (fast, pngs[1])):  # both bind the PNG as the encoder wrote it
        assert base64.b64decode(assertion["hash"]) == hashlib.sha256(d).digest()
    assert fast["exclusions"][0]["length"] == len(signed[1]) - len(pngs[1])  # exactly the manifest chunk
    forged = _change_one_pixel(signed[1], row=100, col=200)
    v = validate(forged, creds.trust_anchors_pem)
    assert not v.ok and "assertion.dataHash.mismatch" in v.failures, v


def test_a_wrong_hash_or_an_unchecked_c2pa_falls_back_to_ordinary_signing(  # type: ignore[no-untyped-def]
        creds, extracted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data-hashed path is trusted only once a run's first file signed that way validates in full: a hash
    that is not the file's makes that check fail, and the run signs every file the ordinary way (valid); a
    PNG that carries a manifest already, or a c2pa library the path was not checked with, is never signed
    that way."""
    from pipeline.provenance import c2pa_prehashed

    _clip, res = extracted
    pngs = [(Path(res.out_dir) / s.png).read_bytes() for s in res.stills[:3]]
    e = Embedder(creds)
    wrong = hashlib.sha256(b"not this file").hexdigest()
    for d in pngs:
        out, _info = e.embed_bytes(d, SOURCE, ACTIONS["still"], {}, data_sha256=wrong)
        assert validate(out, creds.trust_anchors_pem).ok
    assert "png_binding" not in e.describe()
    e = Embedder(creds)  # a PNG that carries a manifest already is signed the ordinary way
    first = e.embed_bytes(pngs[0], SOURCE, ACTIONS["still"], {}, data_sha256=hashlib.sha256(pngs[0]).hexdigest())[0]
    again = e.embed_bytes(first, SOURCE, ACTIONS["still"], {}, data_sha256=hashlib.sha256(first).hexdigest())[0]
    assert validate(again, creds.trust_anchors_pem).ok and "png_binding" not in e.describe()
    assert len([c for c in _chunks(again) if c[0] == b"caBX"]) == 1
    c2pa_prehashed._lib.cache_clear()
    monkeypatch.setattr(c2pa_prehashed, "SDK_VERSIONS", frozenset({"0.0.0"}))
    try:
        assert not c2pa_prehashed.available()
        e = Embedder(creds)
        for d in pngs:
            out, _info = e.embed_bytes(d, SOURCE, ACTIONS["still"], {}, data_sha256=hashlib.sha256(d).hexdigest())
            assert validate(out, creds.trust_anchors_pem).ok
        assert "png_binding" not in e.describe()
    finally:
        c2pa_prehashed._lib.cache_clear()


def test_contact_sheet_and_clip_carry_credentials_too(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip, res = extracted
    (sheet,) = res.contact_sheets
    e = Embedder(creds)
    info = e.embed(Path(res.out_dir) / sheet, tmp_path / "sheet.png", SOURCE, ACTIONS["contact_sheet"],
                   {"columns": 8}, procedure="frames_extracted")
    assert validate(tmp_path / "sheet.png", creds.trust_anchors_pem).ok
    assert info.actions == ["c2pa.opened", "c2pa.transcoded", "c2pa.resized"]
    cut = [{"action": "c2pa.trimmed", "parameters": {"start_s": 0.0, "end_s": 2.0}}, "c2pa.repackaged"]
    info = e.embed(clip, tmp_path / "clip.mp4", SOURCE, cut, {"stream_copy": True}, procedure="clip_exported")
    assert info.format == "video/mp4" and validate(tmp_path / "clip.mp4", creds.trust_anchors_pem).ok
    assert read(tmp_path / "clip.mp4")["source"]["sha256"] == SOURCE.sha256
    assert rf.frame_hashes(tmp_path / "clip.mp4") == rf.frame_hashes(clip)  # the video itself is unchanged
    data = bytearray((tmp_path / "clip.mp4").read_bytes())
    data[data.index(b"mdat") + 4000] ^= 0x01
    v = validate(bytes(data), creds.trust_anchors_pem)
    assert not v.ok and "assertion.bmffHash.mismatch" in v.failures, v


def test_bad_requests_write_nothing(creds, extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clip, res = extracted
    src = Path(res.out_dir) / res.stills[0].png
    with pytest.raises(ProvenanceError, match="PNG, JPEG and MP4"):
        (tmp_path / "notes.txt").write_text("not media")
        Embedder(creds).embed(tmp_path / "notes.txt", tmp_path / "x.txt", SOURCE, ACTIONS["still"], {})
    with pytest.raises(Exception, match="neither a standard C2PA action"):
        Embedder(creds).embed(src, tmp_path / "x.png", SOURCE, ["made.up"], {})
    with pytest.raises(Exception, match="never over the input"):
        Embedder(creds).embed(src, src, SOURCE, ACTIONS["still"], {})
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.txt").exists()


# ---- certificates ------------------------------------------------------------------------------------------
def test_local_ca_is_made_once_with_private_keys_and_c2pa_extensions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=home)
    a = load_credentials(settings)
    b = load_credentials(load_settings(home=home))
    d = home / "keys" / "c2pa"
    assert a.origin == "local-ca" and a.fingerprint == b.fingerprint
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for key in ("ca.key", "signer.key"):
        assert stat.S_IMODE(os.stat(d / key).st_mode) == 0o600
    assert "PRIVATE KEY" not in repr(a)
    ee, ca = x509.load_pem_x509_certificates(a.chain_pem)
    assert ee.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ee.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ku = ee.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    ca.public_key().verify(ee.signature, ee.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    assert ca.public_bytes(serialization.Encoding.PEM) == a.trust_anchors_pem


def _force_pki(d: Path) -> tuple[Path, Path, Path]:
    """A stand-in for a force's PKI: its own root and a claim-signing certificate, in files."""
    d.mkdir()
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = make_ca(ca_key, label="Example Constabulary root")
    ee = issue_signer(ca_key, ca, key, label="Example Constabulary digital forensics unit")
    pem = serialization.Encoding.PEM
    (d / "chain.pem").write_bytes(ee.public_bytes(pem) + ca.public_bytes(pem))
    (d / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    (d / "roots.pem").write_bytes(ca.public_bytes(pem))
    return d / "chain.pem", d / "key.pem", d / "roots.pem"


def test_production_signs_with_the_forces_certificate_from_settings(extracted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clip, res = extracted
    chain, key, roots = _force_pki(tmp_path / "force")
    settings = load_settings(home=tmp_path / "home", c2pa_cert=chain, c2pa_key=key, c2pa_trust_anchors=roots)
    force = load_credentials(settings)
    assert force.origin == "settings" and force.alg == "es256"
    assert not (tmp_path / "home" / "keys" / "c2pa").exists(), "no local CA when the force's PKI is configured"
    out = tmp_path / "still.png"
    info = Embedder(force).embed(Path(res.out_dir) / res.stills[0].png, out, SOURCE, ACTIONS["still"], {})
    assert "Example Constabulary" in info.signer["subject"]
    assert validate(out, roots).ok
    local = ensure_local_ca(tmp_path / "local")
    assert not validate(out, local.trust_anchors_pem).ok
    with pytest.raises(CredentialsError, match="all of c2pa_cert"):
        load_credentials(load_settings(home=tmp_path / "home", c2pa_cert=chain))
    other_key = tmp_path / "other.pem"
    other_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(CredentialsError, match="does not belong"):
        load_credentials(load_settings(home=tmp_path / "home", c2pa_cert=chain, c2pa_key=other_key,
                                       c2pa_trust_anchors=roots))


def test_manifest_cost_measurement_reports_bytes_and_time(tmp_path: Path) -> None:
    from pipeline.provenance.measure import manifest_cost

    m = manifest_cost(tmp_path, width=320, height=240, repeats=2)
    assert m["png_bytes"] > 320 * 240 * 3 and 0 < m["manifest_added_bytes"] < 16 << 10
    assert all(m[k] > 0 for k in ("png_encode_ms", "manifest_embed_ms", "manifest_validate_ms"))

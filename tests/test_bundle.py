"""Issue 6: evidence bundles a recipient can verify offline.

One case with a camera recording (MPEG-TS segments, a thumbnail and metadata
derived from it) and an upload is bundled once per module; every check then
works on that zip or on a tampered copy of it. Footage is generated with
ffmpeg lavfi into pytest's tmp dirs, never into the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CUSTODY

FF = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
SRC = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def bundle_case(cli, evidence, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A case with CAM/1 (3 recorded TS segments + thumbnail + metadata JSON) and UP/1 (an uploaded MP4)."""
    from pipeline.custody.actor import Actor
    from pipeline.intake.mediainfo import MediaReport
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import store_original

    d = tmp_path_factory.mktemp("bundle-src")
    subprocess.run([*FF, *SRC, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "segment",
                    "-segment_time", "1", "-segment_format", "mpegts", str(d / "cam01_%03d.ts")], check=True)
    subprocess.run([*FF, *SRC, "-c:v", "libx264", "-preset", "ultrafast", str(d / "upload.mp4")], check=True)
    subprocess.run([*FF, "-i", str(d / "cam01_000.ts"), "-frames:v", "1", str(d / "thumb.jpg")], check=True)
    segments = sorted(d.glob("cam01_*.ts"))
    assert len(segments) >= 3

    ref = f"OP-BUNDLE/{uuid.uuid4().hex[:8]}"
    actor = Actor("recorder", "camera-recorder")
    case, cam = evidence.ensure_exhibit(ref, "CAM/1", "DC Cam", actor, "covert camera 1")
    objs = []
    for i, seg in enumerate(segments):
        offer = Offer(seg.name, {"camera": "cam01", "segment": i}, action="segment_recorded", index=False)
        objs.append(store_original(evidence, case, cam, seg, offer, actor=actor,
                                   media=MediaReport("ok", "camera segment", "video", "mpeg-ts")))
    o0 = objs[0]
    src = {"bucket": o0.bucket, "key": o0.key, "version_id": o0.version_id, "sha256": o0.sha256, "size": o0.size,
           "role": "original"}
    meta_p = d / "cam01_000.json"
    meta_p.write_text(json.dumps({"duration": "1.0", "codec": "h264"}))
    _, thumb_ref = evidence.add_derived(case, cam, d / "thumb.jpg", source=src, kind="thumbnail", actor=actor)
    _, meta_ref = evidence.add_derived(case, cam, meta_p, source=src, kind="metadata", actor=actor)
    evidence.record(case, cam, "frames_extracted", actor=actor, objects=[thumb_ref, meta_ref])
    cli.run("ingest", str(d / "upload.mp4"), "--case", ref, "--exhibit", "UP/1", "--officer", "DC Upload")

    out = tmp_path_factory.mktemp("bundle-out") / "bundle.zip"
    res = cli.json("bundle", "--case", ref, "--out", str(out), "--recipient", "CPS Leeds",
                   "--reason", "disclosure to defence", "--derived", "all")
    return {"case": ref, "zip": out, "res": res, "dir": d, "segments": segments,
            "thumb_sha": _sha((d / "thumb.jpg").read_bytes())}


def _members(zpath: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(zpath) as zf:
        return {i.filename.split("/", 1)[1]: i for i in zf.infolist()}


def _read(zpath: Path, rel: str) -> bytes:
    with zipfile.ZipFile(zpath) as zf:
        return zf.read(_members(zpath)[rel].filename)


def _rewrite(src: Path, dst: Path, changes: dict[str, bytes | None]) -> None:
    """Copy a zip, replacing (bytes), dropping (None) or adding members given by bag-relative path."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        top = zin.infolist()[0].filename.split("/", 1)[0]
        done = set()
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            done.add(rel)
            if rel in changes:
                if changes[rel] is not None:
                    zout.writestr(info, changes[rel])  # type: ignore[arg-type]
                continue
            zout.writestr(info, zin.read(info))
        for rel, data in changes.items():
            if rel not in done and data is not None:
                zout.writestr(f"{top}/{rel}", data)


def _flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def _verify(cli, zpath: Path, *extra: str):  # type: ignore[no-untyped-def]
    proc = cli.run("verify", str(zpath), "--json", *extra, check=False)
    return proc.returncode, json.loads(proc.stdout)


def _find(zpath: Path, prefix: str, contains: str = "") -> str:
    return next(n for n in sorted(_members(zpath)) if n.startswith(prefix) and contains in n)


# ---- a good bundle passes every validator ------------------------------------
def test_bundle_validates_everywhere(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    import bagit

    z = bundle_case["zip"]
    with zipfile.ZipFile(z) as zf:
        zf.extractall(tmp_path)
    (bag,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    b = bagit.Bag(str(bag))
    b.validate()  # the bagit library's own validator, full (not fast) mode
    assert b.is_valid()
    for m in ("tagmanifest-sha256.txt", "manifest-sha256.txt"):
        proc = subprocess.run(["sha256sum", "--strict", "-c", m], cwd=bag, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rc, rep = _verify(cli, z)
    assert rc == 0 and rep["result"] == "PASS", rep["failures"]
    assert [x["exhibit"] for x in rep["exhibits"]] == ["CAM/1", "UP/1"]
    assert _verify(cli, bag)[0] == 0  # the unzipped bag verifies the same way
    assert rep["keys"] and len(rep["keys"][0]["key_id"]) == 64

    names = set(_members(z))
    segs = [n for n in names if n.startswith("data/exhibits/CAM_1/originals/")]
    assert len(segs) == len(bundle_case["segments"])
    assert any(n.startswith("data/exhibits/UP_1/originals/") and n.endswith("upload.mp4") for n in names)
    thumb = _find(z, "data/exhibits/CAM_1/derived/", "thumbnail")
    assert _sha(_read(z, thumb)) == bundle_case["thumb_sha"]
    assert any("metadata" in n for n in names if n.startswith("data/exhibits/CAM_1/derived/"))
    assert {"data/report/report.html", "data/report/report.pdf", "README.txt", "bag-info.txt",
            "bagit.txt"} <= names
    # the custody log exactly as stored, plus its public key
    view = cli.json("exhibit", "show", "--case", bundle_case["case"], "--exhibit", "CAM/1")
    events = sorted(n for n in names if n.startswith("data/exhibits/CAM_1/custody/events/"))
    assert len(events) == view["chain"]["length"] - 1  # minus the `exported` event recorded afterwards
    assert json.loads(_read(z, events[1]))["event"]["action"] == "segment_recorded"
    assert any(n.startswith("data/exhibits/CAM_1/custody/keys/") and n.endswith(".pem") for n in names)
    # video is stored, not recompressed
    assert _members(z)[segs[0]].compress_type == zipfile.ZIP_STORED

    info = (bag / "bag-info.txt").read_text()
    for needle in (f"Case-Reference: {bundle_case['case']}", "Exhibit-Reference: CAM/1", "Exhibit-Reference: UP/1",
                   "Prepared-By: pytest", "Recipient: CPS Leeds", "Reason: disclosure to defence", "Payload-Oxum: "):
        assert needle in info
    readme = (bag / "README.txt").read_text()
    assert "bagit.py --validate" in readme and "sha256sum -c manifest-sha256.txt" in readme


def test_export_recorded_and_locked(cli, bundle_case, raw_client):  # type: ignore[no-untyped-def]
    res = bundle_case["res"]
    sha = _sha(bundle_case["zip"].read_bytes())
    assert res["sha256"] == sha
    for ex in ("CAM/1", "UP/1"):
        view = cli.json("exhibit", "show", "--case", bundle_case["case"], "--exhibit", ex)
        last = view["events"][-1]
        assert last["action"] == "exported" and last["actor"]["name"] == "pytest"
        assert last["parameters"]["recipient"] == "CPS Leeds"
        assert last["parameters"]["reason"] == "disclosure to defence"
        (obj,) = last["objects"]
        assert obj["role"] == "bundle" and obj["sha256"] == sha and obj["bucket"] == "custody-bundles"
    stored = res["stored"]
    ret = raw_client.get_object_retention(stored["bucket"], stored["key"], version_id=stored["version_id"])
    assert ret is not None and ret.mode in ("COMPLIANCE", "GOVERNANCE")
    assert cli.run("verify", "--case", bundle_case["case"]).returncode == 0  # online verify re-hashes the bundle


# ---- tampering inside the zip is found and named ------------------------------
KINDS = {
    "original": lambda z: _find(z, "data/exhibits/CAM_1/originals/"),
    "upload": lambda z: _find(z, "data/exhibits/UP_1/originals/"),
    "derived": lambda z: _find(z, "data/exhibits/CAM_1/derived/", "thumbnail"),
    "manifest": lambda z: "manifest-sha256.txt",
    "tagmanifest": lambda z: "tagmanifest-sha256.txt",
    "bag-info": lambda z: "bag-info.txt",
    "custody-event": lambda z: _find(z, "data/exhibits/CAM_1/custody/events/", "00000002"),
    "public-key": lambda z: _find(z, "data/exhibits/CAM_1/custody/keys/"),
    "report-pdf": lambda z: "data/report/report.pdf",
    "report-html": lambda z: "data/report/report.html",
    "index": lambda z: "data/bundle.json",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_single_byte_change_is_named(cli, bundle_case, tmp_path, kind):  # type: ignore[no-untyped-def]
    z = bundle_case["zip"]
    target = KINDS[kind](z)
    bad = tmp_path / "bad.zip"
    _rewrite(z, bad, {target: _flip(_read(z, target))})
    rc, rep = _verify(cli, bad)
    assert rc == 1 and rep["result"] == "FAIL"
    assert target in json.dumps(rep["failures"]), rep["failures"]


@pytest.mark.parametrize("kind", ["original", "custody-event", "manifest", "report-pdf"])
def test_dropped_file_is_named(cli, bundle_case, tmp_path, kind):  # type: ignore[no-untyped-def]
    z = bundle_case["zip"]
    target = KINDS[kind](z)
    bad = tmp_path / "bad.zip"
    _rewrite(z, bad, {target: None})
    rc, rep = _verify(cli, bad)
    assert rc == 1
    assert target in json.dumps(rep["failures"]), rep["failures"]


def test_raw_byte_flip_in_zip_is_named(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    """Flipping a byte of the zip file itself (not re-zipping) lands in a stored member: named too."""
    z = bundle_case["zip"]
    target = _find(z, "data/exhibits/UP_1/originals/")
    info = _members(z)[target]
    data = bytearray(z.read_bytes())
    data[info.header_offset + 200 + info.file_size // 2] ^= 0xFF  # inside the member's stored bytes
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    rc, rep = _verify(cli, bad)
    assert rc == 1 and target in json.dumps(rep["failures"]), rep["failures"]


def _fix_manifests(z: Path, changes: dict[str, bytes | None]) -> dict[str, bytes | None]:
    """What a careful forger does: recompute both manifests after editing."""
    man = _read(z, "manifest-sha256.txt").decode().splitlines()
    lines = []
    for ln in man:
        digest, path = ln.split("  ", 1)
        if path in changes:
            if changes[path] is None:
                continue
            digest = _sha(changes[path])  # type: ignore[arg-type]
        lines.append(f"{digest}  {path}")
    known = {ln.split("  ", 1)[1] for ln in man}
    lines += [f"{_sha(v)}  {k}" for k, v in changes.items() if k not in known and v is not None]
    man_b = ("\n".join(lines) + "\n").encode()
    tag = []
    for ln in _read(z, "tagmanifest-sha256.txt").decode().splitlines():
        digest, path = ln.split("  ", 1)
        tag.append(f"{_sha(man_b) if path == 'manifest-sha256.txt' else digest}  {path}")
    return {**changes, "manifest-sha256.txt": man_b, "tagmanifest-sha256.txt": ("\n".join(tag) + "\n").encode()}


def test_edited_event_with_fixed_manifests_is_named(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    """Re-hashing the event and the manifests doesn't help: the signature no longer verifies."""
    from pipeline.custody.events import event_hash

    z = bundle_case["zip"]
    target = _find(z, "data/exhibits/CAM_1/custody/events/", "00000001")
    doc = json.loads(_read(z, target))
    doc["event"]["actor"]["name"] = "someone else"
    doc["event_sha256"] = event_hash(doc["event"])
    new = json.dumps(doc, sort_keys=True, indent=1).encode()
    bad = tmp_path / "bad.zip"
    _rewrite(z, bad, _fix_manifests(z, {target: new}))
    rc, rep = _verify(cli, bad)
    assert rc == 1
    fails = json.dumps(rep["failures"])
    assert target in fails and "signature" in fails
    assert "manifest" not in fails  # the manifests were forged consistently; custody caught it


def test_replaced_original_with_fixed_manifests_is_named(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    z = bundle_case["zip"]
    target = _find(z, "data/exhibits/UP_1/originals/")
    bad = tmp_path / "bad.zip"
    _rewrite(z, bad, _fix_manifests(z, {target: b"not the footage"}))
    rc, rep = _verify(cli, bad)
    assert rc == 1
    assert target in json.dumps(rep["failures"]) and "custody record" in json.dumps(rep["failures"])


def test_truncated_chain_with_fixed_manifests_is_found(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    z = bundle_case["zip"]
    events = sorted(n for n in _members(z) if n.startswith("data/exhibits/CAM_1/custody/events/"))
    bad = tmp_path / "bad.zip"
    _rewrite(z, bad, _fix_manifests(z, {events[-1]: None}))
    rc, rep = _verify(cli, bad)
    assert rc == 1 and "missing" in json.dumps(rep["failures"])


@pytest.mark.parametrize("where", ["data/planted.mp4", "data/exhibits/CAM_1/originals/999_extra.ts"])
def test_added_file_is_named(cli, bundle_case, tmp_path, where):  # type: ignore[no-untyped-def]
    z = bundle_case["zip"]
    bad = tmp_path / "bad.zip"
    _rewrite(z, bad, {where: b"planted"})  # manifests untouched: unlisted payload file
    rc, rep = _verify(cli, bad)
    assert rc == 1 and where in json.dumps(rep["failures"])
    _rewrite(z, bad := tmp_path / "bad2.zip", _fix_manifests(z, {where: b"planted"}))  # manifests forged too
    rc, rep = _verify(cli, bad)
    assert rc == 1 and where in json.dumps(rep["failures"]) and "custody" in json.dumps(rep["failures"])


def test_trusted_key_option(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pipeline.custody.signing import key_id, load_public_pem, public_pem

    z = bundle_case["zip"]
    ours = cli.home / "keys" / "signing-ed25519.pub"
    human = cli.run("verify", str(z))  # default trust: the key inside, printed for out-of-band comparison
    assert human.stdout.strip() == "PASS" and key_id(load_public_pem(ours.read_bytes())) in human.stderr
    proc = cli.run("verify-bundle", str(z), "--trusted-key", str(ours))
    assert "PASS" in proc.stdout
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    proc = cli.run("verify-bundle", str(z), "--trusted-key", str(other), "--json", check=False)
    assert proc.returncode == 1 and "untrusted key" in proc.stdout


# ---- the report ---------------------------------------------------------------
def test_report_renders(bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    import cv2
    import numpy as np

    z = bundle_case["zip"]
    html = _read(z, "data/report/report.html").decode()
    for seg in bundle_case["segments"]:
        assert _sha(seg.read_bytes()) in html
    assert "<img" in html and "segment_recorded" in html and "frames_extracted" in html
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_read(z, "data/report/report.pdf"))
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    (png,) = tmp_path.glob("page*.png")
    img = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert img is not None and img.shape[0] > 100
    assert float(np.mean(img < 200)) > 0.01  # text and tables, not a blank page


# ---- builder behaviour ----------------------------------------------------------
def test_working_copies_and_exhibit_subset(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "wc.zip"
    cli.run("bundle", "--case", bundle_case["case"], "--exhibit", "UP/1", "--working-copies", "--out", str(out),
            "--recipient", "expert", "--reason", "analysis")
    names = set(_members(out))
    assert not any("CAM_1" in n for n in names)
    (wc,) = [n for n in names if n.startswith("data/exhibits/UP_1/working-copies/")]
    assert "WORKING-COPY" in wc and not any("/originals/" in n for n in names)
    assert _sha(_read(out, wc)) == _sha((bundle_case["dir"] / "upload.mp4").read_bytes())  # byte-identical
    assert "WORKING COPIES" in _read(out, "README.txt").decode()
    assert "Content: working copies" in _read(out, "bag-info.txt").decode()
    rc, rep = _verify(cli, out)
    assert rc == 0, rep["failures"]


def test_never_overwrites_and_rejects_bad_requests(cli, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    existing = tmp_path / "exists.zip"
    existing.write_bytes(b"keep me")
    who = ("--recipient", "CPS", "--reason", "test")
    proc = cli.run("bundle", "--case", bundle_case["case"], "--out", str(existing), *who, check=False)
    assert proc.returncode == 2 and existing.read_bytes() == b"keep me"
    proc = cli.run("bundle", "--case", bundle_case["case"], "--exhibit", "NO/1", "--out", str(tmp_path / "n.zip"),
                   *who, check=False)
    assert proc.returncode == 2 and not (tmp_path / "n.zip").exists()
    proc = cli.run("bundle", "--case", bundle_case["case"], "--out", str(tmp_path / "r.zip"), "--recipient", " ",
                   "--reason", "x", check=False)  # recipient and reason are required, and not blank
    assert proc.returncode == 2 and not (tmp_path / "r.zip").exists()


def test_hash_mismatch_while_copying_aborts(evidence, bundle_case, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from pipeline.custody.actor import Actor
    from pipeline.errors import IntegrityError
    from pipeline.export.bundle import build_bundle

    real = evidence.store.stream_object
    victim = {}

    def corrupt(bucket, key, version_id=None, chunk=1 << 20):  # type: ignore[no-untyped-def]
        for i, c in enumerate(real(bucket, key, version_id, chunk)):
            if bucket == "custody-originals" and i == 0 and not victim:
                victim["key"] = key
                c = b"X" + c[1:]
            yield c

    monkeypatch.setattr(evidence.store, "stream_object", corrupt)
    out = tmp_path / "x.zip"
    with pytest.raises(IntegrityError) as exc:
        build_bundle(evidence, bundle_case["case"], ["CAM/1"], out, actor=Actor("pytest"))
    assert victim["key"] in str(exc.value)
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_presigned_download_is_recorded(cli, evidence, bundle_case):  # type: ignore[no-untyped-def]
    from pipeline.custody.actor import Actor
    from pipeline.export.links import presign_bundle_download

    stored = bundle_case["res"]["stored"]
    obj = {**stored, "sha256": bundle_case["res"]["sha256"], "size": bundle_case["res"]["size"]}
    url = presign_bundle_download(evidence, bundle_case["case"], obj, Actor("DS Link"), timedelta(minutes=5))
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - loopback test server
        assert _sha(r.read()) == bundle_case["res"]["sha256"]
    for ex in ("CAM/1", "UP/1"):
        last = cli.json("exhibit", "show", "--case", bundle_case["case"], "--exhibit", ex)["events"][-1]
        assert last["action"] == "bundle_download_link_issued" and last["actor"]["name"] == "DS Link"
        assert last["parameters"]["expires_seconds"] == 300
        assert url not in json.dumps(last)  # the link is a bearer credential: only its hash is kept


def test_flow_wraps_the_same_function(evidence, bundle_case, tmp_path):  # type: ignore[no-untyped-def]
    """The Prefect flow is a thin wrapper; call its function directly (no Prefect server needed)."""
    from prefect import Flow

    from flows.bundle import build_bundle

    assert isinstance(build_bundle, Flow)
    out = tmp_path / "flow.zip"
    res = build_bundle.fn(bundle_case["case"], str(out), ["UP/1"], recipient="r", reason="w", actor="flow-test")
    assert res["sha256"] == _sha(out.read_bytes()) and res["exhibits"] == ["UP/1"]


# ---- bounded memory ---------------------------------------------------------------
RSS_LIMIT_MB = 300


def test_large_footage_bundle_peak_rss(cli, tmp_path):  # type: ignore[no-untyped-def]
    """Footage bigger than the RSS limit is bundled in bounded memory (the 5 GB figure is in bench/bundle.py)."""
    size = 320 * 1024 * 1024
    src = tmp_path / "big.ts"
    block = os.urandom(4 << 20)
    with open(src, "wb") as f:
        for i in range(size // len(block)):
            f.write(i.to_bytes(8, "big") + block[8:])
    ref = f"OP-BIG/{uuid.uuid4().hex[:8]}"
    cli.run("case", "create", "--ref", ref)
    cli.run("ingest", str(src), "--case", ref, "--exhibit", "BIG/1", "--officer", "DC Big")
    src.unlink()
    out = tmp_path / "big.zip"
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", probe, CUSTODY, "bundle", "--case", ref, "--out", str(out),
                           "--recipient", "CPS", "--reason", "memory test"],
                          env=cli.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    assert out.stat().st_size > size
    assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
    out.unlink()


def test_the_cli_bundle_holds_review_material_by_default_not_every_still(cli: Any, bundle_case: dict,
                                                                        tmp_path: Path) -> None:
    """Interval stills and thumbnails are many times the originals: by default a bundle carries the originals and
    the review material (here the metadata document), says so, and still verifies; `none` and `all` as named."""
    sizes = {}
    for mode in ("review", "none", "all"):
        out = tmp_path / f"{mode}.zip"
        cli.run("bundle", "--case", bundle_case["case"], "--exhibit", "CAM/1", "--derived", mode, "--out", str(out),
                "--recipient", "CPS", "--reason", "disclosure")
        with zipfile.ZipFile(out) as z:
            derived = sorted(n.rsplit("/", 1)[-1] for n in z.namelist() if "/derived/" in n)
            meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith("/data/bundle.json"))))
        sizes[mode] = derived
        assert mode in ("none", "all") or "review material" in meta["derived_selection"], meta["derived_selection"]
        assert cli.run("verify", str(out)).returncode == 0
    assert sizes["none"] == [] and not any("thumbnail" in n for n in sizes["review"])
    assert any("metadata" in n for n in sizes["review"]) and any("thumbnail" in n for n in sizes["all"])
    bad = cli.run("bundle", "--case", bundle_case["case"], "--derived", "stills", "--out", str(tmp_path / "x.zip"),
                  "--recipient", "CPS", "--reason", "r", check=False)
    assert bad.returncode == 2 and "review, none, all" in bad.stderr and not (tmp_path / "x.zip").exists()

"""Bad input never loses evidence: each kind is stored byte for byte with its documented status."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.evidence import safe_display_name
from tests.conftest import Cli
from tests.test_api import ApiServer, add_user


def _mp4(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10", "-t", "1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-metadata", "creation_time=2026-01-02T03:04:05Z",
                    "-metadata", f"comment={uuid.uuid4().hex}", str(path)], check=True)


def _jpeg(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1",
                    str(path)], check=True)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-Make=Acme", "-Model=Spycam", "-SerialNumber=SN42",
                    "-DateTimeOriginal=2026:01:02 03:04:05", "-GPSLatitude=51.5", "-GPSLatitudeRef=N",
                    "-GPSLongitude=0.125", "-GPSLongitudeRef=W", f"-ImageDescription={uuid.uuid4().hex}", str(path)],
                   check=True)


def make_ok_mp4(d: Path) -> Path:
    p = d / "clip.mp4"
    _mp4(p)
    return p


def make_truncated_mp4(d: Path) -> Path:
    full = d / "full.mp4"
    _mp4(full)  # ffmpeg writes the moov atom last: cutting the file in half loses it
    data = full.read_bytes()
    assert data.find(b"moov") > len(data) // 2
    p = d / "battery died.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


def make_jpeg(d: Path) -> Path:
    p = d / "still.jpg"
    _jpeg(p)
    return p


def make_broken_exif(d: Path) -> Path:
    good = d / "good.jpg"
    _jpeg(good)
    data = bytearray(good.read_bytes())
    tiff = data.index(b"Exif\x00\x00") + 6
    data[tiff + 4: tiff + 8] = b"\x7f\xff\xff\xff"  # first IFD offset points far outside the file
    p = d / "broken exif.jpg"
    p.write_bytes(bytes(data))
    return p


def make_empty(d: Path) -> Path:
    p = d / "empty.mp4"
    p.write_bytes(b"")
    return p


def make_not_media(d: Path) -> Path:
    p = d / "notes.mp4"  # the name lies; content decides
    p.write_bytes(b"%PDF-1.4 not footage at all\n" + os.urandom(500))
    return p


def make_odd_name(d: Path) -> Path:
    p = d / "..\\..\\etc\\passwd é 視頻 ملف.mp4"
    _mp4(p)
    return p


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "ok_mp4": (make_ok_mp4, "ok"),
    "ok_jpeg": (make_jpeg, "ok"),
    "empty": (make_empty, "empty"),
    "not_media": (make_not_media, "not_media"),
    "truncated": (make_truncated_mp4, "truncated"),
    "broken_exif": (make_broken_exif, "metadata_unreadable"),
    "odd_name": (make_odd_name, "ok"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_cli_upload_keeps_bytes_and_flags_status(cli: Cli, case_ref: str, tmp_path: Path, raw_client: Any,
                                                 kind: str) -> None:
    make, status = CASES[kind]
    src = make(tmp_path)
    out = cli.json("upload", str(src), "--case", case_ref, "--exhibit", "BAD/1", "--officer", "DC B")
    (obj,) = out["objects"]  # type: ignore[index]
    assert obj["status"] == status, obj
    assert obj["message"]
    assert obj["original_name"] == safe_display_name(src.name)  # backslash paths reduced to the last part
    assert src.name not in obj["key"] and ".." not in obj["key"]
    stored = raw_client.get_object(obj["bucket"], obj["key"], version_id=obj["version_id"]).read()
    assert stored == src.read_bytes()
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "BAD/1")
    event = [e for e in view["events"] if e["action"] in ("ingested", "duplicate_linked")][-1]  # type: ignore[index]
    rec = event["objects"][0]
    assert rec["status"] == status and rec["info"]["message"] == obj["message"]
    assert event["parameters"]["submitted_name"] == src.name
    if status == "ok":
        meta = [e for e in view["events"] if e["action"] == "metadata_extracted"]  # type: ignore[index]
        assert meta and "ffprobe" in meta[-1]["tools"] and "exifread" in meta[-1]["tools"]


def test_metadata_fields(tmp_path: Path) -> None:
    from pipeline.intake.mediainfo import inspect_file

    v = inspect_file(make_ok_mp4(tmp_path))
    assert v.status == "ok" and v.kind == "video"
    for k in ("container", "video_codec", "duration_seconds", "frame_rate", "width", "height", "rotation",
              "creation_time"):
        assert k in v.metadata, k
    assert v.metadata["video_codec"] == "h264" and v.metadata["frame_rate"] == "10.000"
    s = inspect_file(make_jpeg(tmp_path)).metadata
    assert (s["make"], s["model"], s["serial"]) == ("Acme", "Spycam", "SN42")
    assert s["capture_time"] == "2026:01:02 03:04:05"
    assert (s["gps_latitude"], s["gps_longitude"]) == ("51.5000000", "-0.1250000")


def test_enormous_sparse_file_is_classified_without_reading_it(tmp_path: Path) -> None:
    """Classification reads a bounded head, so a huge input costs no time or memory before upload."""
    import resource

    from pipeline.intake.mediainfo import inspect_file

    p = tmp_path / "huge.mp4"
    with open(p, "wb") as f:
        f.truncate(64 * 1024**3)  # 64 GiB, sparse
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = inspect_file(p)
    assert r.status == "not_media"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB


@pytest.fixture(scope="module")
def officer_api(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], str, str]]:
    srv = ApiServer(cli, tmp_path_factory.mktemp("bad-api") / "serve.log")
    ref = f"OP-BAD/{uuid.uuid4().hex[:8]}"
    case = cli.json("case", "create", "--ref", ref)
    name, token = add_user(cli, "officer")
    cli.run("user", "assign", name, "--case", ref)
    hdr = {"Authorization": f"Bearer {token}"}
    ex = httpx.post(f"{srv.url}/api/cases/{case['case_id']}/exhibits", headers=hdr,  # type: ignore[index]
                    json={"ref": "API/1", "officer": "DC B"}).json()
    yield srv.url, hdr, case["case_id"], ex["exhibit_id"]  # type: ignore[index,misc]
    srv.stop()


@pytest.mark.parametrize("kind", ["empty", "not_media", "truncated", "broken_exif", "ok_mp4"])
def test_api_upload_of_bad_input_is_201_with_status(officer_api: Any, tmp_path: Path, raw_client: Any,
                                                    kind: str) -> None:
    url, hdr, case_id, exhibit_id = officer_api
    make, status = CASES[kind]
    src = make(tmp_path)
    data = src.read_bytes()
    r = httpx.post(f"{url}/api/cases/{case_id}/exhibits/{exhibit_id}/uploads", headers=hdr, content=data,
                   params={"name": f"../../{src.name}"}, timeout=60)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == status and body["message"]
    # path parts dropped from the display name; the raw name is kept in the event parameters
    assert body["original_name"] == safe_display_name(src.name)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert raw_client.get_object(body["bucket"], body["key"], version_id=body["version_id"]).read() == data

"""Every door into the store is the same door: ingest, upload and camera segments share one intake path."""

from __future__ import annotations

import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Any

from tests.conftest import Cli
from tests.test_bad_input import _jpeg


def _ts(path: Path, seconds: int = 4) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
                    "-t", str(seconds), "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
                    "-metadata", f"service_name={uuid.uuid4().hex}", "-f", "mpegts", str(path)], check=True)


def test_ingest_of_a_jpeg_records_its_exif(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    img = tmp_path / "IMG_0001.JPG"
    _jpeg(img)
    out: Any = cli.json("ingest", str(img), "--case", case_ref, "--exhibit", "EX/1", "--officer", "DC Exif")
    (obj,) = out["objects"]
    assert obj["status"] == "ok" and obj["content_type"] == "image/jpeg"
    assert obj["metadata"]["make"] == "Acme" and obj["metadata"]["serial"] == "SN42"
    view: Any = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "EX/1")
    (meta,) = [e for e in view["events"] if e["action"] == "metadata_extracted"]
    assert meta["details"]["metadata"]["capture_time"] == "2026:01:02 03:04:05"
    assert "exifread" in meta["tools"]


def test_ts_ingested_or_uploaded_by_hand_is_typed_from_content_and_extracted(cli: Cli, case_ref: str,
                                                                             tmp_path: Path) -> None:
    for verb, ref in (("ingest", "TS/1"), ("upload", "TS/2")):
        seg = tmp_path / f"{verb}-cam.ts"
        _ts(seg)
        out: Any = cli.json(verb, str(seg), "--case", case_ref, "--exhibit", ref, "--officer", "DC Ts")
        (obj,) = out["objects"]
        assert obj["content_type"] == "video/mp2t", obj  # not text/vnd.trolltech.linguist from the name
        res: Any = cli.json("extract", ref, "--case", case_ref, "--every", "1s")
        (r,) = res["results"]
        assert r["action"] == "frames_extracted" and r["stills"] == 4, r
    # the encoder is a recorded choice: an examiner repeating an engine-4 run asks for libdeflate
    res = cli.json("extract", "TS/1", "--case", case_ref, "--at", "1", "--png-encoder", "libdeflate")
    assert res["params"]["png_encoder"] == "libdeflate", res["params"]
    bad = cli.run("extract", "TS/1", "--case", case_ref, "--at", "1", "--png-encoder", "zopfli", check=False)
    assert bad.returncode == 2 and "fpng" in bad.stderr and "internal error" not in bad.stderr, bad.stderr


def test_bytes_ingested_then_uploaded_to_the_same_case_are_linked(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    clip = tmp_path / "card.ts"
    _ts(clip, 2)
    first: Any = cli.json("ingest", str(clip), "--case", case_ref, "--exhibit", "DUPI/1", "--officer", "DC A")
    copy = tmp_path / "copy-from-the-card.ts"
    copy.write_bytes(clip.read_bytes())
    second: Any = cli.json("upload", str(copy), "--case", case_ref, "--exhibit", "DUPI/2", "--officer", "DC B")
    (f,), (s,) = first["objects"], second["objects"]
    assert not f["linked"] and s["linked"] and s["key"] == f["key"]
    view: Any = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "DUPI/2")
    (link,) = [e for e in view["events"] if e["action"] == "duplicate_linked"]
    assert link["details"]["duplicate_of"]["key"] == f["key"]


def test_bad_camera_inventory_exits_2_naming_the_line(cli: Cli, tmp_path: Path) -> None:
    inv = tmp_path / "cameras.yaml"
    inv.write_text("cameras:\n  - id: cam1\n    url: rtsp://127.0.0.1:8554/cam1\n    case_ref: OP-X/1\n"
                   "    exhibit_prefix: CAM1\n    segment_seconds: -5\n")
    proc = cli.run("cameras", "serve", "--inventory", str(inv), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "line 6" in proc.stderr and "segment_seconds" in proc.stderr, proc.stderr
    inv.write_text("cameras:\n  - id: cam1\n    url: [unclosed\n")
    proc = cli.run("cameras", "run", "--camera", "cam1", "--inventory", str(inv), "--no-prefect", check=False)
    assert proc.returncode == 2 and "line" in proc.stderr, proc.stderr


def test_a_card_stored_several_files_at_once_keeps_every_file_and_one_unbroken_chain(cli: Cli, case_ref: str,
                                                                                     tmp_path: Path) -> None:
    """Small files go through side by side (`each_with_progress` workers): the chain still has one event per
    step with no fork, every file's bytes are what was on the card, and identical files are not lost."""
    import hashlib

    card = tmp_path / "card" / "DCIM"
    card.mkdir(parents=True)
    want = {}
    for i in range(40):
        body = f"still {i % 30}".encode() * 50  # files 30..39 repeat the bytes of 0..9
        (card / f"IMG_{i:04d}.JPG").write_bytes(body)
        want[f"IMG_{i:04d}.JPG"] = hashlib.sha256(body).hexdigest()
    out: Any = cli.json("upload", str(card.parent), "--case", case_ref, "--exhibit", "CARD/9", "--officer", "DC Card")
    got = {o["original_name"]: o["sha256"] for o in out["objects"]}
    assert got == want
    assert [o["original_name"] for o in out["objects"]] == sorted(want)  # reported in card order
    view: Any = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "CARD/9")
    seqs = [e["seq"] for e in view["events"]]
    assert seqs == list(range(len(seqs)))
    stored = [e for e in view["events"] if e["action"] in ("ingested", "duplicate_linked")]
    assert sorted(o["sha256"] for e in stored for o in e["objects"]) == sorted(want.values())
    # identical files take turns: each set of bytes stored once, every repeat linked to it (as one at a time)
    assert sum(e["action"] == "ingested" for e in stored) == 30
    assert sum(e["action"] == "duplicate_linked" for e in stored) == 10
    assert cli.run("verify", "--case", case_ref).returncode == 0
    again: Any = cli.json("upload", str(card.parent), "--case", case_ref, "--exhibit", "CARD/9", "--officer", "DC Card")
    assert {o["status"] for o in again["objects"]} == {"already_stored"}


def test_extract_of_damaged_footage_says_so_on_the_terminal_and_in_the_record(cli: Cli, case_ref: str,
                                                                              tmp_path: Path) -> None:
    """Bad sectors on a card: the extraction is recorded, but the examiner is told, not left to find it in
    the event, and each still of a patched-up frame carries the flag."""
    from tests import footage

    clip = footage.damaged_mp4(tmp_path / f"card-{uuid.uuid4().hex[:6]}.mp4", [2.0, 3.96])
    cli.json("ingest", str(clip), "--case", case_ref, "--exhibit", "DMG/1", "--officer", "DC Card")
    proc = cli.run("extract", "DMG/1", "--case", case_ref, "--every", "1s")
    assert "NOT COMPLETE" in proc.stderr and "concealed errors in this frame" in proc.stderr, proc.stderr
    view: Any = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "DMG/1")
    (ex,) = [e for e in view["events"] if e["action"] == "frames_extracted"]
    flags = {round(float(o["info"]["offset"]), 2): o["info"]["decoder_concealed"] for o in ex["objects"]
             if o.get("kind") == "still"}
    assert flags == {0.0: False, 1.0: False, 2.0: True, 3.0: False}, flags
    assert ex["details"]["complete"] is False
    # and the statement a lawyer reads says it too, in the process's result and under the damaged still
    out = tmp_path / "dmg.zip"
    cli.run("bundle", "--case", case_ref, "--exhibit", "DMG/1", "--derived", "all", "--out", str(out),
            "--recipient", "CPS", "--reason", "review")
    with zipfile.ZipFile(out) as z:
        report = z.read(next(n for n in z.namelist() if n.endswith("/report/report.html"))).decode()
    assert "RESULT: 4 stills; NOT COMPLETE" in report
    assert report.count("DAMAGED FRAME: the decoder concealed errors (damaged data)</figcaption>") == 1
    # zeroed bytes a CABAC decoder takes silently: found in the coded data, said, and on every still they reach
    clip = footage.damaged_mp4(tmp_path / f"cabac-{uuid.uuid4().hex[:6]}.mp4", [1.0, 2.52], cabac=True,
                               extra=["-metadata", "creation_time=2026-06-01T08:10:00Z"])
    cli.json("ingest", str(clip), "--case", case_ref, "--exhibit", "DMG/2", "--officer", "DC Card")
    # preparing for review already puts the damage on the clock (the activity index probes the file)
    cli.json("review", "prepare", "DMG/2", "--case", case_ref)
    tl: Any = cli.json("review", "timeline", "DMG/2", "--case", case_ref)
    expected = [("2026-06-01T08:10:01.000000Z", "2026-06-01T08:10:02.000000Z"),
                ("2026-06-01T08:10:02.520000Z", "2026-06-01T08:10:03.000000Z")]
    assert [(c["start"], c["end"]) for c in tl["coverage"] if c["state"] == "damaged"] == expected, tl["coverage"]
    proc = cli.run("extract", "DMG/2", "--case", case_ref, "--every", "0.5s")
    assert "coded data of 2 packet(s) is damaged" in proc.stderr and "1.000s, 2.520s" in proc.stderr, proc.stderr
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "DMG/2")
    (ex,) = [e for e in view["events"] if e["action"] == "frames_extracted"]
    marked = sorted(round(float(o["info"]["offset"]), 2) for o in ex["objects"]
                    if o.get("kind") == "still" and o["info"]["bitstream_damaged"])
    assert marked == [1.0, 1.48], marked
    from pipeline.review.continuity import DAMAGED, DAMAGED_DATA, damage_label

    assert [damage_label(o["info"]) for o in ex["objects"] if o.get("kind") == "still"
            and round(float(o["info"]["offset"]), 2) in (0.0, 1.48)] in ([None, DAMAGED_DATA], [None, DAMAGED])
    assert damage_label({"bitstream_damaged": True}) == DAMAGED_DATA
    assert damage_label({"decoder_concealed": True, "bitstream_damaged": True}) == DAMAGED
    # the extraction found the same runs: still one span each on the clock, with what is wrong and how much
    tl = cli.json("review", "timeline", "DMG/2", "--case", case_ref)
    damaged = [(c["start"], c["end"], c["reason"]) for c in tl["coverage"] if c["state"] == "damaged"]
    assert [d[:2] for d in damaged] == expected, damaged
    assert "25 picture(s)" in damaged[0][2] and "zero bytes at byte" in damaged[0][2]


def test_a_clock_check_refuses_readings_no_clock_could_give() -> None:
    """A reference reading in the future (a mistyped year) or a camera reading at year 1 would move every
    displayed time of the exhibit by centuries: refused with the reading named; a reset camera clock is not."""
    from datetime import UTC, datetime

    import pytest

    from pipeline.errors import UsageError
    from pipeline.intake.clock import clock_parameters, corrected_time

    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    with pytest.raises(UsageError, match="reference time '9999-01-01T00:00:00Z' is in the future"):
        clock_parameters("2026-12-08T12:00:00Z", "9999-01-01T00:00:00Z", now=now)
    with pytest.raises(UsageError, match="reference time .* is in the future"):
        clock_parameters("2026-12-08T12:00:00Z", "2026-12-08T12:10:00Z", now=now)
    with pytest.raises(UsageError, match="camera time '0001-01-01T00:00:00' is outside 1970-2100"):
        clock_parameters("0001-01-01T00:00:00", "2026-12-08T11:00:00Z", now=now)
    reset = clock_parameters("1970-01-01T00:05:00Z", "2026-12-08T11:59:00Z", now=now)  # a camera reset to 1970
    assert reset["offset_ms"] < 0
    assert clock_parameters("2026-12-08T12:00:30Z", "2026-12-08T12:02:00Z", now=now)["offset_ms"] == -90000
    assert corrected_time("0001-01-01T00:00:00", 10**12) is None  # moved off the calendar: shown uncorrected

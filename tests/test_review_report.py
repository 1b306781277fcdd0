"""The continuity statement in the bundle report (HTML and PDF), read back with pdftotext and pdftoppm.

A camera exhibit with a partial segment, a recorded gap, a hole nobody explains and time marked not
scheduled, plus a field upload with its seizure time zone: every recorded bound must appear verbatim.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import footage
from tests.conftest import Cli

T0 = datetime(2026, 11, 28, 21, 40, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def case(cli: Cli, evidence: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipeline.custody.actor import Actor
    from pipeline.intake.mediainfo import MediaReport
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import offer, store_original
    from pipeline.review.clips import make_clip
    from pipeline.review.prepare import prepare_exhibit
    from pipeline.review.sheets import make_sheets
    from pipeline.review.stills import still_at
    from pipeline.web.uploads import seizure_facts

    tmp = tmp_path_factory.mktemp("report")
    ref = f"OP-REPORT/{uuid.uuid4().hex[:8]}"
    cli.run("case", "create", "--ref", ref)
    rec, dc = Actor("recorder cam3", "system"), Actor("DC Jane Bloggs", "officer")
    c, cam = evidence.ensure_exhibit(ref, "CAM3/20261128", "recorder", rec, "covert camera cam3")
    spans = [(T0, 3.0, False), (T0 + timedelta(seconds=3), 1.5, True), (T0 + timedelta(seconds=9), 3.0, False),
             (T0 + timedelta(seconds=20), 3.0, False)]
    for i, (s, d, partial) in enumerate(spans):
        p = footage.h264(tmp / f"cam3_{i:05d}.ts", d, size="320x240", bframes=False, extra=["-metadata", f"title={i}"])
        o = Offer(p.name, action="segment_recorded", index=False, metadata={"camera": "cam3"},
                  parameters={"camera": "cam3", "segment_index": i, "wallclock_start": s,
                              "wallclock_end": s + timedelta(seconds=d), "partial": partial},
                  details={"command": ["ffmpeg", "-i", "rtsp://cam3.local/stream1", "-c", "copy"]})
        store_original(evidence, c, cam, p, o, actor=rec, resumable=False,
                       media=MediaReport("partial" if partial else "ok", "segment", "video", "mpeg-ts"))
    evidence.record(c, cam, "gap", actor=rec, parameters={
        "camera": "cam3", "start": (T0 + timedelta(seconds=4, microseconds=250000)).isoformat(),
        "end": (T0 + timedelta(seconds=9)).isoformat(), "seconds": "4.75", "reason": "stall (no bytes for 3 s)"})
    evidence.record(c, cam, "coverage", actor=rec, parameters={
        "start": (T0 + timedelta(seconds=23)).isoformat(), "end": (T0 + timedelta(seconds=60)).isoformat(),
        "state": "not_scheduled", "reason": "outside the camera's recording window"})
    who = Actor("pytest", "examiner")
    prepare_exhibit(evidence, c, cam, actor=who)
    still_at(evidence, c, cam, actor=who, clock=(T0 + timedelta(seconds=10)).isoformat())
    clip = make_clip(evidence, c, cam, (T0 + timedelta(seconds=1)).isoformat(), (T0 + timedelta(seconds=2)).isoformat(),
                     "frame_exact", actor=who)
    make_sheets(evidence, c, cam, actor=who)
    # a field upload with a seizure time given in BST
    _, up = evidence.ensure_exhibit(ref, "JB/1", "DC Jane Bloggs", dc)
    clip_file = footage.h264(tmp / "phone.mp4", 2, extra=["-metadata", "creation_time=2026-06-01T08:10:00Z"])
    params = seizure_facts("2026-06-01T08:15", "Europe/London", "12 High St", "Phone, IMEI 3519")
    store_original(evidence, c, up, clip_file, offer(clip_file.name, "field-upload", params), actor=dc)
    return {"ref": ref, "case": c, "cam": cam, "up": up, "clip": clip}


def test_report_states_bounds_verbatim_with_coverage_hands_and_pictures(cli: Cli, case: dict, evidence: Any,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    cli.run("bundle", "--case", case["ref"], "--out", str(out), "--recipient", "CPS Leeds", "--reason", "disclosure")
    with zipfile.ZipFile(out) as z:
        pdf = next(n for n in z.namelist() if n.endswith("report.pdf"))
        (tmp_path / "r.pdf").write_bytes(z.read(pdf))
        html = z.read(pdf.replace(".pdf", ".html")).decode()
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    events = evidence.log.events(case["cam"].id)
    bounds = [v for x in events if x["action"] == "segment_recorded"
              for v in (x["parameters"]["wallclock_start"], x["parameters"]["wallclock_end"])]
    bounds += [v for x in events if x["action"] in ("gap", "coverage") for v in (x["parameters"]["start"],
                                                                                   x["parameters"]["end"])]
    assert len(bounds) == 12
    for v in bounds:
        assert v in text, v
        assert v in html, v
    for phrase in ("PARTIAL segment", "stall (no bytes for 3 s)", "not scheduled", "outside the camera's recording",
                   "no record explains", "rtsp://cam3.local/stream1", "CPS Leeds", "disclosure",
                   "entered as 2026-06-01T08:15:00 Europe/London", "2026-06-01T07:15:00Z", "12 High St",
                   "Phone, IMEI 3519", "DC Jane Bloggs", "recorder cam3", "review_copy_made", "clip_exported",
                   "libx264", "creation_time tag", "Stills (clock time burnt in", "Contact sheet in clock time"):
        assert phrase in text.replace("\n", " ") or phrase in text, phrase
    assert re.search(r"Time no footage, no record explains\s+8\.000 s", text)  # the 21:40:12 .. :20 hole, computed
    assert re.search(r"Time not scheduled\s+37\.000 s", text) and re.search(r"Time recorded\s+10\.500 s", text)
    shots = Path(os.environ.get("CUSTODY_SCREENSHOTS") or tmp_path)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(tmp_path / "r.pdf"), str(shots / "report-page")], check=True)
    pages = sorted(shots.glob("report-page-*.png"))
    assert len(pages) >= 3
    listed = subprocess.run(["pdfimages", "-list", str(tmp_path / "r.pdf")], capture_output=True, text=True).stdout
    assert len(listed.splitlines()) > 4  # the coverage picture, contact sheet and stills are drawn


def test_bundle_holds_the_originals_and_only_the_chosen_derived_material(case: dict, evidence: Any,
                                                                         tmp_path: Path) -> None:
    from pipeline.custody.actor import Actor
    from pipeline.export.bundle import build_bundle
    from pipeline.review import selection
    from pipeline.review.objects import object_id

    clip = next(o for o in case["clip"]["objects"] if o.get("kind") == "clip")
    chosen = {object_id(clip["bucket"], clip["key"])}
    res = build_bundle(evidence, case["ref"], ["CAM3/20261128"], tmp_path / "sel.zip", actor=Actor("pytest"),
                       recipient="CPS", reason="r", keep=selection.keep_function("chosen", chosen),
                       selection=selection.describe("chosen", chosen), store_bundle=False)
    with zipfile.ZipFile(res.path) as z:
        names = [n for n in z.namelist() if "/exhibits/" in n and "/custody/" not in n]
        meta = z.read(next(n for n in z.namelist() if n.endswith("/data/bundle.json"))).decode()
    assert sum("/originals/" in n for n in names) == 4
    assert [n for n in names if "/derived/" in n] == [n for n in names if n.endswith("_clip_clip.mp4")]
    assert "1 derived object(s) chosen by the investigator" in meta
    every = build_bundle(evidence, case["ref"], ["CAM3/20261128"], tmp_path / "all.zip", actor=Actor("pytest"),
                         recipient="CPS", reason="r", store_bundle=False)
    assert every.payload_files > res.payload_files + 10

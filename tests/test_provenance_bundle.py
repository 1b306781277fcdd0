"""Content credentials end to end: a still taken out of a bundle names its exhibit and event by itself."""

from __future__ import annotations

import json
import zipfile
from hashlib import sha256
from pathlib import Path
from typing import Any

from pipeline.provenance.c2pa_manifest import read, unsigned_png_sha256, validate
from tests.conftest import Cli
from tests.test_intake import _ts


def test_a_still_out_of_a_bundle_traces_back_to_its_exhibit_and_event(cli: Cli, case_ref: str,
                                                                      tmp_path: Path) -> None:
    clip = tmp_path / "cam.ts"
    _ts(clip, 3)
    cli.json("ingest", str(clip), "--case", case_ref, "--exhibit", "C2/1", "--officer", "DC Prov")
    out: Any = cli.json("extract", "C2/1", "--case", case_ref, "--every", "1s")
    (res,) = out["results"]
    view: Any = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "C2/1")
    (event,) = [e for e in view["events"] if e["action"] == "frames_extracted"]
    run_id = event["parameters"]["content_credentials"]["run_id"]
    zpath = tmp_path / "b.zip"
    cli.run("bundle", "--case", case_ref, "--out", str(zpath), "--derived", "all", "--recipient", "press office",
            "--reason", "appeal for witnesses")
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
        still_name = next(n for n in names if "/derived/" in n and n.endswith(".png") and "_still_" in n)
        still = z.read(still_name)
        anchors = z.read(next(n for n in names if n.endswith("data/provenance/c2pa-trust-anchors.pem")))
    loose = tmp_path / "pasted-into-a-report.png"
    loose.write_bytes(still)  # the file alone, away from the bundle
    manifest = read(loose)
    assert manifest["source"]["exhibit_id"] == view["exhibit_id"] and manifest["source"]["case"] == case_ref
    assert manifest["process"]["run_id"] == run_id  # the frames_extracted event that made it
    assert manifest["source"]["sha256"] == res["source_sha256"]
    assert validate(loose, anchors).ok
    rec = next(o for o in event["objects"] if o.get("kind") == "still" and o["sha256"] == sha256(still).hexdigest())
    assert unsigned_png_sha256(still) == rec["info"]["png_sha256"]  # the encoder's bytes, reproducible
    bad = bytearray(still)
    bad[-200] ^= 0xFF  # inside the last IDAT: one pixel region changes
    assert not validate(bytes(bad), anchors).ok
    assert json.loads(json.dumps(manifest["source"]))["event_seq"] >= 0

"""Hide every object of a small two-exhibit case, one at a time: verify must fail, or a bundle still holds it all.

Every object the case put in the custody bucket (records, index entries, events, case log, keys, and the
transparency log's batches, tiles, entries, heads and tokens) gets one delete marker, which Object Lock
allows even in COMPLIANCE mode. The examiner (a second home, in-process) verifies; where it still says PASS,
the object must not matter: a bundle built then holds both exhibits and every event. The marker is removed
again before the next object.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile

import pytest

from pipeline.custody.actor import Actor
from pipeline.custody.caseverify import verify_case
from tests.homes import B, hide, unhide


@pytest.fixture
def examiner_ev(cli, stack_status, tmp_path):  # type: ignore[no-untyped-def]
    import shutil

    from pipeline.evidence import Evidence
    from pipeline.settings import load_settings

    home = tmp_path / "examiner"
    (home / "keys" / "trusted").mkdir(parents=True)
    shutil.copy(cli.home / "keys" / "signing-ed25519.pub", home / "keys" / "trusted" / "operator.pem")
    s = load_settings(home=home, s3_endpoint=stack_status["endpoint"], s3_access_key=stack_status["access_key"],
                      s3_secret_key=stack_status["secret_key"], actor="examiner",
                      tsa_roots=[cli.home / "stack" / "tsa" / "ca.pem"])
    return Evidence(s)


def _keys(raw) -> set[str]:  # type: ignore[no-untyped-def]
    return {o.object_name for o in raw.list_objects(B, recursive=True)}


def test_hiding_any_object_is_detected_or_harmless(cli, evidence, examiner_ev, raw_client, tmp_path):  # type: ignore[no-untyped-def]
    from pipeline.export.bundle import build_bundle

    before = _keys(raw_client)
    ref = f"OP-WALK/{uuid.uuid4().hex[:8]}"
    for ex in ("WK/1", "WK/2"):
        p = tmp_path / f"{ex.replace('/', '_')}.bin"
        p.write_bytes(os.urandom(1200))
        cli.run("ingest", str(p), "--case", ref, "--exhibit", ex, "--officer", "DC Walk")
    case = examiner_ev.locate_case(ref)
    rep = verify_case(examiner_ev, case)
    assert rep.ok, rep.as_dict()
    lengths = {r.exhibit_ref: r.events for r in rep.exhibits}
    ids = [case.id] + [e.id for e in examiner_ev.exhibits_of(case)]
    # the case's own objects, and the log's shared ones made meanwhile (not other chains' entries, should another
    # test's appender have been logged in the same window)
    objects = sorted(k for k in _keys(raw_client) - before
                     if any(i in k for i in ids) or (k.startswith(("tlog/", "keys/", "index/sha256/"))
                                                     and not k.startswith("tlog/chains/")))
    kinds = {k.split("/")[0] + "/" + (k.split("/")[1] if k.startswith("tlog/") else "") for k in objects}
    assert {"cases/", "exhibits/", "index/", "tlog/batches", "tlog/tiles", "tlog/chains", "tlog/heads",
            "tlog/tokens"} <= kinds, kinds
    caught, harmless = [], []
    for key in objects:
        hide(raw_client, key)
        try:
            rep = verify_case(examiner_ev, case)
            if not rep.ok:
                caught.append(key)
                continue
            out = tmp_path / f"b-{len(harmless)}.zip"
            build_bundle(evidence, ref, None, out, actor=Actor("walker"), store_bundle=False)
            with zipfile.ZipFile(out) as zf:
                names = zf.namelist()
                meta = json.loads(zf.read(next(n for n in names if n.endswith("data/bundle.json"))))
            assert {x["ref"]: x["chain"]["length"] for x in meta["exhibits"]} == lengths, key
            for x in meta["exhibits"]:
                folder = x["folder"]
                assert sum(1 for n in names if f"/{folder}/custody/events/" in n) == lengths[x["ref"]], key
            harmless.append(key)
        finally:
            unhide(raw_client, key)
    # what verify must catch: every event, case log entry, catalogue record, index entry and log entry (the
    # duplicate index index/sha256/ only saves storing identical bytes twice: hiding it loses nothing)
    must = [k for k in objects if k.startswith(("exhibits/", "cases/", "index/", "tlog/chains/"))
            and "/keys/" not in k and not k.startswith("index/sha256/")
            and "/card-items/" not in k]  # what a card's earlier upload stored: a cache for reruns, not a record
    assert set(must) <= set(caught), sorted(set(must) - set(caught))
    assert caught and len(caught) + len(harmless) == len(objects)
    print(f"{len(objects)} objects: {len(caught)} caught by verify, harmless: {harmless}")

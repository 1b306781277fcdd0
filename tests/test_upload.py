"""`custody upload`: resume after a kill, directories, seizure facts, duplicates."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CUSTODY, Cli


def _journals(home: Path) -> list[dict[str, Any]]:
    out = []
    for p in (home / "uploads").glob("*.json"):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            pass  # being replaced right now; read again on the next poll
    return out


@pytest.mark.slow
def test_killed_upload_resumes_where_it_stopped(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    big = tmp_path / "long recording.bin"
    big.write_bytes(os.urandom(60 * 1024 * 1024))
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    env = {**cli.env, "CUSTODY_PART_SIZE_MB": "5"}
    args = [CUSTODY, "upload", str(big), "--case", case_ref, "--exhibit", "RS/1", "--officer", "DC R", "--json"]
    # --limit-rate keeps the first attempt slow enough to be killed midway on any machine
    proc = subprocess.Popen([*args, "--limit-rate", "15"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    parts_at_kill = 0
    while time.monotonic() < deadline and proc.poll() is None:
        js = [j for j in _journals(cli.home) if j["source"] == str(big.resolve())]
        # parts go side by side and can be acknowledged out of order (part 2 before part 1, on a store still
        # allocating its first volume); a resume reuses the unbroken run from part 1, so count that
        done = {int(n) for n in js[0]["parts"]} if js else set()
        prefix = next(n for n in range(1, len(done) + 2) if n not in done) - 1
        if prefix >= 1:
            parts_at_kill = prefix
            break
        time.sleep(0.02)  # polling interval for the journal, not synchronisation
    assert proc.poll() is None, "upload finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert parts_at_kill >= 1

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    (obj,) = json.loads(again.stdout)["objects"]
    assert obj["resumed_parts"] >= parts_at_kill
    assert obj["resumed_parts"] < 12  # 60 MiB in 5 MiB parts: not everything had been sent
    assert obj["sha256"] == sha and obj["size"] == big.stat().st_size
    assert not [j for j in _journals(cli.home) if j["source"] == str(big.resolve())]
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "RS/1")
    ingested = [e for e in view["events"] if e["action"] == "ingested"]  # type: ignore[index]
    assert len(ingested) == 1 and ingested[0]["parameters"]["resumed_parts"] == obj["resumed_parts"]
    verify = cli.json("verify", "--case", case_ref, "--exhibit", "RS/1")
    assert verify["result"] == "PASS"  # type: ignore[index]


def test_directory_upload_with_seizure_facts(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    card = tmp_path / "card"
    (card / "DCIM" / "100").mkdir(parents=True)
    files = {card / "a.bin": os.urandom(100), card / "DCIM" / "100" / "b c.bin": os.urandom(200),
             card / "DCIM" / "z.bin": os.urandom(300)}
    for p, data in files.items():
        p.write_bytes(data)
    out = cli.json("upload", str(card), "--case", case_ref, "--exhibit", "DIR/1", "--officer", "DC D",
                   "--seized-at", "2026-02-03T04:05:06+01:00", "--location", "Flat 2, Ley St", "--device", "Cam 7")
    objs = out["objects"]  # type: ignore[index]
    assert sorted(o["original_name"] for o in objs) == ["a.bin", "b c.bin", "z.bin"]
    by_name = {p.name: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    assert all(o["sha256"] == by_name[o["original_name"]] for o in objs)
    assert len({o["key"] for o in objs}) == 3 and all(" " not in o["key"] for o in objs)
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "DIR/1")
    params = [e["parameters"] for e in view["events"] if e["action"] == "ingested"]  # type: ignore[index]
    assert len(params) == 3
    for p in params:
        assert p["seized_at"] == "2026-02-03T03:05:06Z"
        assert p["location"] == "Flat 2, Ley St" and p["device"] == "Cam 7"


def test_same_bytes_twice_are_linked_not_stored_again(cli: Cli, case_ref: str, tmp_path: Path,
                                                      raw_client: Any) -> None:
    data = os.urandom(5000)
    a, b = tmp_path / "first.bin", tmp_path / "second copy.bin"
    a.write_bytes(data)
    b.write_bytes(data)
    first = cli.json("upload", str(a), "--case", case_ref, "--exhibit", "DUP/1", "--officer", "O")
    second = cli.json("upload", str(b), "--case", case_ref, "--exhibit", "DUP/2", "--officer", "O")
    (f,), (s,) = first["objects"], second["objects"]  # type: ignore[index]
    assert not f["linked"] and s["linked"]
    assert s["key"] == f["key"] and s["sha256"] == f["sha256"] == hashlib.sha256(data).hexdigest()
    stored = [o for o in raw_client.list_objects("custody-originals", recursive=True)
              if o.object_name.endswith(f["key"].rsplit("/", 1)[-1])]
    assert len(stored) == 1
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "DUP/2")
    (link,) = [e for e in view["events"] if e["action"] == "duplicate_linked"]  # type: ignore[index]
    assert link["details"]["duplicate_of"]["key"] == f["key"]
    assert link["objects"][0]["original_name"] == "second copy.bin"


def test_changed_file_restarts_instead_of_splicing(cli: Cli, case_ref: str, tmp_path: Path, evidence: Any) -> None:
    """A journal whose server parts no longer match the file is discarded, never continued."""
    from pipeline.custody.catalog import Case
    from pipeline.intake.resumable import Journal, journal_dir, journal_id

    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(12 * 1024 * 1024))
    ev = evidence
    case: Case = ev.catalog.get_case(case_ref)
    from pipeline.custody.actor import Actor

    _c, ex = ev.ensure_exhibit(case_ref, "CHG/1", "O", Actor("pytest"))
    store = ev.store
    st = f.stat()
    jid = journal_id(f, st, ex)
    bucket = store.buckets["originals"]
    key = f"{case.id}/{ex.id}/{'ab' * 16}"
    jdir = journal_dir(ev.settings.home)
    j = Journal(jdir / f"{jid}.json", str(f.resolve()), st.st_size, st.st_mtime_ns, bucket, key, 5 * 1024 * 1024)
    headers = store.object_headers("application/octet-stream", {}, True, False)
    j.upload_id = store.multipart(bucket, key, headers).start()
    store.client._upload_part(bucket, key, os.urandom(5 * 1024 * 1024), {}, j.upload_id, 1)  # not the file's bytes
    j.save()
    out = cli.json("upload", str(f), "--case", case_ref, "--exhibit", "CHG/1", "--officer", "O",
                   env={"CUSTODY_PART_SIZE_MB": "5"})
    (obj,) = out["objects"]  # type: ignore[index]
    assert obj["resumed_parts"] == 0
    assert obj["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_upload_completed_but_not_recorded_is_adopted(cli: Cli, case_ref: str, tmp_path: Path, evidence: Any,
                                                      raw_client: Any) -> None:
    """Killed between completing the multipart upload and writing the event: the rerun records that object."""
    from pipeline.custody.actor import Actor
    from pipeline.intake.resumable import journal_dir, journal_id, load_journal, resumable_put

    f = tmp_path / "done.bin"
    f.write_bytes(os.urandom(11 * 1024 * 1024))
    _c, ex = evidence.ensure_exhibit(case_ref, "ADOPT/1", "O", Actor("pytest"))
    st = f.stat()
    store = evidence.store
    jpath = journal_dir(evidence.settings.home) / f"{journal_id(f, st, ex)}.json"
    j = load_journal(jpath, f, st, store.buckets["originals"], 5 * 1024 * 1024, ex)
    obj, _ = resumable_put(store, j, f, store.object_headers("application/octet-stream", {}, True, False))
    out = cli.json("upload", str(f), "--case", case_ref, "--exhibit", "ADOPT/1", "--officer", "O",
                   env={"CUSTODY_PART_SIZE_MB": "5"})
    (rec,) = out["objects"]  # type: ignore[index]
    assert rec["key"] == obj.key and rec["version_id"] == obj.version_id and rec["resumed_parts"] == 3
    assert rec["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    versions = list(raw_client.list_objects(obj.bucket, prefix=obj.key, include_version=True))
    assert len(versions) == 1


def test_two_uploads_creating_one_exhibit_at_once_store_nothing_under_a_loser(cli: Cli, case_ref: str,
                                                                              tmp_path: Path,
                                                                              raw_client: Any) -> None:
    """A new exhibit is recorded while the first parts are sent (`ExhibitAhead`). Uploads racing to create the
    same reference all end with their file in the one exhibit that won (a loser aborts its parts and sends
    again into the winner's); no object, part or event ever sits under an id that lost, and verify passes."""
    from pipeline.custody.catalog import exhibit_index_key

    files = []
    for i in range(3):
        f = tmp_path / f"clip{i}.bin"
        f.write_bytes(os.urandom(12 * 1024 * 1024))  # multipart at 5 MiB parts: the record runs beside the parts
        files.append(f)
    env = {**cli.env, "CUSTODY_PART_SIZE_MB": "5"}
    procs = [subprocess.Popen([CUSTODY, "upload", str(f), "--case", case_ref, "--exhibit", "RACE/1", "--officer",
                               "DC Race", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in files]
    outs = [(p.wait(120), *p.communicate()) for p in procs]
    assert [code for code, _o, _e in outs] == [0, 0, 0], outs
    stored = [json.loads(out) for _c, out, _e in outs]
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "RACE/1")
    winner = view["exhibit_id"]  # type: ignore[index]
    assert {s["exhibit_id"] for s in stored} == {winner}
    case_id = view["case_id"]  # type: ignore[index]
    idx = json.loads(raw_client.get_object("custody-custody", exhibit_index_key(case_id, "RACE/1")).read())
    assert idx["id"] == winner
    under_case = [o.object_name for o in raw_client.list_objects("custody-originals", prefix=f"{case_id}/",
                                                                 recursive=True)]
    assert under_case and all(k.split("/")[1] == winner for k in under_case), under_case
    uploads = [u.object_name for u in raw_client._list_multipart_uploads("custody-originals",
                                                                         prefix=f"{case_id}/").uploads]
    assert uploads == []  # every part of a loser was aborted
    ingested = [e for e in view["events"] if e["action"] == "ingested"]  # type: ignore[index]
    assert len(ingested) == 3 and sorted(o["objects"][0]["sha256"] for o in stored) == sorted(
        hashlib.sha256(f.read_bytes()).hexdigest() for f in files)
    assert cli.json("verify", "--case", case_ref, "--exhibit", "RACE/1")["result"] == "PASS"  # type: ignore[index]

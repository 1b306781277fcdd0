"""Power-loss recovery through the product: `custody recover` + `custody extract` on a real store, the API and
the portal, on ffmpeg clips cut the way a dying battery cuts them.

Every claim is checked against the uncut recording: its own index says which samples survive the cut, and
its decoded frames' pixel hashes are what the recovered working copy (fetched back from the store, hash
checked) and the stills `custody extract` takes from it must reproduce.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.evidence import object_id
from tests import recovery_footage as rf
from tests.conftest import Cli
from tests.test_api import ApiServer, add_user

SECONDS = 4


@dataclass
class Cam:
    full: Path
    ref: Path | None
    table: list[rf.Sample]
    hashes: list[str]  # the uncut file's decoded frames, in order

    @property
    def video(self) -> list[rf.Sample]:
        return [s for s in self.table if s.kind == "video"]


@pytest.fixture(scope="module")
def cams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cam]:
    """One camera per codec/audio combination: a recording to damage and a different one as its reference."""
    d = tmp_path_factory.mktemp("cams")
    out = {}
    for name, kw in {"h264-aac": {"codec": "h264", "audio": True}, "h264-mute": {"codec": "h264", "audio": False},
                     "hevc-aac": {"codec": "hevc", "audio": True}, "hevc-mute": {"codec": "hevc", "audio": False},
                     "h264-inband": {"codec": "h264", "audio": True, "inband": True}}.items():
        full = rf.record(d / f"{name}.mp4", seconds=SECONDS, seed=1, **kw)  # type: ignore[arg-type]
        ref = None if "inband" in name else rf.record(d / f"{name}_ref.mp4", seconds=2, seed=2,
                                                      **kw)  # type: ignore[arg-type]
        out[name] = Cam(full, ref, rf.sample_table(full), rf.frame_hashes(full))
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ingest(cli: Cli, case: str, exhibit: str, path: Path) -> dict[str, Any]:
    out: Any = cli.json("ingest", str(path), "--case", case, "--exhibit", exhibit, "--officer", "DC Battery")
    return out["objects"][0]


def _events(cli: Cli, case: str, exhibit: str) -> list[dict[str, Any]]:
    view: Any = cli.json("exhibit", "show", "--case", case, "--exhibit", exhibit)
    return view["events"]


def _damaged(cam: Cam, tmp: Path, keep: float, name: str = "JB-1.mp4") -> tuple[Path, list[rf.Sample]]:
    damaged = rf.cut(cam.full, tmp / name, keep)
    n = damaged.stat().st_size
    return damaged, [s for s in cam.video if s.pos + s.size <= n]


def _fetch(evidence: Any, copy: dict[str, Any], dest: Path) -> Path:
    """The working copy as custody holds it, hash-checked on the way out."""
    evidence.store.download_verified(copy["bucket"], copy["key"], copy["version_id"], copy["sha256"], dest)
    return dest


def _mismatches(cam: Cam, details: dict[str, Any], copy: Path) -> list[int]:
    """Uncut frame indices whose pixels differ in the copy; frames are placed by the event's own segments."""
    video = cam.video
    index_of = {s.pos: i for i, s in enumerate(video)}
    used = [i for i, s in enumerate(video) if any(a <= s.pos and s.pos + s.size <= b for a, b in details["bytes_used"])]
    assert len(used) == details["frames"], "recovered samples must be exactly the uncut file's samples"
    frame_s = 1 / float(details["video"]["fps"])  # floats are decimal strings in canonical events
    differ = []
    for pts_s, h in rf.frame_hashes_with_pts(copy):
        seg = next(s for s in reversed(details["segments"]) if pts_s >= float(s["start_s"]) - 1e-6)
        i = used[used.index(index_of[seg["offset"]]) + round((pts_s - float(seg["start_s"])) / frame_s)]
        if cam.hashes[i] != h:
            differ.append(i)
    return differ


@pytest.mark.parametrize(("camera", "keep", "how"), [("h264-aac", 0.6, "exhibit"), ("hevc-mute", 0.3, "object-id"),
                                                     ("hevc-aac", 0.9, "file"), ("h264-mute", 0.3, "exhibit")])
def test_recover_then_extract_every_surviving_frame_bit_exact(cli: Cli, case_ref: str, cams: dict[str, Cam],
                                                              evidence: Any, tmp_path: Path, camera: str,
                                                              keep: float, how: str) -> None:
    cam = cams[camera]
    damaged, surviving = _damaged(cam, tmp_path, keep)
    orig = _ingest(cli, case_ref, "JB/1", damaged)
    assert orig["status"] == "truncated" and "custody recover" in orig["message"]
    args = ["recover", "JB/1", "--case", case_ref]
    if how == "file":
        args += ["--reference-file", str(cam.ref), "--reference-exhibit", "REF/1"]
    else:
        ref = _ingest(cli, case_ref, "REF/1", cam.ref)  # type: ignore[arg-type]
        args += (["--reference-exhibit", "REF/1"] if how == "exhibit"
                 else ["--reference", object_id(ref["bucket"], ref["key"])])
    out: Any = cli.json(*args)
    (r,) = out["results"]
    assert r["status"] == "recovered" and r["action"] == "recovered", r["message"]
    assert r["frames"] >= 0.95 * len(surviving) and r["frames"] == len(surviving)
    # The event names the reference by its custody record, in the exhibit it belongs to.
    (ingested_ref,) = [e for e in _events(cli, case_ref, "REF/1") if e["action"] in ("ingested", "duplicate_linked")]
    ref_obj = ingested_ref["objects"][0]
    if how == "file":
        assert ingested_ref["parameters"]["source"] == "recovery-reference" and ref_obj["sha256"] == _sha(cam.ref)
    (event,) = [e for e in _events(cli, case_ref, "JB/1") if e["action"] == "recovered"]
    assert event["seq"] == r["event_seq"]
    p, d = event["parameters"], event["details"]
    want_ref = {k: ref_obj[k] for k in ("bucket", "key", "version_id", "sha256")}
    assert {k: p["reference"][k] for k in want_ref} == want_ref
    assert p["reference"]["exhibit"] == "REF/1" and p["reference"]["exhibit_id"] == ingested_ref["exhibit"]["id"]
    assert p["method"] == f"reference:{ref_obj['sha256']}" and p["source"]["sha256"] == orig["sha256"]
    assert d["frames"] == r["frames"] and d["bytes_used"] and d["bytes_skipped"][-1]["reason"]
    assert {"recovery", "libavcodec", "pyav"} <= set(event["tools"])
    assert "custody-recover-" not in json.dumps(event) and str(tmp_path) not in json.dumps(event)  # no local paths
    (copy,) = [o for o in event["objects"] if o["role"] == "derived"]
    assert copy["kind"] == "recovered_working_copy" and copy["status"] == "recovered"
    assert copy["original_name"] == "JB-1.recovered.mp4" and "RECOVERED" in copy["info"]["label"]
    assert copy["source"] == {k: orig[k] for k in ("bucket", "key", "version_id", "sha256")}
    assert copy["sha256"] == d["output"]["sha256"] == r["recovered"]["sha256"]
    # Every recovered frame decodes to the uncut recording's pixels; the original is untouched.
    local = _fetch(evidence, copy, tmp_path / "copy.mp4")
    assert rf.frame_hashes(local) == cam.hashes[:len(surviving)]
    assert _mismatches(cam, d, local) == []
    evidence.store.download_verified(orig["bucket"], orig["key"], orig["version_id"], _sha(damaged),
                                     tmp_path / "orig.mp4")


def test_stills_review_and_bundle_follow_the_working_copy(cli: Cli, case_ref: str, cams: dict[str, Cam],
                                                          tmp_path: Path) -> None:
    """`custody extract` takes stills from the copy (pixels = the uncut file's); a repeat run reproduces the
    same bytes and stores nothing new; the bundle carries the copy labelled as such."""
    from pipeline.frames import ExtractParams, extract_frames

    cam = cams["h264-aac"]
    damaged, surviving = _damaged(cam, tmp_path, 0.6)
    _ingest(cli, case_ref, "JB/2", damaged)
    _ingest(cli, case_ref, "REF/2", cam.ref)  # type: ignore[arg-type]
    first: Any = cli.json("recover", "JB/2", "--case", case_ref, "--reference-exhibit", "REF/2")
    again: Any = cli.json("recover", "JB/2", "--case", case_ref, "--reference-exhibit", "REF/2")
    (a,), (b,) = first["results"], again["results"]
    assert b["action"] == "recovery_repeated" and b["repeated_of_event"] == a["event_seq"]
    assert b["recovered"]["sha256"] == a["recovered"]["sha256"], "recovery must be deterministic"
    assert b["recovered"]["key"] == a["recovered"]["key"]
    view: Any = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "JB/2")
    copies = [o for o in view["objects"] if o.get("kind") == "recovered_working_copy"]
    assert len(copies) == 1 and copies[0]["status"] == "recovered"

    res: Any = cli.json("extract", "JB/2", "--case", case_ref, "--every", "0.4s", "--workers", "1")
    (from_copy,) = [x for x in res["results"] if x["source"] == "JB-1.recovered.mp4"]
    assert from_copy["action"] == "frames_extracted" and from_copy["stills"] == len(range(0, len(surviving), 10))
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "JB/2")
    stills = [o for o in view["objects"] if o.get("kind") == "still" and o["source"]["key"] == copies[0]["key"]]
    uncut = extract_frames(cam.full, tmp_path / "uncut", ExtractParams(every_seconds=0.4), workers=1)
    want = {s.index: s.pixel_sha256 for s in uncut.stills}
    assert stills and all(want[s["info"]["index"]] == s["info"]["pixel_sha256"] for s in stills)

    cli.run("bundle", "--case", case_ref, "--exhibit", "JB/2", "--derived", "all", "--out", str(tmp_path / "b.zip"),
            "--recipient", "CPS reviewing lawyer", "--reason", "recovered footage for review")
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        names = z.namelist()
        (member,) = [n for n in names if "recovered_working_copy" in n]
        assert member.endswith("JB-1.recovered.mp4")
        assert hashlib.sha256(z.read(member)).hexdigest() == a["recovered"]["sha256"]
    cli.run("verify", str(tmp_path / "b.zip"))


def test_corrupted_region_gives_a_partial_copy_exact_outside_the_damage(cli: Cli, case_ref: str,
                                                                        cams: dict[str, Cam], evidence: Any,
                                                                        tmp_path: Path) -> None:
    cam = cams["h264-aac"]
    damaged, _ = _damaged(cam, tmp_path, 0.9)
    mid = next(i for i, s in enumerate(cam.video) if i >= len(cam.video) // 2 and i % 25 == 8)
    bad = rf.corrupt(damaged, cam.video[mid].pos + cam.video[mid].size // 2, 16 << 10)
    n = damaged.stat().st_size
    hit = [i for i, s in enumerate(cam.video) if s.pos < bad[1] and s.pos + s.size > bad[0]]
    surviving = [i for i, s in enumerate(cam.video) if s.pos + s.size <= n and i not in hit]
    _ingest(cli, case_ref, "JB/3", damaged)
    _ingest(cli, case_ref, "REF/3", cam.ref)  # type: ignore[arg-type]
    out: Any = cli.json("recover", "JB/3", "--case", case_ref, "--reference-exhibit", "REF/3")
    (r,) = out["results"]
    assert r["status"] == "partial" and "may show artefacts" in r["message"]
    assert r["frames"] >= 0.95 * len(surviving)
    (event,) = [e for e in _events(cli, case_ref, "JB/3") if e["action"] == "recovered"]
    d = event["details"]
    (lost,) = [s for s in d["bytes_skipped"] if s["reason"].startswith("damaged")]
    assert lost["start"] <= bad[0] and lost["end"] >= bad[1] and lost["estimated_frames_lost"] == len(hit)
    (copy,) = [o for o in event["objects"] if o["role"] == "derived"]
    assert copy["status"] == "partial"
    next_key = next(i for i, s in enumerate(cam.video) if s.key and i > hit[-1])
    differ = _mismatches(cam, d, _fetch(evidence, copy, tmp_path / "copy.mp4"))
    assert all(hit[-1] < i < next_key for i in differ), differ


def test_in_band_parameter_sets_recover_without_a_reference(cli: Cli, case_ref: str, cams: dict[str, Cam],
                                                           evidence: Any, tmp_path: Path) -> None:
    cam = cams["h264-inband"]
    damaged, surviving = _damaged(cam, tmp_path, 0.6)
    _ingest(cli, case_ref, "JB/4", damaged)
    out: Any = cli.json("recover", "JB/4", "--case", case_ref)
    (r,) = out["results"]
    assert r["status"] == "recovered" and r["frames"] == len(surviving) and out["reference"] is None
    (event,) = [e for e in _events(cli, case_ref, "JB/4") if e["action"] == "recovered"]
    assert event["parameters"]["method"] == "in-band" and event["parameters"]["reference"] is None
    (copy,) = [o for o in event["objects"] if o["role"] == "derived"]
    assert rf.frame_hashes(_fetch(evidence, copy, tmp_path / "copy.mp4")) == cam.hashes[:len(surviving)]


def test_no_reference_and_no_in_band_parameters_is_a_clear_recorded_failure(cli: Cli, case_ref: str,
                                                                           cams: dict[str, Cam],
                                                                           tmp_path: Path) -> None:
    damaged, _ = _damaged(cams["hevc-aac"], tmp_path, 0.6)
    _ingest(cli, case_ref, "JB/5", damaged)
    proc = cli.run("recover", "JB/5", "--case", case_ref, "--json", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "no reference file and no in-band SPS/PPS: supply --reference" in proc.stderr
    assert re.search(r"recorded as event #\d+", proc.stderr)
    out = json.loads(proc.stdout)
    (r,) = out["results"]
    assert r["status"] == "impossible" and r["recovered"] is None and r["action"] == "recovery_impossible"
    events = _events(cli, case_ref, "JB/5")
    (event,) = [e for e in events if e["action"] == "recovery_impossible"]
    assert event["details"]["tried"] == ["in-band parameter sets (no reference given)"]
    assert not [o for e in events for o in e["objects"] if o.get("kind") == "recovered_working_copy"]
    # Asking for something that is not there is a usage error before anything is fetched.
    bad = cli.run("recover", "JB/5", "--case", case_ref, "--object", "nope.mp4", check=False)
    assert bad.returncode == 2 and "no original 'nope.mp4'" in bad.stderr


def test_object_ids_match_the_apis() -> None:
    from pipeline.api.cases import object_id as api_object_id

    assert object_id("b", "k/1") == api_object_id("b", "k/1")


# ---- API and portal ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = ApiServer(cli, tmp_path_factory.mktemp("recover-api") / "serve.log")
    yield srv
    srv.stop()


@dataclass
class World:
    case_ref: str
    case_id: str
    exhibit_id: str
    damaged_id: str
    reference_id: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def world(cli: Cli, cams: dict[str, Cam], tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("recover-world")
    case_ref = f"OP-RW/{uuid.uuid4().hex[:8]}"
    case: Any = cli.json("case", "create", "--ref", case_ref)
    cam = cams["hevc-mute"]
    damaged, _ = _damaged(cam, tmp, 0.6, "CAM-7.mp4")
    up: Any = cli.json("ingest", str(damaged), str(cam.ref), "--case", case_ref, "--exhibit", "RW/1",
                       "--officer", "DC W")
    dmg, ref = up["objects"]
    tokens = {}
    for who, role in (("inv", "investigator"), ("off", "officer"), ("sup", "supervisor"),
                      ("stranger", "investigator")):
        name, tokens[who] = add_user(cli, role, who)
        if who in ("inv", "off"):
            cli.run("user", "assign", name, "--case", case_ref)
    return World(case_ref, case["case_id"], up["exhibit_id"], object_id(dmg["bucket"], dmg["key"]),
                 object_id(ref["bucket"], ref["key"]), tokens)


def test_api_recovers_for_investigators_on_the_case_only(server: ApiServer, world: World) -> None:
    url = f"{server.url}/api/cases/{world.case_id}/exhibits/{world.exhibit_id}/recover"
    body = {"object_id": world.damaged_id, "reference_object_id": world.reference_id}
    for who in ("off", "stranger"):
        r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {world.tokens[who]}"}, timeout=120)
        assert r.status_code == 403, (who, r.text)
    r = httpx.post(url, json={"reference_name": "x"}, headers={"Authorization": f"Bearer {world.tokens['inv']}"})
    assert r.status_code == 400 and "reference_exhibit_id" in r.json()["detail"]
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {world.tokens['inv']}"}, timeout=120)
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["status"] == "recovered" and res["action"] in ("recovered", "recovery_repeated")
    assert r.json()["reference"]["object_id"] == world.reference_id
    custody = httpx.get(f"{server.url}/api/cases/{world.case_id}/exhibits/{world.exhibit_id}/custody",
                        headers={"Authorization": f"Bearer {world.tokens['sup']}"}).json()
    (event,) = [e for e in custody["events"] if e["seq"] == res["event_seq"]]
    assert event["parameters"]["via"] == "api" and event["actor"]["role"] == "investigator"


@contextmanager
def _portal(server: ApiServer, token: str) -> Iterator[httpx.Client]:
    """A signed-in portal session, over real HTTP (the sign-in form's double-submit CSRF token included)."""
    with httpx.Client(base_url=server.url, timeout=120) as c:
        page = c.get("/signin")
        pre = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert c.post("/signin", data={"token": token, "csrf": pre}).status_code == 303
        yield c


def test_portal_offers_recovery_on_truncated_originals_and_runs_it(server: ApiServer, world: World) -> None:
    base = f"/cases/{world.case_id}/exhibits/{world.exhibit_id}"
    with _portal(server, world.tokens["inv"]) as c:
        page = c.get(base)
        assert page.status_code == 200 and f'id="recover-{world.damaged_id}"' in page.text
        assert f'id="recover-{world.reference_id}"' not in page.text  # healthy originals get no button
        form = c.get(f"{base}/objects/{world.damaged_id}/recover")
        assert form.status_code == 200 and world.reference_id in form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        done = c.post(f"{base}/objects/{world.damaged_id}/recover",
                      data={"csrf": csrf, "reference": world.reference_id})
        assert done.status_code == 200, done.text
        assert re.search(r'id="recovery-status">(recovered|partial)<', done.text), done.text
        assert "CAM-7.recovered.mp4" in done.text
        forged = c.post(f"{base}/objects/{world.damaged_id}/recover", data={"csrf": "x", "reference": "none"})
        assert forged.status_code == 403
    with _portal(server, world.tokens["off"]) as c:
        assert 'id="recover-' not in c.get(base).text
        assert c.get(f"{base}/objects/{world.damaged_id}/recover").status_code == 403

"""Seized media is hostile (issue 16, findings 1, 6 and 8): real CLI, real S3.

A card holding links to the examiner's signing key and /etc/passwd, a hard link into CUSTODY_HOME,
a FIFO, a link loop; a card that changes between listing and reading; a rerun of the same card;
officer names with bidi controls. What reaches the store must be exactly the card's regular files.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli


def _stored_bytes(raw_client: Any, results: list[dict[str, Any]]) -> dict[str, bytes]:
    out = {}
    for r in results:
        resp = raw_client.get_object(r["bucket"], r["key"], version_id=r["version_id"])
        try:
            out[r["source_path"]] = resp.read()
        finally:
            resp.close()
            resp.release_conn()
    return out


def _events(cli: Cli, case_ref: str, exhibit: str) -> list[dict[str, Any]]:
    return cli.json("exhibit", "show", "--case", case_ref, "--exhibit", exhibit)["events"]  # type: ignore[index]


def test_links_on_a_card_are_recorded_never_followed(cli: Cli, case_ref: str, tmp_path: Path,
                                                     raw_client: Any) -> None:
    """Finding 1: `DCIM0001.MP4 -> $CUSTODY_HOME/keys/signing-ed25519.pem` stored the private key as evidence."""
    key = cli.home / "keys" / "signing-ed25519.pem"
    card = tmp_path / "card"
    (card / "DCIM" / "100MEDIA").mkdir(parents=True)
    clip = os.urandom(3000)
    (card / "DCIM" / "100MEDIA" / "REAL0001.MP4").write_bytes(clip)
    (card / "DCIM0001.MP4").symlink_to(key)
    (card / "DCIM" / "passwd.JPG").symlink_to("/etc/passwd")
    (card / "DCIM" / "up").symlink_to("..")  # a loop, if it were followed
    (card / "DCIM" / "keys").symlink_to(cli.home / "keys")  # a link to a folder of the home
    os.link(key, card / "HARD0001.MP4")  # a hard link: same inode as the key, no link to see
    os.mkfifo(card / "PIPE0001.MP4")  # would block a reader for ever
    out: Any = cli.json("upload", str(card), "--case", case_ref, "--exhibit", "LNK/1", "--officer", "DC Link",
                        timeout=120)
    assert [r["source_path"] for r in out["objects"]] == ["card/DCIM/100MEDIA/REAL0001.MP4"]
    assert _stored_bytes(raw_client, out["objects"]) == {"card/DCIM/100MEDIA/REAL0001.MP4": clip}
    by_path = {o["path"]: o for o in out["not_stored"]}
    assert by_path["card/DCIM0001.MP4"]["status"] == "link_recorded"
    assert by_path["card/DCIM0001.MP4"]["target"] == str(key)
    assert by_path["card/DCIM/passwd.JPG"] == {**by_path["card/DCIM/passwd.JPG"], "status": "link_recorded",
                                               "target": "/etc/passwd"}
    assert by_path["card/DCIM/up"]["status"] == "link_recorded"
    assert by_path["card/DCIM/keys"]["status"] in ("link_recorded", "refused_custody_home")
    assert by_path["card/HARD0001.MP4"]["status"] == "refused_custody_home"
    assert by_path["card/PIPE0001.MP4"]["status"] == "refused_fifo"
    # the seizure record says what the card held, links with their target text
    (rec,) = [e for e in _events(cli, case_ref, "LNK/1") if e["action"] == "items_not_stored"]
    recorded = {i["path"]: i for i in rec["details"]["items"]}
    assert recorded["card/DCIM0001.MP4"]["target"] == str(key)
    assert set(recorded) == set(by_path)
    # nothing of the key (or of /etc/passwd) is anywhere in the originals bucket
    secret = key.read_bytes()
    for o in raw_client.list_objects("custody-originals", prefix=f"{out['case_id']}/", recursive=True):
        resp = raw_client.get_object("custody-originals", o.object_name)
        try:
            body = resp.read()
        finally:
            resp.close()
            resp.release_conn()
        assert secret not in body and b"root:x:0:0" not in body


def test_nothing_under_custody_home_is_ingestible(cli: Cli, case_ref: str) -> None:
    for target in (cli.home / "keys", cli.home / "keys" / "signing-ed25519.pem", cli.home):
        r = cli.run("ingest", str(target), "--case", case_ref, "--exhibit", "HOME/1", "--officer", "DC H",
                    check=False)
        assert r.returncode == 2 and "CUSTODY_HOME" in r.stderr, r.stderr


def test_a_card_that_changes_between_listing_and_reading_is_not_read(evidence: Any, case_ref: str,
                                                                      tmp_path: Path) -> None:
    """TOCTOU: the walk saw a regular file; by the time it is opened the name is a link to the key."""
    from pipeline.cli.intake import store_walk
    from pipeline.custody.actor import Actor
    from pipeline.intake.files import walk_sources

    card = tmp_path / "card"
    card.mkdir()
    for n in ("A", "B", "C"):
        (card / f"{n}.MP4").write_bytes(n.encode() * 100)
    walk = walk_sources([card], evidence.settings.home)
    assert [i.name for i in walk.files] == ["A.MP4", "B.MP4", "C.MP4"]
    (card / "A.MP4").unlink()
    (card / "A.MP4").symlink_to(evidence.settings.signing_key_path)  # swapped after the walk
    (card / "B.MP4").unlink()
    os.mkfifo(card / "B.MP4")  # a reader opening this would block for ever
    os.link(card / "C.MP4", tmp_path / "kept")  # keeps C's inode alive, so it can't be reused
    (card / "C.MP4").unlink()
    (card / "C.MP4").write_bytes(b"x" * 100)  # another file under the listed name
    who = Actor("pytest", "officer")
    c, e = evidence.ensure_exhibit(case_ref, "TOC/1", "DC T", who)
    results, others, _ = store_walk(evidence, c, e, walk, "field-upload", {}, ("sha256",), who)
    assert results == []
    assert {o["path"]: o["status"] for o in others} == {f"card/{n}.MP4": "refused_changed" for n in "ABC"}


def test_rerun_of_the_same_card_recognises_what_it_stored(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    """Finding 8 (second half): a rerun added a `duplicate_linked` per file instead of recognising them."""
    card = tmp_path / "card"
    card.mkdir()
    for i in range(5):
        (card / f"IMG{i:04d}.JPG").write_bytes(os.urandom(500 + i))
    (card / "SAME.JPG").write_bytes((card / "IMG0000.JPG").read_bytes())  # one true duplicate on the card
    (card / "LINK.JPG").symlink_to("/etc/hostname")
    args = ("upload", str(card), "--case", case_ref, "--exhibit", "RERUN/1", "--officer", "DC R")
    first: Any = cli.json(*args)
    assert sum(r["linked"] for r in first["objects"]) == 1
    n_events = len(_events(cli, case_ref, "RERUN/1"))
    second = cli.run(*args)
    assert "already stored from this card: 6 file(s)" in second.stderr, second.stderr
    assert len(_events(cli, case_ref, "RERUN/1")) == n_events  # nothing recorded twice, the link neither
    (card / "NEW0001.JPG").write_bytes(os.urandom(700))
    third: Any = cli.json(*args)
    assert [r["source_path"] for r in third["objects"] if r["status"] != "already_stored"] == ["card/NEW0001.JPG"]
    actions = [e["action"] for e in _events(cli, case_ref, "RERUN/1")[n_events:]]
    assert actions == ["ingested"]


def test_bidi_and_invisible_characters_are_stripped_from_human_text(cli: Cli, case_ref: str,
                                                                    tmp_path: Path) -> None:
    """Finding 6: U+202E was accepted in officer names and descriptions."""
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    out: Any = cli.json("upload", str(f), "--case", case_ref, "--exhibit", "BIDI/1",
                        "--officer", "DC Smith\u202e1/BJ\u200b", "--description", "front\u2066 door\u0007",
                        "--location", "12\u202d High St\u200f", "--device", "Sony\u00adCam")
    ev0, ev1 = _events(cli, case_ref, "BIDI/1")[:2]
    assert ev0["exhibit"]["officer"] == "DC Smith1/BJ" and ev0["parameters"]["description"] == "front door"
    assert ev1["parameters"]["location"] == "12 High St" and ev1["parameters"]["device"] == "SonyCam"
    assert out["objects"][0]["status"] == "not_media"
    r = cli.run("case", "create", "--ref", f"OP-B/{uuid.uuid4().hex[:6]}", "--title", "\u202e\u2067", check=False)
    assert r.returncode == 0  # an all-invisible title is just empty
    bad = cli.run("upload", str(f), "--case", case_ref, "--exhibit", "BIDI/2", "--officer", "\u202e\u200b",
                  check=False)
    assert bad.returncode == 2 and "must not be empty" in bad.stderr


@pytest.mark.parametrize("value,clean", [("DC\u202eSmith", "DCSmith"), ("a\u2066b\u2069", "ab"),
                                         ("tab\there  x", "tab here x"), ("e\u0301", "\u00e9"),
                                         ("zero\u200bwidth\ufeff", "zerowidth"), ("c1\x85x\x9b", "c1x")])
def test_clean_human_text_rule(value: str, clean: str) -> None:
    from pipeline.text import clean_human_text, escape_invisible

    assert clean_human_text(value, "x") == clean
    assert "\u202e" not in escape_invisible("a\u202eb") and "\\u202e" in escape_invisible("a\u202eb")
    assert escape_invisible(os.fsdecode(b"bad\xff.mp4")) == "bad\\xff.mp4"


def test_sha_of_stored_equals_card(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    """Odd names (newline, bidi, invalid UTF-8) are stored byte for byte, their names recorded visibly."""
    card = tmp_path / "odd"
    card.mkdir()
    names = [b"new\nline.MP4", "bidi\u202egpj.exe".encode(), b"bad\xff\xfe.MP4", b" lead space"]
    data = {}
    for i, n in enumerate(names):
        p = os.path.join(os.fsencode(card), n)
        data[n] = os.urandom(100 + i)
        with open(p, "wb") as fh:
            fh.write(data[n])
    out: Any = cli.json("ingest", str(card), "--case", case_ref, "--exhibit", "ODD/1", "--officer", "DC O")
    got = {r["sha256"] for r in out["objects"]}
    assert got == {hashlib.sha256(d).hexdigest() for d in data.values()}
    shown = {r["source_path"] for r in out["objects"]}
    assert "odd/bad\\xff\\xfe.MP4" in shown and "odd/bidi\\u202egpj.exe" in shown
    assert all("\u202e" not in r["original_name"] and "\n" not in r["original_name"] for r in out["objects"])

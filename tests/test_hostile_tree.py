"""Property tests of intake over generated hostile trees (issue 16).

Hypothesis builds trees of regular files with odd names (newlines, bidi controls, invalid UTF-8),
symbolic links to files and folders inside and outside the tree and into CUSTODY_HOME, hard links
to the home's key, link loops, FIFOs, sockets and deep nesting, next to canary files outside the
tree. Whatever the tree: nothing outside it is read, every regular file is read (and stored, in
the real-S3 variant) byte for byte, every link is recorded with its exact target text, and every
special file is refused with its status.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAME_PIECES = [b"DCIM", b"a", b"IMG_0001.JPG", b"new\nline", "bidi\u202egpj.exe".encode(), b"bad\xff\xfe",
               b" space ", b"-rf", b"..x", b"\xe2\x80\x8bzw", "\u00e9t\u00e9".encode(), b"CON", b"a" * 200]


@dataclass
class Built:
    root: Path
    files: dict[bytes, bytes] = field(default_factory=dict)  # path below root -> content
    links: dict[bytes, bytes] = field(default_factory=dict)  # path below root -> target text
    special: dict[bytes, str] = field(default_factory=dict)  # path below root -> expected status
    canaries: list[bytes] = field(default_factory=list)  # contents that must never be read
    inodes: set[tuple[int, int]] = field(default_factory=set)  # regular files of the tree


entry = st.tuples(st.lists(st.sampled_from(NAME_PIECES), min_size=1, max_size=4),
                  st.sampled_from(["file", "file", "file", "link_in", "link_out", "link_key", "link_home_dir",
                                   "link_loop", "dangling", "hard_key", "fifo", "socket", "empty"]),
                  st.binary(min_size=0, max_size=300))


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def build(base: Path, entries: list[Any], home: Path) -> Built:
    key = home / "keys" / "signing-ed25519.pem"
    outside = base / "outside"
    outside.mkdir()
    b = Built(base / "card")
    b.root.mkdir()
    for i in range(3):
        data = f"CANARY-{i}-".encode() + os.urandom(16)
        (outside / f"c{i}").write_bytes(data)
        b.canaries.append(data)
    b.canaries.append(key.read_bytes())
    rootb = os.fsencode(b.root)
    taken: set[bytes] = set()
    for n, (pieces, kind, data) in enumerate(entries):
        rel = b"/".join(pieces[:-1] + [pieces[-1] + str(n).encode()])  # unique leaf, shared folders
        parent = os.path.dirname(rel)
        if any(rel.startswith(t + b"/") or t.startswith(rel + b"/") or t == rel for t in taken) or any(
                parent == t or parent.startswith(t + b"/") for t in taken):
            continue  # a file where a folder would go (or the reverse): skip, as a real card can't have both
        full = os.path.join(rootb, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        taken.add(rel)
        if kind in ("file", "empty"):
            content = b"" if kind == "empty" else data + n.to_bytes(4, "big")
            with open(full, "wb") as f:
                f.write(content)
            b.files[rel] = content
            s = os.stat(full)
            b.inodes.add((s.st_dev, s.st_ino))
            continue
        target = {"link_in": b"../" * rel.count(b"/") + (next(iter(b.files), b"x")),
                  "link_out": os.fsencode(outside / "c0"), "link_key": os.fsencode(key),
                  "link_home_dir": os.fsencode(home), "link_loop": b".", "dangling": b"/nonexistent/\xff"}.get(kind)
        if target is not None:
            os.symlink(target, full)
            b.links[rel] = target
        elif kind == "hard_key":
            os.link(key, full)
            b.special[rel] = "refused_custody_home"
        elif kind == "fifo":
            os.mkfifo(full)
            b.special[rel] = "refused_fifo"
        elif kind == "socket":
            with _cwd(Path(os.fsdecode(os.path.dirname(full)))):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.bind(os.path.basename(full))
                except OSError:  # a name the socket API won't take: no socket then
                    taken.discard(rel)
                    continue
                finally:
                    s.close()
            b.special[rel] = "refused_socket"
    return b


def _fake_home(base: Path) -> Path:
    home = base / "home"
    (home / "keys").mkdir(parents=True)
    (home / "secrets").mkdir()
    (home / "keys" / "signing-ed25519.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----" + os.urandom(32))
    (home / "secrets" / "s3.json").write_bytes(b'{"secret_key": "' + os.urandom(8).hex().encode() + b'"}')
    return home


def _below(item: Any) -> bytes:
    return os.fsencode("/".join(item.parts))


def read_everything(built: Built, home: Path) -> tuple[dict[bytes, bytes], dict[bytes, dict[str, str]]]:
    """What intake would read: every file through `open_pinned`, checked against the tree's own inodes."""
    from pipeline.intake.files import HomeGuard, open_pinned, walk_sources

    walk = walk_sources([built.root], home)
    guard = HomeGuard(home)
    read: dict[bytes, bytes] = {}
    for item in walk.files:
        with open_pinned(item, guard) as pinned:
            s = os.stat(pinned)
            assert stat.S_ISREG(s.st_mode) and (s.st_dev, s.st_ino) in built.inodes, item.path
            read[_below(item)] = Path(pinned).read_bytes()
    return read, {_below(o): o.as_record() for o in walk.others}


def _check(built: Built, read: dict[bytes, bytes], others: dict[bytes, dict[str, str]]) -> None:
    from pipeline.text import escape_invisible

    assert read == built.files  # every regular file, byte for byte, and nothing else
    for data in read.values():
        assert not any(c in data for c in built.canaries if c)
    for rel, target in built.links.items():
        assert others[rel]["status"] in ("link_recorded", "refused_custody_home")
        if others[rel]["status"] == "link_recorded":
            assert others[rel]["target"] == escape_invisible(os.fsdecode(target))
    for rel, status in built.special.items():
        assert others[rel]["status"] == status, (rel, others[rel])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entry, min_size=1, max_size=25))
def test_hostile_trees_read_only_their_own_regular_files(entries: list[Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="custody-tree-") as d:
        base = Path(d)
        home = _fake_home(base)
        built = build(base, entries, home)
        if not built.files and not built.links and not built.special:
            return
        read, others = read_everything(built, home)
        _check(built, read, others)


def test_deep_nesting_and_loops_are_recorded_not_followed(tmp_path: Path) -> None:
    from pipeline.intake.files import MAX_DEPTH

    home = _fake_home(tmp_path)
    card = tmp_path / "card"
    card.mkdir()
    fd = os.open(card, os.O_RDONLY)
    try:  # 300 levels of 200-byte names: far past PATH_MAX, built relative to each folder
        for _ in range(300):
            os.mkdir("d" * 200, dir_fd=fd)
            nfd = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.symlink("../..", "up", dir_fd=fd)
    finally:
        os.close(fd)
    (card / "top.bin").write_bytes(b"top")
    built = Built(card, files={b"top.bin": b"top"}, inodes={(os.stat(card / "top.bin").st_dev,
                                                            os.stat(card / "top.bin").st_ino)})
    read, others = read_everything(built, home)
    assert read == {b"top.bin": b"top"}
    (deep,) = [o for o in others.values() if o["status"] == "refused_too_deep"]
    assert deep["path"].count("/") == MAX_DEPTH + 1


def test_ten_thousand_files_are_all_read_byte_for_byte(tmp_path: Path) -> None:
    home = _fake_home(tmp_path)
    card = tmp_path / "card"
    built = Built(card)
    for i in range(10_000):
        rel = f"DCIM/{i // 500:03d}MEDIA/IMG_{i:05d}.JPG".encode()
        p = Path(os.fsdecode(os.path.join(os.fsencode(card), rel)))
        p.parent.mkdir(parents=True, exist_ok=True)
        data = hashlib.sha256(str(i).encode()).digest()
        p.write_bytes(data)
        built.files[rel] = data
        s = p.stat()
        built.inodes.add((s.st_dev, s.st_ino))
    read, others = read_everything(built, home)
    assert others == {}
    _check(built, read, others)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(entry, min_size=3, max_size=12))
def test_hostile_trees_through_the_real_store(evidence: Any, raw_client: Any, entries: list[Any]) -> None:
    """The same property end to end: `store_walk` into real S3, stored bytes compared with the tree."""
    import uuid

    from pipeline.cli.intake import store_walk
    from pipeline.custody.actor import Actor
    from pipeline.intake.files import walk_sources

    with tempfile.TemporaryDirectory(prefix="custody-tree-") as d:
        base = Path(d)
        built = build(base, entries, evidence.settings.home)
        if not built.files and not built.links and not built.special:
            return
        who = Actor("pytest", "officer")
        c, e = evidence.ensure_exhibit(f"OP-TREE/{uuid.uuid4().hex[:8]}", "T/1", "DC Tree", who)
        walk = walk_sources([built.root], evidence.settings.home)
        results, others, _ = store_walk(evidence, c, e, walk, "field-upload", {}, ("sha256",), who)
        stored: dict[str, bytes] = {}
        for r in results:
            resp = raw_client.get_object(r["bucket"], r["key"], version_id=r["version_id"])
            try:
                stored[r["source_path"]] = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        from pipeline.text import escape_invisible

        want = {escape_invisible(os.fsdecode(b"card/" + rel)): data for rel, data in built.files.items()}
        assert stored == want
        assert {o["path"] for o in others} >= {escape_invisible(os.fsdecode(b"card/" + r)) for r in
                                               [*built.links, *built.special]}

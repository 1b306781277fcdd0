"""Honest outcomes, secrets and names (issue 16, findings 7 and 9): the real CLI against real S3.

Disk-full is simulated without privileges by RLIMIT_FSIZE with SIGXFSZ ignored: every write past
the limit fails with EFBIG through exactly the code path a full disk (ENOSPC) takes, on any machine
and in any CI (no mount, no root, no loop device). Where the test runs as root, the bundle case is
also run against a real 1 MiB tmpfs for a true ENOSPC.
"""

from __future__ import annotations

import json
import os
import pty
import resource
import select
import signal
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from tests.conftest import CUSTODY, Cli

WHY = ("--recipient", "CPS reviewing lawyer", "--reason", "test disclosure")


def _limited(max_bytes: int):  # type: ignore[no-untyped-def]
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return pre


def _run_limited(cli: Cli, max_bytes: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CUSTODY, *args], env=cli.env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(max_bytes))  # noqa: PLW1509 - nothing else runs in the child


def test_disk_full_after_the_upload_committed_is_success_with_a_warning(cli: Cli, case_ref: str,
                                                                        tmp_path: Path) -> None:
    """Finding 7: "internal error: OSError", exit 1, for an upload that succeeded; stale .tmp files."""
    card = tmp_path / "card"
    card.mkdir()
    (card / "clip.bin").write_bytes(os.urandom(4000))
    r = _run_limited(cli, 0, "upload", str(card), "--case", case_ref, "--exhibit", "FULL/1", "--officer", "DC F",
                     "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (obj,) = out["objects"]
    assert obj["status"] == "not_media" and out["warnings"], out
    assert any("stored and recorded" in w for w in out["warnings"]) and "internal error" not in r.stderr
    events = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "FULL/1")["events"]  # type: ignore
    assert [e["action"] for e in events] == ["exhibit_created", "ingested"]
    leftovers = list((cli.home / "witness").glob("*.tmp"))
    assert leftovers  # what the failed local write left behind...
    for p in leftovers:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    again = cli.run("upload", str(card), "--case", case_ref, "--exhibit", "FULL/1", "--officer", "DC F")
    assert "already stored from this card: 1 file(s)" in again.stderr
    assert "removed" in again.stderr and not any(p.exists() for p in leftovers)  # ...is repaired by the next run


def _bundle_exhibit(cli: Cli, case_ref: str, tmp_path: Path, size: int) -> None:
    f = tmp_path / "footage.bin"
    with open(f, "wb") as fh:
        for _ in range(size // (1 << 20)):
            fh.write(os.urandom(1 << 20))
    cli.run("upload", str(f), "--case", case_ref, "--exhibit", "BND/1", "--officer", "DC B")
    f.unlink()


def test_bundle_hitting_a_full_disk_leaves_nothing(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    """Finding 7: a bundle hitting ENOSPC left a 0-byte `.part`."""
    _bundle_exhibit(cli, case_ref, tmp_path, 2 << 20)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = _run_limited(cli, 256 * 1024, "bundle", "--case", case_ref, "--out", str(out_dir / "b.zip"), *WHY)
    assert r.returncode == 3, r.stderr
    assert "local disk problem" in r.stderr and "free space" in r.stderr
    assert list(out_dir.iterdir()) == []
    if os.geteuid() != 0:
        return
    small = tmp_path / "tmpfs"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        return  # no mount privilege (a container): the RLIMIT case above stands
    try:
        r = cli.run("bundle", "--case", case_ref, "--out", str(small / "b.zip"), *WHY, check=False)
        assert r.returncode == 3 and "No space left" in r.stderr, r.stderr
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_store_stopped_during_bundle_is_exit_3_and_leaves_nothing(tmp_path: Path) -> None:
    """Finding 7: S3 stopped during `custody bundle` gave exit 1, "internal error: ProtocolError".

    A home of its own: stopping the session's shared store would take every later test down with it. The
    restarted server must come back on the same endpoint, or running clients lose their store."""
    from pipeline.ops.stack import read_state, start_s3, stop_s3
    from pipeline.settings import load_settings

    own = Cli(tmp_path / "home")
    own.run("stack", "up", "--no-prefect")
    try:
        ref = f"OP-STOP/{uuid.uuid4().hex[:8]}"
        own.run("case", "create", "--ref", ref)
        _bundle_exhibit(own, ref, tmp_path, 256 << 20)
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        settings = load_settings(home=own.home)
        before = read_state(settings)
        assert before is not None
        proc = subprocess.Popen([CUSTODY, "bundle", "--case", ref, "--out", str(out_dir / "b.zip"), *WHY],
                                env=own.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > (8 << 20) for p in out_dir.glob("*.part")):
            assert proc.poll() is None and time.monotonic() < deadline, "bundle ended before S3 could be stopped"
            time.sleep(0.01)  # polling the file the bundle writes, not a delay
        stop_s3(settings)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 3, err
        assert "custody stack up" in err and "internal error" not in err
        assert list(out_dir.iterdir()) == []
        assert start_s3(settings).endpoint == before.endpoint
    finally:
        own.run("stack", "down", check=False)


def test_stack_status_hides_the_secret_key(cli: Cli, stack_status: dict) -> None:
    """Finding 9: `custody stack status --json` printed the S3 secret key."""
    plain: Any = cli.json("stack", "status")
    assert plain["secret_key"] is None and plain["secret_key_hidden"]
    assert stack_status["secret_key"] and stack_status["secret_key"] not in json.dumps(plain)
    human = cli.run("stack", "status")
    assert stack_status["secret_key"] not in human.stdout + human.stderr
    assert cli.json("stack", "status", "--show-secrets")["secret_key"] == stack_status["secret_key"]  # type: ignore


def test_every_action_has_a_named_actor_never_the_os_user(cli: Cli, tmp_path: Path) -> None:
    """Finding 9: actions were attributed to "root (operator)" and bundles "Prepared by: root"."""
    ref = f"OP-WHO/{uuid.uuid4().hex[:8]}"
    r = cli.run("case", "create", "--ref", ref, env={"CUSTODY_ACTOR": ""}, check=False)
    assert r.returncode == 2 and "--actor" in r.stderr and "CUSTODY_ACTOR" in r.stderr, r.stderr
    cli.run("--actor", "DS Named\u202e Person", "case", "create", "--ref", ref, env={"CUSTODY_ACTOR": ""})
    f = tmp_path / "a.bin"
    f.write_bytes(b"a")
    cli.run("upload", str(f), "--case", ref, "--exhibit", "W/1", "--officer", "DC Officer", env={"CUSTODY_ACTOR": ""})
    out: Any = cli.json("--actor", "DS Bundler", "bundle", "--case", ref, "--out", str(tmp_path / "b.zip"), *WHY,
                        env={"CUSTODY_ACTOR": ""})
    with zipfile.ZipFile(out["path"]) as z:
        info = next(n for n in z.namelist() if n.endswith("/bag-info.txt"))
        assert "Prepared-By: DS Bundler (operator)" in z.read(info).decode()
    events = cli.json("exhibit", "show", "--case", ref, "--exhibit", "W/1")["events"]  # type: ignore[index]
    assert {e["actor"]["name"] for e in events} == {"DC Officer", "DS Bundler"}
    assert "root" not in {e["actor"]["name"] for e in events}


def test_first_run_on_a_terminal_asks_who_is_acting(cli: Cli, stack_status: dict, tmp_path: Path) -> None:
    """On an interactive terminal the first run asks once and keeps the answer in settings.json."""
    home = tmp_path / "field-laptop"
    env = {**cli.env, "CUSTODY_HOME": str(home), "CUSTODY_ACTOR": "", "CUSTODY_S3_ENDPOINT": stack_status["endpoint"],
           "CUSTODY_S3_ACCESS_KEY": stack_status["access_key"], "CUSTODY_S3_SECRET_KEY": stack_status["secret_key"]}
    env.pop("CUSTODY_ACTOR")
    master, slave = pty.openpty()
    ref = f"OP-TTY/{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([CUSTODY, "case", "create", "--ref", ref], env=env, stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"Who is acting" not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 1024)
        os.write(master, b"DC Field Laptop\n")
        assert proc.wait(60) == 0
    finally:
        os.close(master)
    assert json.loads((home / "settings.json").read_text())["actor"] == "DC Field Laptop"

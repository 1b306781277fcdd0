"""The warm command server (`pipeline.cli.command_server`): a command it runs behaves as the same command run in
its own process: output, exit code, working directory, environment, terminal, signals, being killed, and code
that changed on disk. `stack up` (the session fixture) started it, as it does for users."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import resource
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

import pipeline
from pipeline.cli.command_control import records
from tests.conftest import CUSTODY, Cli
from tests.test_camera_ingest import wait_for

COLD = {"CUSTODY_COMMAND_SERVER": "0"}


def _entries(home: Path) -> list[dict]:
    """The server's per-command records (the log's JSON lines)."""
    return records(home / "stack" / "commands.log")


def _baseline(cli: Cli) -> int:
    """How many records the server's log holds once no command of earlier tests is still running or finishing
    its log round (a detached child is recorded when reaped, after its launcher returned)."""
    server = _server_pid(cli)
    wait_for(lambda: not _children(server), 30, "earlier commands to be reaped")
    return len(_entries(cli.home))


def _since(home: Path, before: int, n: int) -> list[dict]:
    """The records after the first `before`, once there are `n` of them: a served command's record is written
    when the server reaps it, which may be after its launcher returned (it detached to finish its log round)."""
    def enough() -> list[dict] | None:
        got = _entries(home)[before:]
        return got if len(got) >= n else None

    return wait_for(enough, 30, f"{n} command records")


def _record_of(home: Path, pid: int) -> dict:
    return wait_for(lambda: next((e for e in _entries(home) if e["pid"] == pid), None), 30, f"the record of {pid}")


def _server_pid(cli: Cli) -> int:
    st = cli.json("stack", "status")["command_server"]  # type: ignore[index]
    assert st["running"], st
    return int(st["pid"])


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids |= {int(x) for x in (task / "children").read_text().split()}
    return kids


def test_a_command_gives_what_it_gives_in_its_own_process(cli: Cli, case_ref: str) -> None:
    _server_pid(cli)
    before = _baseline(cli)
    warm = cli.run("exhibit", "list", "--case", case_ref, "--json")
    cold = cli.run("exhibit", "list", "--case", case_ref, "--json", env=COLD)
    assert warm.stdout == cold.stdout and json.loads(warm.stdout) is not None
    bad_warm = cli.run("exhibit", "list", "--case", "NO-SUCH/1", check=False)
    bad_cold = cli.run("exhibit", "list", "--case", "NO-SUCH/1", check=False, env=COLD)
    assert bad_warm.returncode == bad_cold.returncode == 2
    assert bad_warm.stderr == bad_cold.stderr and "NO-SUCH/1" in bad_warm.stderr
    usage = cli.run("no-such-command", check=False)
    assert usage.returncode == 2 and "Usage: custody" in usage.stderr  # named as the user typed it
    got = _since(cli.home, before, 3)
    assert [(e["command"], e["status"]) for e in got] == [("exhibit", 0), ("exhibit", 2), ("no-such-command", 2)]
    log = (cli.home / "stack" / "commands.log").read_text()
    assert case_ref not in log and "NO-SUCH" not in log  # argv (which may hold secrets) is never logged


def test_the_command_runs_where_and_as_whom_the_launcher_runs(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    (tmp_path / "clip.bin").write_bytes(os.urandom(4096))
    before = _baseline(cli)
    proc = subprocess.run([CUSTODY, "ingest", "clip.bin", "--case", case_ref, "--exhibit", "CWD/1", "--officer",
                           "DC W", "--json"], cwd=tmp_path, env={**cli.env, "CUSTODY_ACTOR": "dc-from-env"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [e["command"] for e in _since(cli.home, before, 1)] == ["ingest"]  # it did run in the server
    (obj,) = json.loads(proc.stdout)["objects"]
    assert obj["original_name"] == "clip.bin"  # the relative path was the launcher's working directory
    odd = cli.run("exhibit", "list", "--case", case_ref, check=False, env={"CUSTODY_PART_SIZE_MB": "1"})
    assert odd.returncode == 2 and "part_size_mb" in odd.stderr  # the launcher's environment, not the server's
    assert [e["command"] for e in _since(cli.home, before, 2)] == ["ingest", "exhibit"]


def test_a_command_reports_first_and_finishes_its_log_round_on_its_own(cli: Cli, case_ref: str,
                                                                         tmp_path: Path) -> None:
    """A served command that appended events gives its exit status (and lets go of the caller's pipes) before
    its transparency-log round, which it finishes on its own: once the home has settled, verify finds every
    event in the signed log, as after a command run in its own process."""
    from pipeline.cli.finishing import settle

    (tmp_path / "clip.bin").write_bytes(os.urandom(4096))
    before = _baseline(cli)
    proc = subprocess.Popen([CUSTODY, "ingest", str(tmp_path / "clip.bin"), "--case", case_ref, "--exhibit",
                             "LATE/1", "--officer", "DC L", "--json"], env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)  # both pipes reached end-of-file: nothing holds them any more
    assert proc.returncode == 0, err
    assert json.loads(out)["objects"][0]["size"] == 4096
    assert settle(cli.home / "stack", timeout=30)
    (rec,) = _since(cli.home, before, 1)
    assert rec["command"] == "ingest" and rec["status"] == 0 and rec["detached"] is True
    report = cli.json("verify", "--case", case_ref, "--exhibit", "LATE/1")
    (ex,) = report["exhibits"]  # type: ignore[index]
    assert ex["result"] == "PASS" and ex["logged_length"] == ex["events"] >= 2, ex
    listed = cli.run("exhibit", "list", "--case", case_ref)  # appends nothing: nothing to finish
    assert listed.returncode == 0


def test_settle_waits_exactly_as_long_as_a_command_is_finishing(tmp_path: Path) -> None:
    """The finishing lock: held shared by a detached child for its round, taken exclusively by whoever comes next."""
    import sys

    from pipeline.cli.finishing import settle

    stack = tmp_path / "stack"
    stack.mkdir()
    assert settle(stack, timeout=0.1)  # nothing ever finished late here
    code = ("import sys; from pathlib import Path; from pipeline.cli.finishing import hold; "
            "hold(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(stack)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(pipeline.__file__).parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not settle(stack, timeout=0.2)  # a command still finishing: not settled
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # its round is done: it exits, and the lock goes with it
        holder.wait(10)
    assert settle(stack, timeout=10)


def test_a_terminal_user_is_prompted_through_the_server(cli: Cli) -> None:
    """No actor configured and a terminal: the command asks on the terminal, and reads the answer from it."""
    settings = cli.home / "settings.json"
    kept = settings.read_bytes() if settings.exists() else None
    env = {k: v for k, v in cli.env.items() if k != "CUSTODY_ACTOR"}
    ref = f"OP-TTY/{os.getpid()}"
    before = _baseline(cli)
    master, slave = pty.openpty()
    proc = subprocess.Popen([CUSTODY, "case", "create", "--ref", ref], env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Who is acting?" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                seen += os.read(master, 4096)
        assert b"Who is acting?" in seen, seen
        os.write(master, b"DC Terminal\n")
        assert proc.wait(60) == 0
        with contextlib.suppress(OSError):  # the pty reports EIO once the last writer is gone
            while select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        remembered = json.loads(settings.read_text()).get("actor")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        if kept is None:
            settings.unlink(missing_ok=True)
        else:
            settings.write_bytes(kept)
    assert f"case {ref} created".encode() in seen, seen
    assert [e["command"] for e in _since(cli.home, before, 1)] == ["case"]
    assert remembered == "DC Terminal"  # the answer typed on the terminal reached the command


def _slow_upload(cli: Cli, case_ref: str, tmp_path: Path, exhibit: str) -> tuple[subprocess.Popen, int]:
    """A rate-limited upload running in the server; returns the launcher and the server child running it."""
    big = tmp_path / f"{exhibit.replace('/', '-')}.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    server = _server_pid(cli)
    _baseline(cli)
    known = _children(server)
    proc = subprocess.Popen([CUSTODY, "upload", str(big), "--case", case_ref, "--exhibit", exhibit, "--officer",
                             "DC S", "--limit-rate", "0.5"], env={**cli.env, "CUSTODY_PART_SIZE_MB": "5"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a process group of its own whose parent (this test) is in another group of the
                            # session: never an orphaned group, in which the kernel discards SIGTSTP (as when
                            # the suite itself runs detached from the shell that started it)
                            process_group=0)
    child = wait_for(lambda: next(iter(_children(server) - known), None), 30, "the server's child for the upload")

    def sending() -> bool:  # the command runs (so the launcher gave the go-ahead and forwards signals)
        for j in (cli.home / "uploads").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                if json.loads(j.read_text()).get("source") == str(big.resolve()):
                    return True
        return False

    wait_for(sending, 30, "the upload to start sending")
    assert proc.poll() is None, proc.communicate()
    return proc, child


def test_ctrl_c_reaches_the_command(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    proc, child = _slow_upload(cli, case_ref, tmp_path, "INT/1")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert _record_of(cli.home, child)["status"] == 130  # reaped: it finished what it had appended, and ended
    assert not Path(f"/proc/{child}").exists()


def test_a_killed_launcher_takes_its_command_with_it(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    proc, child = _slow_upload(cli, case_ref, tmp_path, "KILL/1")
    proc.kill()
    proc.wait(10)
    wait_for(lambda: not Path(f"/proc/{child}").exists(), 10, "the command to die with its launcher")
    cli.run("exhibit", "list", "--case", case_ref)  # the next command is served (the dead one was reaped first)
    assert _record_of(cli.home, child)["status"] == -signal.SIGKILL


def test_changed_code_is_never_run_from_memory(cli: Cli, case_ref: str) -> None:
    """A module file the server loaded changes: the command runs in its own process, the server restarts."""
    server = _server_pid(cli)
    target = Path(pipeline.__file__)
    st = target.stat()
    before = _baseline(cli)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        proc = cli.run("exhibit", "list", "--case", case_ref, env={"CUSTODY_DEBUG": "1"})
    finally:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "command server declined (code changed)" in proc.stderr
    wait_for(lambda: "code changed on disk: restarting" in (cli.home / "stack" / "commands.log").read_text()
             and cli.json("stack", "status")["command_server"]["running"], 60, "the server to restart")  # type: ignore[index]
    assert _server_pid(cli) == server  # re-executed in place
    assert len([e for e in _entries(cli.home)[before:] if e["command"] == "exhibit"]) == 0
    cli.run("exhibit", "list", "--case", case_ref)
    assert _since(cli.home, before, 1)[-1]["command"] == "exhibit"


def test_a_limit_the_server_cannot_honour_runs_the_command_in_its_own_process(cli: Cli, case_ref: str) -> None:
    """A hard limit above the server's (possible only with CAP_SYS_RESOURCE) cannot be given to its child."""
    server_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def raise_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, server_hard + 1))

    if server_hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to exceed")
    try:
        proc = subprocess.run([CUSTODY, "exhibit", "list", "--case", case_ref], env={**cli.env, "CUSTODY_DEBUG": "1"},
                              capture_output=True, text=True, timeout=60, preexec_fn=raise_limit)  # noqa: PLW1509
    except subprocess.SubprocessError:
        pytest.skip("this machine does not let the test raise a hard limit")
    assert proc.returncode == 0, proc.stderr
    assert "declined (resource limit RLIMIT_NOFILE)" in proc.stderr


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_ctrl_z_stops_the_command_and_fg_resumes_it(cli: Cli, case_ref: str, tmp_path: Path) -> None:
    proc, child = _slow_upload(cli, case_ref, tmp_path, "TSTP/1")
    proc.send_signal(signal.SIGTSTP)
    wait_for(lambda: _state(child) == "T" and _state(proc.pid) == "T", 10, "launcher and command stopped")
    proc.send_signal(signal.SIGCONT)
    wait_for(lambda: _state(child) != "T" and _state(proc.pid) != "T", 10, "launcher and command running again")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130


def test_a_search_path_that_finds_other_code_is_declined(tmp_path: Path) -> None:
    """Pure: the rule the server applies to the launcher's sys.path."""
    from pipeline.cli.command_checks import path_conflict as _path_conflict

    theirs_dir, mine_dir, same = tmp_path / "theirs", tmp_path / "mine", tmp_path / "same"
    for d in (theirs_dir, mine_dir, same):
        d.mkdir()
    (theirs_dir / "numpy").mkdir()
    loaded = {"numpy": str(mine_dir / "numpy" / "__init__.py"), "six": str(same / "six.py")}
    assert "holds another numpy" in _path_conflict([str(theirs_dir), str(same)], [str(mine_dir), str(same)], loaded)
    assert "numpy is loaded from" in _path_conflict([str(same)], [str(mine_dir), str(same)], loaded)
    harmless = tmp_path / "extra"
    harmless.mkdir()
    (harmless / "unrelated.py").write_text("")
    assert _path_conflict([str(harmless), str(mine_dir), str(same)], [str(mine_dir), str(same)], loaded) == ""


def test_two_stack_ups_at_once_start_one_server(tmp_path: Path) -> None:
    """Both callers get the one server that took the home's lock; the other process stands down."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.cli import command_control

    stack = tmp_path / "home" / "stack"
    try:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(lambda _: command_control.start(stack, timeout=60), range(2))
        assert a["pid"] == b["pid"] and a["running"]
        log = (stack / "commands.log").read_text()
        assert log.count("serving ") == 1  # the other one (if it started at all) stood down
    finally:
        assert command_control.stop(stack)
    assert not command_control.status(stack)["running"]

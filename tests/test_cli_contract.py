"""The command-line contract other parts and outside checks rely on."""

from __future__ import annotations

import os
import stat

from tests.conftest import Cli


def test_exhibit_show_json_shape(cli, case_ref, tmp_path):
    weird = tmp_path / "../etc/passwd é 視頻.mp4".replace("/", "_")
    weird.write_bytes(b"\x00\x01")
    cli.run("ingest", str(weird), "--case", case_ref, "--exhibit", "JB/1", "--officer", "DC Jane Bloggs")
    items = cli.json("exhibit", "list", "--case", case_ref)
    assert [i["exhibit"] for i in items] == ["JB/1"]
    view = cli.json("exhibit", "show", "--case", case_ref, "--exhibit", "JB/1")
    (obj,) = view["objects"]
    for field in ("bucket", "key", "version_id", "sha256", "size", "status", "original_name"):
        assert field in obj
    assert obj["original_name"] == weird.name
    assert weird.name not in obj["key"] and ".." not in obj["key"]
    assert [e["action"] for e in view["events"]] == ["exhibit_created", "ingested"]


def test_usage_errors_exit_2(cli, case_ref, tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"x")
    bad = cli.run("ingest", str(f), "--case", case_ref, "--exhibit", "../../etc", "--officer", "O", check=False)
    assert bad.returncode == 2 and "exhibit reference" in bad.stderr
    missing = cli.run("exhibit", "show", "--case", "NO-SUCH/1", "--exhibit", "A/1", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    nofile = cli.run("ingest", str(tmp_path / "nope"), "--case", case_ref, "--exhibit", "A/1", "--officer", "O",
                     check=False)
    assert nofile.returncode == 2
    assert cli.run("frobnicate", check=False).returncode == 2


def test_store_down_exits_3_and_says_what_to_start(tmp_path):
    other = Cli(tmp_path / "home")
    proc = other.run("case", "create", "--ref", "X/1", check=False)
    assert proc.returncode == 3
    assert "custody stack up" in proc.stderr
    assert other.run("stack", "status", "--json", check=False).returncode == 3


def test_two_homes_never_share_state_or_ports(cli, tmp_path):
    other = Cli(tmp_path / "home2")
    other.run("stack", "up", "--no-prefect")
    try:
        a = cli.json("stack", "status")
        b = other.json("stack", "status")
        assert a["endpoint"] != b["endpoint"]
        assert a["access_key"] != b["access_key"]
        assert other.json("case", "list") == []
        assert isinstance(cli.json("case", "list"), list)  # both servers answer at once (no fixed port shared)
    finally:
        other.run("stack", "down")


def test_secrets_stay_secret(cli, stack_status):
    home = cli.home
    for p in [home / "secrets" / "s3.json", home / "keys" / "signing-ed25519.pem"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    # not on the server's command line, not in human output
    pid = cli.json("stack", "status")["pid"]
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode()
    assert stack_status["secret_key"] not in cmdline
    human = cli.run("stack", "status")
    assert stack_status["secret_key"] not in human.stdout + human.stderr
    assert not os.access(home / "secrets" / "s3.json", os.X_OK)


def test_the_lazy_command_table_names_every_command():
    """`custody X` builds only X's modules, so the table must know every module's commands."""
    import importlib

    import typer

    m = importlib.import_module("pipeline.cli.main")  # the module, not the `main` function pipeline.cli exports

    for module in m._ORDER:
        scratch = typer.Typer()
        scratch.callback()(lambda: None)
        m.register_module(module, scratch)
        for name in typer.main.get_command(scratch).commands:
            assert module in m.COMMANDS.get(name, ()), f"`{name}` (pipeline.cli.{module}) is not in COMMANDS"
    assert set(typer.main.get_command(m.build_app()).commands) == set(m.COMMANDS)
    assert m._command_named(["--actor", "DC X", "exhibit", "list"]) == "exhibit"
    assert m._command_named(["--help"]) is None and m._command_named(["frobnicate"]) is None


def test_tool_versions_are_asked_once_per_binary(tmp_path, monkeypatch):
    """`ffmpeg -version` is remembered per binary, and a changed binary is asked again."""
    from pipeline.ops.toolversion import first_line

    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "home"))
    calls = tmp_path / "calls"
    tool = tmp_path / "fftool"
    tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'fftool version 1.0 Copyright'\n")
    tool.chmod(0o755)
    assert first_line(str(tool)) == first_line(str(tool)) == "fftool version 1.0 Copyright"
    assert calls.read_text().count("x") == 1
    tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'fftool version 2.0-upgraded'\n")
    assert first_line(str(tool)) == "fftool version 2.0-upgraded"
    assert calls.read_text().count("x") == 2


def test_evidence_text_is_printed_verbatim_never_as_markup(cli, case_ref):
    """An officer or description with rich markup or emoji codes in it is shown as it was recorded."""
    officer, description = "PC [bold]Smith", "bag [/] seal :police_car: [red]x"
    cli.run("exhibit", "create", "--case", case_ref, "--exhibit", "MK/1", "--officer", officer,
            "--description", description)
    listed = cli.run("exhibit", "list", "--case", case_ref).stderr
    assert f"MK/1\t{officer}\t{description}" in listed
    shown = cli.run("exhibit", "show", "--case", case_ref, "--exhibit", "MK/1").stderr
    assert f"officer {officer}" in shown


def test_progress_in_a_log_is_plain_lines_while_it_runs_and_at_the_end(capsys):
    """Where stderr is not a terminal, a long job still says how far it is: lines, not a live bar."""
    from pipeline.cli.lineprogress import LineProgress, line

    with LineProgress(period_s=0) as prog:
        total = prog.add_task("total (2 files)", total=3_000_000)
        one = prog.add_task("a.mp4", total=1_000_000)
        prog.advance(one, 1_000_000)
        prog.advance(total, 1_000_000)
        prog.remove_task(one)
        prog.update(total, advance=2_000_000)
    lines = capsys.readouterr().err.splitlines()
    assert "a.mp4: 1.0/1.0 MB (100 %)" in lines
    assert lines[-1].startswith("total (2 files): 3.0/3.0 MB (100 %)") and not lines[-1].startswith("a.mp4")
    assert line("bundle", 5e6, None, 0.1) == "bundle: 5.0 MB"


def test_the_collector_is_off_while_a_command_starts_then_back_on_with_the_start_up_frozen() -> None:
    import gc

    from pipeline.cli.main import pause_collector_at_start

    was_enabled, frozen_before = gc.isenabled(), gc.get_freeze_count()
    try:
        timer = pause_collector_at_start(0.2)
        assert not gc.isenabled()
        assert timer.daemon  # cannot hold a finished command open
        timer.join(timeout=30)
        assert not timer.is_alive()
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()

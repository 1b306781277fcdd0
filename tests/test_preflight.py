"""scripts/preflight.py: every external piece checked, a missing one named with its Debian package."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_emulator import hide_plugin

ROOT = Path(__file__).resolve().parent.parent
PREFLIGHT = ["/usr/bin/python3", str(ROOT / "scripts" / "preflight.py")]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PREFLIGHT, *args], capture_output=True, text=True, timeout=30,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, **(env or {})})


def test_passes_here_quickly_and_idempotently() -> None:
    for _ in range(2):
        t0 = time.monotonic()
        out = run()
        assert time.monotonic() - t0 < 2.0
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.startswith("preflight: ok") and "missing" not in out.stdout


def test_a_missing_element_is_named_with_its_package() -> None:
    out = run("--extra-element", "nosuchelement=gstreamer1.0-nosuch")
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["missing: GStreamer element nosuchelement (install Debian package "
                                       "gstreamer1.0-nosuch)"]
    unmapped = run(env={"CUSTODY_PREFLIGHT_EXTRA_ELEMENTS": "nosuchelement"})
    assert unmapped.returncode == 1 and "missing: GStreamer element nosuchelement (" in unmapped.stdout
    assert "ELEMENT_PACKAGES" in unmapped.stdout


def test_a_missing_plugin_package_is_named(tmp_path: Path) -> None:
    """The fresh-Debian case of issue 13: gstreamer1.0-x absent, so clockoverlay is missing."""
    out = run(env=hide_plugin(tmp_path, "libgstpango.so"))
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["missing: GStreamer element clockoverlay (install Debian package "
                                       "gstreamer1.0-x)"]


def test_missing_commands_are_named(tmp_path: Path) -> None:
    out = run(env={"PATH": str(tmp_path)})
    assert out.returncode == 1
    for line in ("missing: ffmpeg command (install Debian package ffmpeg)",
                 "missing: ffprobe command (install Debian package ffmpeg)",
                 "missing: chromium command (install Debian package chromium)",
                 "missing: exiftool command (install Debian package libimage-exiftool-perl)",
                 "missing: pdftoppm command (install Debian package poppler-utils)",
                 "missing: openssl command (install Debian package openssl)"):
        assert line in out.stdout.splitlines()


PLUGIN_FILES = """
import importlib.util, json, sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
spec = importlib.util.spec_from_file_location("emu", sys.argv[1])
emu = importlib.util.module_from_spec(spec); spec.loader.exec_module(emu)
names = {e for line in emu.checked_lines() for e in emu.launch_elements(line)} | set(emu.SERVER_ELEMENTS)
table = {**emu.ELEMENT_PACKAGES, **emu.SERVER_ELEMENTS}
print(json.dumps({n: [Gst.ElementFactory.find(n).get_plugin().get_filename(), table.get(n)] for n in names}))
"""


def test_element_table_covers_every_launch_element_and_is_true() -> None:
    """Each element the emulator's launch lines name has a package in the table, and dpkg agrees with it."""
    out = subprocess.run(["/usr/bin/python3", "-c", PLUGIN_FILES, str(ROOT / "deploy" / "camera_emulator.py")],
                         capture_output=True, text=True, timeout=30, check=True)
    found = json.loads(out.stdout)
    assert {"clockoverlay", "x264enc", "rtph264pay", "valve", "videotestsrc", "h264parse"} <= set(found)
    for name, (plugin, pkg) in found.items():
        assert pkg, f"{name} has no Debian package in ELEMENT_PACKAGES"
        owner = subprocess.run(["dpkg", "-S", str(Path(plugin).resolve())], capture_output=True, text=True, timeout=30)
        if owner.returncode != 0:
            pytest.fail(f"dpkg does not know {plugin} ({name})")
        assert owner.stdout.split(":")[0] == pkg, (name, owner.stdout)

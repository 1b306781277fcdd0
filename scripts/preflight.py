#!/usr/bin/python3
"""Check every external piece the project uses and name the Debian package for each one missing.

Run by scripts/bootstrap.sh after installing, and by hand: `/usr/bin/python3 scripts/preflight.py`. It uses
Debian's python3 (the one with python3-gi) and the standard library only, changes nothing, and takes well under
2 s. The GStreamer elements checked are read from the emulator's own launch lines (deploy/camera_emulator.py),
so an element added there is checked here without anyone remembering to. Prints one line per failure,

    missing: <what> (install Debian package <pkg>)

and exits 1 if anything is missing, else prints one `preflight: ok` line and exits 0.

`--extra-element NAME[=PKG]` (or CUSTODY_PREFLIGHT_EXTRA_ELEMENTS="NAME[=PKG],...") checks more elements; the
tests use it to prove that a missing one is reported.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMULATOR = ROOT / "deploy" / "camera_emulator.py"

COMMANDS = {  # executable -> Debian package
    "ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "chromium": "chromium", "exiftool": "libimage-exiftool-perl",
    "pdftoppm": "poppler-utils", "openssl": "openssl", "zip": "zip", "unzip": "unzip",
    "gst-inspect-1.0": "gstreamer1.0-tools",
}
UNMAPPED = "install the Debian package that provides it; it is not in ELEMENT_PACKAGES of deploy/camera_emulator.py"
POSTGRES_TOOLS = ("initdb", "pg_ctl")  # Prefect's database in the scale test, under /usr/lib/postgresql/*/bin


def load_emulator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("camera_emulator", EMULATOR)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def check_commands() -> list[str]:
    out = [f"missing: {cmd} command (install Debian package {pkg})" for cmd, pkg in COMMANDS.items()
           if shutil.which(cmd) is None]
    for tool in POSTGRES_TOOLS:
        if not glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"):
            out.append(f"missing: PostgreSQL {tool} under /usr/lib/postgresql/*/bin (install Debian package "
                       "postgresql)")
    return out


def check_gstreamer(elements: dict[str, str | None]) -> list[str]:
    """Bindings, typelibs, then each element by factory lookup (what the emulator itself does at start)."""
    try:
        import gi
    except ImportError:
        return ["missing: Python GObject bindings for /usr/bin/python3 (install Debian package python3-gi)"]
    try:
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError):
        return ["missing: GStreamer typelib Gst-1.0 (install Debian package gir1.2-gstreamer-1.0)"]
    out = []
    try:
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer  # noqa: F401
    except (ImportError, ValueError):
        out.append("missing: GStreamer RTSP server typelib GstRtspServer-1.0 (install Debian package "
                   "gir1.2-gst-rtsp-server-1.0)")
    Gst.init(None)
    for name, pkg in elements.items():
        if Gst.ElementFactory.find(name) is None:
            hint = f"install Debian package {pkg}" if pkg else UNMAPPED
            out.append(f"missing: GStreamer element {name} ({hint})")
    return out


def wanted_elements(extra: list[str]) -> dict[str, str | None]:
    emu = load_emulator()
    names: dict[str, str | None] = {}
    for line in emu.checked_lines():
        for e in emu.launch_elements(line):
            names[e] = emu.ELEMENT_PACKAGES.get(e)
    names.update(emu.SERVER_ELEMENTS)
    for spec in extra:
        name, _, pkg = spec.strip().partition("=")
        if name:
            names[name] = pkg or emu.ELEMENT_PACKAGES.get(name)
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra-element", action="append", default=[], metavar="NAME[=PKG]",
                    help="also check this GStreamer element (PKG: the Debian package to name if missing)")
    ap.add_argument("--quiet", action="store_true", help="print nothing when all is well")
    args = ap.parse_args(argv)
    extra = args.extra_element + [e for e in os.environ.get("CUSTODY_PREFLIGHT_EXTRA_ELEMENTS", "").split(",") if e]
    elements = wanted_elements(extra)
    failures = check_commands() + check_gstreamer(elements)
    for line in failures:
        print(line)
    if failures:
        print(f"preflight: {len(failures)} missing; install the packages named above (scripts/bootstrap.sh does)",
              file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"preflight: ok ({len(COMMANDS) + len(POSTGRES_TOOLS)} commands, {len(elements)} GStreamer elements, "
              "RTSP server bindings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

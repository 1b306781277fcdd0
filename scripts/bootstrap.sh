#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, then the
# project virtualenv at .venv pinned by requirements.lock, then a preflight
# (scripts/preflight.py) that checks every external piece the project uses and
# names the Debian package of anything still missing. Re-running installs
# nothing when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ffmpeg                      # capture, probing, test footage
  libimage-exiftool-perl      # writes EXIF into test stills
  zip unzip                   # bundle benchmark baseline
  poppler-utils               # pdftoppm renders report pages in tests
  chromium                    # headless browser for portal tests (driven by Playwright, never downloaded)
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp   # camera emulator
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  gstreamer1.0-x              # pango overlays (clockoverlay, timeoverlay) in the emulator launch lines
  postgresql                  # Prefect server database in the scale test (initdb/pg_ctl, never the system service)
  python3-venv                # `python3 -m venv` below, when python3 is Debian's (ensurepip is split out)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages from requirements.lock"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . --config-settings editable_mode=compat 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import minio, cv2, prefect, pipeline" 
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Our own modules' bytecode. Where PYTHONDONTWRITEBYTECODE is set (as on the CI machines) Python would compile
# every module of ours on every command (40 ms of `custody exhibit list`); checked-hash .pyc files are
# validated against the source's hash on import, so an edited module is never run from stale bytecode.
.venv/bin/python -m compileall -q --invalidation-mode checked-hash pipeline flows hashing >/dev/null

# Installed is not the same as usable: check each command, PostgreSQL tool, GStreamer binding and every element
# the camera emulator's launch lines name (read from deploy/camera_emulator.py), naming the package if missing.
if [ ! -x /usr/bin/python3 ]; then
  echo "missing: /usr/bin/python3 (install Debian package python3)"; exit 1
fi
/usr/bin/python3 scripts/preflight.py

#!/usr/bin/env bash
# Builds native/fpng_nogil.cpp against fpng.cpp from the hash-pinned fpng source release (native/fpng-source.txt)
# into .venv/lib/custody/, then checks that it gives the `fpng` wheel's bytes. Idempotent: a stamp of the inputs
# and the compiler skips the build when nothing changed. Called by scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir=.venv/lib/custody
lib="$out_dir/libfpng_nogil.so"
CXX="${CXX:-g++}"
command -v "$CXX" >/dev/null || { echo "missing: $CXX (install Debian package g++)"; exit 1; }
case "$(uname -m)" in
  x86_64|amd64) SIMD=(-DFPNG_NO_SSE=0 -msse4.1 -mpclmul) ;;  # the wheel's flags; fpng checks the CPU at run time
  *) SIMD=(-DFPNG_NO_SSE=1) ;;
esac
FLAGS=(-O3 -std=c++14 -shared -fPIC -fvisibility=hidden -fno-strict-aliasing "${SIMD[@]}")
stamp="$out_dir/.built-$(cat native/fpng_nogil.cpp native/fpng-source.txt scripts/build_native.sh \
  <("$CXX" --version | head -1) | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -f "$lib" ]; then
  exit 0
fi
mkdir -p "$out_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "bootstrap: building the GIL-free fpng encoder ($lib)"
.venv/bin/pip download -q --disable-pip-version-check --no-deps --no-binary :all: --require-hashes \
  -r native/fpng-source.txt -d "$work" 2>&1 | grep -v "^WARNING: Location" || true
tar -xzf "$work"/fpng-*.tar.gz -C "$work"
src="$(echo "$work"/fpng-*/fpng/src)"
"$CXX" "${FLAGS[@]}" -I "$src" -o "$work/libfpng_nogil.so" native/fpng_nogil.cpp "$src/fpng.cpp"
mv "$work/libfpng_nogil.so" "$lib"
# Built is not the same as right: the same bytes as the wheel on noise, a gradient, a flat and a tiny picture.
.venv/bin/python - <<'PY'
import numpy as np
import fpng.fpng_ext as wheel
from pipeline.frames import fpng_native
rng = np.random.default_rng(1)
grad = np.clip(np.cumsum(rng.integers(-3, 4, (270, 480, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
for img in (rng.integers(0, 256, (270, 480, 3), dtype=np.uint8), grad, np.zeros((64, 64, 3), np.uint8),
            rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)):
    if fpng_native.BINDING != fpng_native.NATIVE or fpng_native.encode_rgb(img) != wheel.encode_ndarray(img):
        raise SystemExit(f"build_native: {fpng_native.LIBRARY} gives other bytes than the fpng wheel")
PY
rm -f "$out_dir"/.built-*
touch "$stamp"

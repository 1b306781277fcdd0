#!/usr/bin/env bash
# The whole suite: lint, then pytest. Tests start their own services (embedded
# S3, RTSP emulator, Prefect) in temporary homes, so nothing leaks between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"
ruff check .
echo "== pytest"
set +e
# a private base temp dir: concurrent pytest sessions of one user would otherwise rotate each other's away
base="$(mktemp -d "${TMPDIR:-/tmp}/custody-pytest.XXXXXX")"
# two workers, a module each (module fixtures built once); each starts its own stack in its own home
workers="${CUSTODY_TEST_WORKERS:-2}"
par=(); [ "$workers" = "0" ] || par=(-n "$workers" --dist loadfile)
pytest -q -p no:cacheprovider --basetemp="$base/t" "${par[@]}" "$@"
rc=$?
set -e
rm -rf "$base"
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$rc"

#!/usr/bin/env bash
# End-to-end demo on the embedded stack: start it, make footage, ingest it as
# an exhibit, verify the chain of custody.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export CUSTODY_HOME="${CUSTODY_HOME:-$HOME/.custody}"
OUT="${DEMO_OUT:-$PWD/demo-out}"
mkdir -p "$OUT"
CASE="DEMO/$(date -u +%Y%m%d-%H%M%S)"

custody stack up
clip="$OUT/covert-cam.mp4"
if [ ! -f "$clip" ]; then
  echo "demo: generating 20 s of 720p test footage"
  ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=25,noise=alls=12:allf=t" \
    -t 20 -c:v libx264 -preset veryfast -b:v 3M -g 50 -bf 0 -pix_fmt yuv420p -y "$clip"
fi
custody case create --ref "$CASE" --title "custody demo"
custody ingest "$clip" --case "$CASE" --exhibit "DEMO/1" --officer "DC Demo" --description "covert camera clip"
custody exhibit show --case "$CASE" --exhibit "DEMO/1"
custody verify --case "$CASE"
bundle="$OUT/bundle-$(date -u +%Y%m%dT%H%M%SZ).zip"
custody bundle --case "$CASE" --out "$bundle" --recipient "CPS reviewing lawyer" --reason "demo disclosure"
custody verify "$bundle"
echo
echo "demo: case $CASE; evidence bundle at $bundle (CUSTODY_HOME=$CUSTODY_HOME)"

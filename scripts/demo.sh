#!/usr/bin/env bash
# The main job end to end on the embedded stack: an emulated covert camera is
# recorded as evidence (reported to the stack's Prefect server as a
# camera_ingest flow run), a field upload is added, stills are extracted, and
# an evidence bundle is built and verified offline.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export CUSTODY_HOME="${CUSTODY_HOME:-$HOME/.custody}"
export CUSTODY_ACTOR="${CUSTODY_ACTOR:-demo operator}"   # every custody event names who acted
OUT="${DEMO_OUT:-$PWD/demo-out}"
mkdir -p "$OUT"
CASE="DEMO/$(date -u +%Y%m%d-%H%M%S)"

echo "== 1. embedded stack: S3 (SeaweedFS), Prefect server (10-25 s), one emulated RTSP camera"
custody stack up --cameras 1
custody case create --ref "$CASE" --title "custody demo"

echo "== 2. record the covert camera for 20 s (ffmpeg starts at once; the run is reported to Prefect)"
CAM_EXHIBIT="$(custody cameras run --camera cam1 --duration 20s --segment 5s --case "$CASE" --json \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["exhibit"]); sys.stderr.write("%d segments stored, %d gap(s), ffmpeg started %s\n" % (r["segments_stored"], len(r["gaps"]), r["ffmpeg_started"]))')"
custody cameras status

echo "== 3. a field team uploads footage recovered from an SD card"
clip="$OUT/sdcard-clip.mp4"
[ -f "$clip" ] || ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=25,noise=alls=12:allf=t" \
    -t 10 -c:v libx264 -preset veryfast -b:v 3M -g 50 -bf 0 -pix_fmt yuv420p -y "$clip"
custody upload "$clip" --case "$CASE" --exhibit "DEMO/1" --officer "DC Demo" --location "demo site"

echo "== 4. lossless stills every 2 s and at keyframes"
custody extract "$CAM_EXHIBIT" --case "$CASE" --every 2s
custody extract "DEMO/1" --case "$CASE" --every 2s --keyframes

echo "== 5. verify the chain of custody, build the evidence bundle, verify it offline"
custody verify --case "$CASE"
bundle="$OUT/bundle-$(date -u +%Y%m%dT%H%M%SZ).zip"
# every derived object, so the stills of step 4 are in it; by default (--derived review) a bundle carries the
# originals and the review material only (clips, clock-time contact sheets, stills taken at an instant, metadata)
custody bundle --case "$CASE" --out "$bundle" --recipient "CPS reviewing lawyer" --reason "demo disclosure" \
    --derived all
custody verify "$bundle"
echo
echo "demo: case $CASE — evidence bundle at $bundle (CUSTODY_HOME=$CUSTODY_HOME)"
ui="$(custody stack status --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("prefect_ui_url") or "")')"
[ -z "$ui" ] || echo "the camera run in the Prefect UI: $ui (custody stack down stops the stack)"

#!/usr/bin/env bash
# Runs the worker standalone with a demo camera and says where to look.
set -euo pipefail
cd "$(dirname "$0")/.."

rtmp_port="${KAMERA_RTMP_PORT:-1935}"
http_port="${KAMERA_HTTP_PORT:-8080}"
data_dir="${KAMERA_DATA_DIR:-./data}"
http="http://localhost:${http_port}"

cat <<EOT

Kamera worker (standalone, with a demo camera)
  RTMP ingest     rtmp://localhost:${rtmp_port}/live/<camera>
  Player          ${http}/cameras/demo
  LL-HLS          ${http}/hls/demo/index.m3u8
  Cameras (JSON)  ${http}/api/cameras
  Latest frame    ${http}/frames/demo/latest.jpg
  Recordings      ${http}/recordings/demo/
  Metrics         ${http}/metrics
  Data            ${data_dir}

Publish a camera of your own:
  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -c:v libx264 -preset veryfast -g 30 \\
         -f flv rtmp://localhost:${rtmp_port}/live/my-camera

Stop with Ctrl-C.

EOT
exec ./target/release/kamera-worker --demo \
  --rtmp-listen "0.0.0.0:${rtmp_port}" --http-listen "0.0.0.0:${http_port}" --data-dir "${data_dir}" "$@"

#!/usr/bin/env bash
# `make bench`: Kamera against the per-camera FFmpeg architecture and nginx-rtmp, side by side
# on the same load. Not part of `make test`. Options are passed to bench/compare.py
# (e.g. `make bench BENCH_ARGS="--n 1,4 --duration 30"`); then the processor pool bench
# (bench/pool, options in POOL_BENCH_ARGS).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in nginx libnginx-mod-rtmp; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  # The bench starts its own nginx; the packaged service must not hold the ports.
  systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi

cargo build --release -p kamera-worker
python3 bench/compare.py ${BENCH_ARGS:-} "$@"
# One processor pool (network transport, batching) against the sidecar path: bench/pool/README.md.
PYTHONPATH="$PWD/sdk/python/src" python3 bench/pool/pool.py ${POOL_BENCH_ARGS:-}

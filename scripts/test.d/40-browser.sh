#!/usr/bin/env bash
# Browser tests: headless Debian chromium (via playwright-core) plays LL-HLS from a real
# worker with hls.js and Shaka (latency against program date-time). Needs `bash scripts/setup.sh` (npm packages, chromium) and the worker
# binary (`cargo build --workspace --bins`), both done by `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d node_modules/playwright-core ] || [ ! -f node_modules/hls.js/dist/hls.min.js ] \
  || [ ! -f node_modules/shaka-player/dist/shaka-player.compiled.js ]; then
  bash scripts/setup.d/40-node.sh
fi
node --test tests/browser/

#!/usr/bin/env bash
# hls.js (served by the worker's player page) and playwright-core (browser tests) from npm,
# pinned by package-lock.json, plus Debian's chromium for the browser tests (playwright-core
# drives /usr/bin/chromium; it never downloads a browser of its own).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# The browser is for tests only; `make run` needs just hls.js.
if [ "${KAMERA_SETUP_FOR:-test}" != run ]; then
  dpkg -s chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stamp="node_modules/.kamera-lock"
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  echo "setup: npm packages ready"
  exit 0
fi
echo "setup: installing npm packages (hls.js, playwright-core, shaka-player)"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"

#!/usr/bin/env bash
# The arm64 build (`make test-arm64`), where qemu-user-static can run it (setup installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
  echo "skipped: qemu-user-static is not installed (bash scripts/setup.sh installs it)"
  exit 0
fi
exec bash scripts/test-arm64.sh

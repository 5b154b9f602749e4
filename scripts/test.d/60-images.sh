#!/usr/bin/env bash
# Container images: the runtime stages install exactly the libraries the binaries link, and the
# images themselves (built for this machine's arch with buildah, cached) run as a pod with runc
# with the operator's own pod spec, within their size budgets (tests/images).
set -euo pipefail
cd "$(dirname "$0")/../.."
arch="$(dpkg --print-architecture)"
# The test build's binaries (cargo build --workspace --bins ran first), stripped: the same
# Dockerfiles and bases as `make images`, without a second, release compile of the workspace.
export KAMERA_TEST_BINARIES="${CARGO_TARGET_DIR:-$PWD/target}/debug"
bash scripts/images.sh --arch "$arch" --out build/images/test --test-binaries "$KAMERA_TEST_BINARIES" \
  worker operator processor-basic
.venv/bin/python -m pytest -q tests/images

#!/usr/bin/env bash
# `make test-arm64`: the worker cross-built for aarch64 and run under qemu-user-static against a
# short camera (tests/arm64). The test build's profile (no release optimisation) keeps the cross
# compile to a few minutes; `make images` builds the release arm64 binaries the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
# shellcheck source=scripts/images/cross.sh
source scripts/images/cross.sh "$target"
# No debug info and unoptimised dependencies: a smoke test of one short camera under qemu needs
# neither, and without them the cross compile from scratch takes 5.0 CPU-minutes instead of 13.3
# (user + system, measured on 2 busy cores).
cargo build --quiet --locked --target "$target" -p kamera-worker \
  --config 'profile.dev.debug=0' --config 'profile.dev.package."*".opt-level=0'
export KAMERA_ARM64_WORKER="${CARGO_TARGET_DIR:-$PWD/target}/$target/debug/kamera-worker"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/arm64

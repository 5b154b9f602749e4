#!/usr/bin/env bash
# `make test-arm64`: the worker cross-built for aarch64 (release, the images' profile) and run
# under qemu-user-static against a short camera (tests/arm64).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/images.sh --arch arm64 --binaries worker
.venv/bin/python -m pytest -q -p no:cacheprovider tests/arm64

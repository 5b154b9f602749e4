#!/usr/bin/env bash
# Container images: runtime libraries match the built binaries (no container engine needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pytest -q tests/images

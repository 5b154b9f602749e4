#!/usr/bin/env bash
# The Helm chart with the real helm (lint, render, schema and RBAC checks).
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pytest -q tests/chart

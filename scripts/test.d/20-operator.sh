#!/usr/bin/env bash
# The operator's offline checks: built objects against the Kubernetes schemas, CRDs as CRDs,
# and example (and deliberately invalid) manifests against the CRD schemas.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p kamera-operator --bin kamera-operator
bin="${CARGO_TARGET_DIR:-target}/debug/kamera-operator"
.venv/bin/python scripts/operator_validate.py "$bin"

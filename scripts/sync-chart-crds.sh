#!/usr/bin/env bash
# Regenerates crds/ from the operator's Rust types and copies them into the chart.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p kamera-operator -- crd --dir crds
rm -f charts/kamera/crds/*.yaml
cp crds/*.yaml charts/kamera/crds/
echo "crds/ and charts/kamera/crds/ regenerated"

#!/usr/bin/env bash
# cargo-fuzz (libFuzzer driver) for `make fuzz`, pinned. Only when fuzzing is asked for
# (`scripts/setup.sh fuzz`): `make test` replays the committed corpora with plain `cargo test`
# and needs no fuzzing tool.
set -euo pipefail
[ "${KAMERA_SETUP_FOR:-test}" = fuzz ] || exit 0
version="0.13.2"

if [ "$(cargo fuzz --version 2>/dev/null)" = "cargo-fuzz $version" ]; then
  echo "setup: cargo-fuzz $version ready"
  exit 0
fi

echo "setup: installing cargo-fuzz $version"
# Built in a scratch directory: the tool is not part of the project's build.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
CARGO_TARGET_DIR="$build" cargo install --locked --force cargo-fuzz --version "$version"
echo "setup: cargo-fuzz $version ready"

#!/usr/bin/env bash
# Installs what Kamera needs to build, run and test on a fresh Debian machine.
# Idempotent: every step checks first and does nothing when the tool is already there.
set -euo pipefail

# `run` installs what running Kamera needs; `test` (the default) also the test tools;
# `fuzz` what building Kamera needs and cargo-fuzz (`make fuzz`).
export KAMERA_SETUP_FOR="${1:-test}"

root="$(cd "$(dirname "$0")/.." && pwd)"

debian_packages=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev ffmpeg
  cmake nasm
  # The HTTPS tests make certificates and read the served one with openssl, and speak HTTP/2
  # with curl (nghttp2).
  openssl curl
)

# With the arm64 libraries installed beside the native ones (make images), a bare name such as
# libavcodec-dev is ambiguous to dpkg: ask for the native architecture's package then.
native="$(dpkg --print-architecture)"
missing=()
for pkg in "${debian_packages[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1 && ! dpkg -s "$pkg:$native" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "setup: Debian packages ready"

# Further, independent setup steps (Python tools, helm/kubectl, browser), each idempotent.
for step in "$root"/scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  # Fuzzing needs the build packages above and its own step, none of the test tools.
  if [ "$KAMERA_SETUP_FOR" = fuzz ] && [[ "$step" != *-fuzz.sh ]]; then continue; fi
  bash "$step"
done

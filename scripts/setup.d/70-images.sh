#!/usr/bin/env bash
# Container images without a daemon (`make images`, tests/images): buildah builds the
# Dockerfiles, mmdebstrap makes the Debian base images from the machine's own apt sources,
# skopeo/umoci/runc unpack and run them as a pod; and the arm64 build: Debian's cross gcc, the
# arm64 libav* headers (multiarch), the Rust target, qemu-user-static for the arm64 smoke test.
set -euo pipefail
[ "${KAMERA_SETUP_FOR:-test}" = run ] && exit 0  # image and test tools only

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

packages=(buildah umoci skopeo runc mmdebstrap iproute2 qemu-user-static binfmt-support arch-test
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
arm64_packages=(libavcodec-dev:arm64 libavformat-dev:arm64 libavutil-dev:arm64
  libswscale-dev:arm64 libswresample-dev:arm64 libavfilter-dev:arm64 libavdevice-dev:arm64)

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding the arm64 architecture to dpkg (cross-building the arm64 images)"
  $sudo_cmd dpkg --add-architecture arm64
  $sudo_cmd apt-get update -qq
fi
missing=()
for pkg in "${packages[@]}" "${arm64_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# arm64 programs run through qemu: the kernel's binfmt_misc entry (with the F flag Debian's
# qemu-user-static sets, so that it works inside containers too). A machine without systemd
# (a CI VM, a container) may have binfmt_misc unmounted.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  $sudo_cmd mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
    || echo "setup: warning: cannot mount binfmt_misc; arm64 images will not build here" >&2
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "setup: registering qemu-aarch64 with binfmt_misc"
  $sudo_cmd update-binfmts --enable qemu-aarch64
fi

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "setup: adding the Rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi
echo "setup: image tools ready (buildah, umoci, skopeo, runc, mmdebstrap, arm64 cross build)"

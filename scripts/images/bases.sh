#!/usr/bin/env bash
# Local stand-ins for the registry base images the Dockerfiles name, made from Debian packages
# with mmdebstrap (no registry is needed, only the Debian mirror this machine's apt already uses),
# and committed to buildah's local storage as localhost/kamera-base/<name>:bookworm-<arch>.
#
#   debian-slim   debian:bookworm-slim               minbase, no docs or locales
#   distroless-cc gcr.io/distroless/cc-debian12      glibc, libgcc, CA bundle, tzdata, user 65532;
#                                                     no shell, no package manager
#   python        python:3.12-slim                   debian-slim + Debian's python3 (3.11) and pip
#
# Usage: bases.sh ARCH NAME...   (prints nothing on success but the image names, one a line)
# Cached: each base is made again only when its recipe (this file) or the apt sources change.
set -euo pipefail

arch="$1"; shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/build/images/cache"
mkdir -p "$cache"

# The machine's own Debian sources (deb822 debian.sources, else the one-line sources.list):
# the mirror is never written into the repository.
sources() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cat /etc/apt/sources.list.d/debian.sources
  elif [ -f /etc/apt/sources.list ]; then
    grep -E '^\s*deb\s' /etc/apt/sources.list
  else
    echo "images: no Debian apt sources on this machine (/etc/apt/sources.list[.d])" >&2
    exit 1
  fi
}

# Trim what no container needs, as the registry's slim images do; merged /usr made by
# mmdebstrap's hook rather than the usrmerge package (which would pull in perl).
slim_opts=(
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --aptopt='APT::Install-Recommends "false"'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/*'
)

rootfs() {  # NAME OUT.tar
  local name="$1" out="$2"
  case "$name" in
    debian-slim)
      sources | nice mmdebstrap --quiet --architectures="$arch" --variant=minbase "${slim_opts[@]}" \
        bookworm "$out" - ;;
    python)
      sources | nice mmdebstrap --quiet --architectures="$arch" --variant=minbase "${slim_opts[@]}" \
        --include=python3,python3-pip,python3-setuptools,python3-wheel,python-is-python3 \
        --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
        --customize-hook='ln -sf /usr/bin/pip3 "$1"/usr/local/bin/pip' \
        bookworm "$out" - ;;
    distroless-cc)
      # "extract" unpacks without maintainer scripts: no shell or dpkg database is needed.
      sources | nice mmdebstrap --quiet --architectures="$arch" --variant=extract \
        --include=base-files,netbase,tzdata,ca-certificates,libc6,libgcc-s1,libstdc++6,libgomp1 \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --customize-hook='cat "$1"/usr/share/ca-certificates/mozilla/*.crt > "$1"/etc/ssl/certs/ca-certificates.crt' \
        --customize-hook='printf "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" > "$1"/etc/passwd' \
        --customize-hook='printf "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n" > "$1"/etc/group' \
        --customize-hook='mkdir -p "$1"/home/nonroot "$1"/tmp && chown 65532:65532 "$1"/home/nonroot && chmod 1777 "$1"/tmp' \
        --customize-hook='rm -rf "$1"/var/lib/apt "$1"/var/cache/apt "$1"/var/lib/dpkg "$1"/etc/apt "$1"/usr/share/ca-certificates' \
        bookworm "$out" - ;;
    *) echo "images: unknown base $name" >&2; exit 1 ;;
  esac
}

for name in "$@"; do
  image="localhost/kamera-base/$name:bookworm-$arch"
  key="$( (sha256sum < "$0"; sources) | sha256sum | cut -c1-16)"
  stamp="$cache/base-$name-$arch.key"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && buildah inspect --type image "$image" >/dev/null 2>&1; then
    echo "$image"
    continue
  fi
  echo "images: making base $image with mmdebstrap" >&2
  tar="$cache/base-$name-$arch.tar"
  if ! rootfs "$name" "$tar" > "$cache/base-$name-$arch.log" 2>&1; then
    cat "$cache/base-$name-$arch.log" >&2
    exit 1
  fi
  ctr="$(buildah from --arch "$arch" scratch)"
  buildah add --quiet "$ctr" "$tar" / >/dev/null
  buildah config --arch "$arch" --os linux \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.description="kamera local base: $name (Debian bookworm)" "$ctr"
  case "$name" in
    distroless-cc) buildah config --user 65532:65532 --workingdir /home/nonroot "$ctr" ;;
    *) buildah config --cmd /bin/bash "$ctr" ;;
  esac
  buildah commit --quiet --rm "$ctr" "$image" >/dev/null
  rm -f "$tar"
  echo "$key" > "$stamp"
  echo "$image"
done

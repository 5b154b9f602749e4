#!/usr/bin/env bash
# `make images`: Kamera's OCI images built daemonless with buildah from the Dockerfiles, written
# as OCI archives (one image index per image, holding every arch built) under build/images/.
#
#   scripts/images.sh [--arch amd64,arm64] [--binaries] [IMAGE...]
#
# --binaries: only the release binaries (build/images/bin/<arch>/), no images.
# --out DIR: write the archives there instead of build/images/ (the tests' one-arch archives
#   go to build/images/test/, so that they never replace the multi-arch ones).
# --test-binaries DIR: take the worker and operator binaries from DIR (make test's own build,
#   target/debug) instead of building the release ones: stripped copies go to <out>/bin/<arch>/
#   and the images are tagged <version>-test-<arch>. The pod rehearsal in make test runs the
#   same Dockerfiles and bases without a second compile of the workspace. Host arch only.
# IMAGE: worker operator processor-basic processor-motion (the default set) and processor-yolo
# (opt-in: ultralytics pulls PyTorch, several GiB). --arch defaults to amd64,arm64 (KAMERA_ARCHES).
#
# The Dockerfiles are built as they are, with two build args: BINARIES=prebuilt copies the
# release binaries built here by cargo (profile `image`: stripped) instead of compiling inside
# the container, and RUNTIME_IMAGE / PYTHON_IMAGE name local Debian bases (scripts/images/bases.sh)
# instead of registry images. Cached: an image is rebuilt only when the hash of its inputs
# (Dockerfile, binary or sources, base image, args) changed, and buildah's --layers cache keeps
# the package-install steps of unchanged bases.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

arches="${KAMERA_ARCHES:-amd64,arm64}"
images=()
binaries_only=false
archives=""
test_binaries=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arches="$2"; shift 2 ;;
    --arch=*) arches="${1#--arch=}"; shift ;;
    --binaries) binaries_only=true; shift ;;
    --out) archives="$2"; shift 2 ;;
    --test-binaries) test_binaries="$(realpath "$2")"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) images+=("$1"); shift ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(worker operator processor-basic processor-motion)
IFS=, read -r -a arch_list <<<"$arches"

out="$root/build/images"
cache="$out/cache"
archives="$(realpath -m "${archives:-$out}")"
mkdir -p "$cache" "$archives"
log() { printf 'images: %s\n' "$*" >&2; }

# Binaries by arch: the release ones in build/images/bin, a test build's beside its archives.
bindir="$out/bin"
flavour=""
if [ -n "$test_binaries" ]; then
  bindir="$archives/bin"
  flavour="test-"
fi
case "$bindir" in
  "$root"/*) ;;
  *) log "the binaries must lie inside the repository (the build context): $bindir"; exit 1 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi
repo="localhost/kamera"

# Image names: kamera-worker, kamera-operator, processor-<name> (as in examples/processors/*.yaml).
name_of() { case "$1" in worker|operator) echo "kamera-$1" ;; *) echo "$1" ;; esac; }
hash_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

# The cargo target of an arch, and the environment cross-compiling for it needs.
rust_target() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    *) log "unsupported arch $1"; exit 1 ;;
  esac
}

# Builds the release binaries of the crates the images need, for one arch, into bin/<arch>/.
binaries() {  # ARCH CRATE...
  local arch="$1"; shift
  local target; target="$(rust_target "$arch")"
  local packages=() dir
  for crate in "$@"; do packages+=(-p "kamera-$crate"); done
  if [ "$arch" = amd64 ] && [ "$(uname -m)" = x86_64 ]; then
    nice cargo build --quiet --locked --profile image "${packages[@]}"
    dir="$CARGO_TARGET_DIR/image"
  else
    # shellcheck source=scripts/images/cross.sh
    source "$root/scripts/images/cross.sh" "$target"
    nice cargo build --quiet --locked --profile image --target "$target" "${packages[@]}"
    dir="$CARGO_TARGET_DIR/$target/image"
  fi
  mkdir -p "$bindir/$arch"
  for crate in "$@"; do
    cmp -s "$dir/kamera-$crate" "$bindir/$arch/kamera-$crate" \
      || cp "$dir/kamera-$crate" "$bindir/$arch/kamera-$crate"
  done
}

# Stripped copies of a test build's binaries (unoptimised, but without debug info, as images are).
test_build_binaries() {  # ARCH CRATE...
  local arch="$1"; shift
  mkdir -p "$bindir/$arch"
  for crate in "$@"; do
    local src="$test_binaries/kamera-$crate" dst="$bindir/$arch/kamera-$crate"
    [ -x "$src" ] || { log "$src is missing: cargo build --workspace --bins"; exit 1; }
    strip -o "$dst.new" "$src"
    if cmp -s "$dst.new" "$dst"; then rm "$dst.new"; else mv "$dst.new" "$dst"; fi
  done
}

# Dockerfile, build args and the inputs that decide an image's content.
recipe() {  # IMAGE ARCH -> sets dockerfile, base, base_arg, inputs
  local image="$1" arch="$2"
  case "$image" in
    worker|operator)
      dockerfile="$image/Dockerfile"
      base="$([ "$image" = worker ] && echo debian-slim || echo distroless-cc)"
      base_arg=RUNTIME_IMAGE
      inputs=("$bindir/$arch/$name") ;;
    processor-*)
      local name="${image#processor-}"
      dockerfile="examples/processors/$name/Dockerfile"
      [ -f "$dockerfile" ] || { log "no such image: $image"; exit 1; }
      base=python
      base_arg=PYTHON_IMAGE
      mapfile -t inputs < <(git ls-files -co --exclude-standard sdk/python "examples/processors/$name" \
        | grep -v -e '/tests/' -e '__pycache__') ;;
    *) log "no such image: $image"; exit 1 ;;
  esac
}

# Both binaries, always, whichever images were asked for: cargo unifies dependency features over
# the packages of one build, so building one crate alone would recompile shared dependencies
# and invalidate the other's (minutes, each time the set changes).
needs_binaries=false
for image in "${images[@]}"; do
  case "$image" in worker|operator) needs_binaries=true ;; esac
done
if $needs_binaries; then
  for arch in "${arch_list[@]}"; do
    if [ -n "$test_binaries" ]; then
      [ "$arch" = "$(dpkg --print-architecture)" ] || { log "--test-binaries: host arch only"; exit 1; }
      log "worker operator ($arch): the test build's binaries from ${test_binaries#"$root"/}"
      test_build_binaries "$arch" worker operator
    else
      log "cargo build --profile image worker operator ($arch)"
      binaries "$arch" worker operator
    fi
  done
fi

$binaries_only && exit 0

# RUN steps fetch packages (apt, pip) through whatever this machine trusts: its CA bundle is
# mounted for the build only (a TLS-inspecting proxy's CA, say), never written into a layer.
run_mounts=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  run_mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi

summary=()
for image in "${images[@]}"; do
  name="$(name_of "$image")"
  refs=()
  keys=""
  for arch in "${arch_list[@]}"; do
    recipe "$image" "$arch"
    base_image="$(bash scripts/images/bases.sh "$arch" "$base")"
    base_id="$(buildah inspect --type image --format '{{.FromImageID}}' "$base_image")"
    key="$( (hash_of "$dockerfile" "${inputs[@]}"; echo "$base_id $version $commit") | sha256sum | cut -c1-16)"
    ref="$repo/$name:$version-$flavour$arch"
    stamp="$cache/$flavour$image-$arch.key"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && buildah inspect --type image "$ref" >/dev/null 2>&1; then
      log "$name ($arch): up to date"
    else
      log "$name ($arch): buildah bud -f $dockerfile"
      nice buildah bud --quiet --layers --pull=never --network=host --platform "linux/$arch" \
        "${run_mounts[@]}" --build-arg BINARIES=prebuilt --build-arg "$base_arg=$base_image" \
        --build-arg "BINARIES_DIR=${bindir#"$root"/}" \
        --label "org.opencontainers.image.version=$version" \
        --label "org.opencontainers.image.revision=$commit" \
        --label "org.opencontainers.image.title=$name" \
        -f "$dockerfile" -t "$ref" -t "$repo/$name:$version-$commit-$flavour$arch" . >/dev/null
      echo "$key" > "$stamp"
    fi
    refs+=("$ref")
    keys="$keys $key"
  done

  # One OCI archive per image: an index of every arch built, named by version and commit;
  # the reference inside is repository:version, the tag the chart uses by default.
  archive="$archives/$name-$version-$commit.oci.tar"
  index_key="$(echo "$keys" | sha256sum | cut -c1-16)"
  stamp="$cache/$flavour$image-index-$(echo "$archives" | sha256sum | cut -c1-8).key"
  if [ ! -f "$archive" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$index_key" ]; then
    list="$repo/$name:$version"
    buildah manifest rm "$list" >/dev/null 2>&1 || true
    buildah manifest create "$list" >/dev/null
    for ref in "${refs[@]}"; do buildah manifest add "$list" "containers-storage:$ref" >/dev/null; done
    rm -f "$archives/$name-"*.oci.tar
    buildah manifest push --quiet --all --format oci "$list" "oci-archive:$archive:$list" >/dev/null
    # The archive is the product; a list left in buildah's storage only confuses `buildah images`.
    buildah manifest rm "$list" >/dev/null
    echo "$index_key" > "$stamp"
  fi
  ln -sf "$(basename "$archive")" "$archives/$name.oci.tar"
  summary+=("$(printf '%-26s %8s MiB  %s  (%s)' "$name" \
    "$(( $(stat -c %s "$archive") / 1048576 ))" "$(basename "$archive")" "${arch_list[*]}")")
done

printf '\n%s\n' "Images (OCI archives, compressed layers of every arch) in ${archives#"$root"/}:" >&2
for line in "${summary[@]}"; do echo "  $line" >&2; done

# Sourced: the environment cargo needs to cross-compile Kamera for a Debian multiarch target
# (`source scripts/images/cross.sh aarch64-unknown-linux-gnu`): Debian's cross gcc as linker and
# C compiler (turbojpeg's cmake build), pkg-config and bindgen reading the target's libav*
# headers and libraries (libav*-dev:arm64, installed by scripts/setup.d/70-images.sh).
# shellcheck shell=bash
cross_target="$1"
case "$cross_target" in
  aarch64-unknown-linux-gnu) cross_triple=aarch64-linux-gnu ;;
  *) echo "cross: unsupported target $cross_target" >&2; return 1 ;;
esac
cross_env="${cross_target//-/_}"
export "CARGO_TARGET_${cross_env^^}_LINKER=$cross_triple-gcc"
export "CC_${cross_env}=$cross_triple-gcc"

export "AR_${cross_env}=$cross_triple-ar"
export PKG_CONFIG_ALLOW_CROSS=1
export "PKG_CONFIG_LIBDIR_${cross_env}=/usr/lib/$cross_triple/pkgconfig:/usr/share/pkgconfig"
export "BINDGEN_EXTRA_CLANG_ARGS_${cross_env}=--target=$cross_triple -I/usr/include/$cross_triple"

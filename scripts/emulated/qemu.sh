#!/usr/bin/env bash
# Builds QEMU with the `nitro-enclave` machine from Debian's backports source, once, into the cache;
# prints the path of qemu-system-x86_64. Debian's own QEMU packages lack the machine (bookworm's is
# 7.2; backports' is built without libcbor). The firmware comes from the backports seabios
# and qemu-system-data packages at run time (-L /usr/share/seabios -L /usr/share/qemu).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

# The upstream version; the source is the one bookworm-backports carries for it.
QEMU_VERSION=10.0.2
# What the build depends on besides the version; the cache is keyed by its hash.
DEVICES='CONFIG_NITRO_ENCLAVE=y
CONFIG_MICROVM=y
CONFIG_SERIAL_ISA=y'
CONFIGURE=(--python=/usr/bin/python3 --target-list=x86_64-softmmu --without-default-features
  --without-default-devices --with-devices-x86_64=tessera --disable-install-blobs --enable-libcbor
  --enable-gnutls --enable-fdt=system --enable-vhost-user --enable-kvm --disable-docs --disable-werror)
config_hash="$(printf '%s\n' "$DEVICES" "${CONFIGURE[@]}" | sha256sum | cut -c1-12)"
dest="$TESSERA_EMULATED_CACHE/qemu-$QEMU_VERSION-$config_hash"
if [ -x "$dest/qemu-system-x86_64" ]; then echo "$dest/qemu-system-x86_64"; exit 0; fi

ensure_backports
apt_install build-essential pkg-config ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev \
  libcbor-dev libgnutls28-dev flex bison python3-venv dpkg-dev
apt_install -t bookworm-backports meson python3-pycotap qemu-system-data seabios

work="$(mktemp -d "$TESSERA_EMULATED_CACHE/qemu-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
deb_version="$(apt-cache showsrc qemu | awk '/^Version: /{print $2}' | grep -F ":$QEMU_VERSION+" | sed -n 1p)"
[ -n "$deb_version" ] || { log "bookworm-backports has no qemu $QEMU_VERSION source"; exit 1; }
log "fetching the qemu $deb_version source"
# Only the upstream tarball is needed (Debian's patches are not).
apt-get source --download-only -qq "qemu=$deb_version" >/dev/null 2>&1 || true
tarball="$(ls qemu_"$QEMU_VERSION"*.orig.tar.* 2>/dev/null | sed -n 1p)"
[ -n "$tarball" ] || { log "could not download the qemu $deb_version source tarball"; exit 1; }
tar xf "$tarball"
src="$(find . -maxdepth 1 -type d -name 'qemu-*' | sed -n 1p)"
cd "$src"
# The +ds tarball has no firmware blobs: do not unpack the edk2 ones.
sed -i 's/^    unpack_edk2_blobs = bzip2.found()/    unpack_edk2_blobs = false/' meson.build
printf '%s\n' "$DEVICES" > configs/devices/x86_64-softmmu/tessera.mak
mkdir build && cd build
log "configuring"
../configure "${CONFIGURE[@]}" >configure.log 2>&1 \
  || { tail -n 40 configure.log >&2; exit 1; }
log "building (several minutes)"
nice ninja -j"${JOBS:-$(nproc)}" qemu-system-x86_64 >build.log 2>&1 || { tail -n 40 build.log >&2; exit 1; }
mkdir -p "$dest.tmp"
cp qemu-system-x86_64 "$dest.tmp/"
rm -rf "$dest"; mv "$dest.tmp" "$dest"
echo "$dest/qemu-system-x86_64"

#!/usr/bin/env bash
# Prepares the emulated enclave's kernel, once, into the cache; prints the folder holding
#   vmlinuz                       Debian's cloud kernel (a bzImage), pinned by version and SHA-256
#   modules/*.ko.xz               its virtio-mmio, NSM and vsock modules, in load order in modules/order
#   modules/tessera_virtio_mmio.ko  built here from virtio-mmio-cmdline/ against the matching headers
# Debian's kernel lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, the option that turns the
# virtio_mmio.device= command-line parameters (how Nitro and QEMU's nitro-enclave machine describe
# the NSM and vsock devices) into devices; tessera_virtio_mmio does that job (docs/image.md).
#
# The packages come from bookworm's security suite; when Debian retires this version, update
# KERNEL_ABI, KERNEL_DEB_VERSION and the four SHA-256 values from `apt-cache show`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

KERNEL_ABI=6.12.117+deb12
KERNEL_DEB_VERSION=6.12.117-1~deb12u1
declare -A DEB_SHA256=(
  [linux-image-$KERNEL_ABI-cloud-amd64-unsigned]=670b2688bcf94c24693f7c7e1fc9776ff2e202ff15553a2614f79415d48a6607
  [linux-headers-$KERNEL_ABI-cloud-amd64]=d554fd0fd1ba990b36a428a5982c295e365bb5598c366bdf088aeb467c4c6dd3
  [linux-headers-$KERNEL_ABI-common]=0c70107dda266a9d26dc119d80a71589202b17fbf4d4ddf544681c89e2002742
  [linux-kbuild-$KERNEL_ABI]=69761d1daf39e43485d278cc7066f77c15edc3b881d6e47afd61cf0da0985677
)
# Load order: the transport first, then the drivers that bind to its devices, then the devices.
MODULES=(
  kernel/drivers/virtio/virtio_mmio.ko.xz
  kernel/drivers/misc/nsm.ko.xz
  kernel/net/vmw_vsock/vsock.ko.xz
  kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko.xz
  kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko.xz
)

key="$(cat "$0" "$here"/virtio-mmio-cmdline/* | sha256sum | cut -c1-12)"
dest="$TESSERA_EMULATED_CACHE/kernel-$KERNEL_ABI-$key"
if [ -f "$dest/modules/order" ]; then echo "$dest"; exit 0; fi

apt_install make gcc-12 binutils xz-utils dpkg-dev
work="$(mktemp -d "$TESSERA_EMULATED_CACHE/kernel-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
chmod 755 "$work"  # apt's download sandbox user must be able to write here
log "downloading linux $KERNEL_DEB_VERSION (cloud-amd64) and its headers"
pkgs=()
for p in "${!DEB_SHA256[@]}"; do pkgs+=("$p=$KERNEL_DEB_VERSION"); done
if ! apt-get download -qq "${pkgs[@]}" >/dev/null 2>download.log; then
  cat download.log >&2
  log "Debian no longer serves linux $KERNEL_DEB_VERSION? Update KERNEL_ABI, KERNEL_DEB_VERSION and the SHA-256 values in $0 from 'apt-cache show linux-image-6.12.*-cloud-amd64-unsigned'."
  exit 1
fi
for p in "${!DEB_SHA256[@]}"; do
  f=$(ls "${p}_"*.deb)
  got=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$got" = "${DEB_SHA256[$p]}" ] || { log "$f has SHA-256 $got, expected ${DEB_SHA256[$p]}"; exit 1; }
  dpkg-deb -x "$f" root
done

headers="$work/root/usr/src/linux-headers-$KERNEL_ABI-cloud-amd64"
# The headers' Makefile includes the common tree by its installed path; point it at ours.
sed -i "s|/usr/src/|$work/root/usr/src/|" "$headers/Makefile"
cp -r "$here/virtio-mmio-cmdline" mod
log "building tessera_virtio_mmio.ko"
# No BTF (pahole is not needed); build paths mapped so the module does not depend on them.
make -s -C "$headers" M="$work/mod" CONFIG_DEBUG_INFO_BTF_MODULES= \
  KCFLAGS="-ffile-prefix-map=$work=/build" modules >build.log 2>&1 || { cat build.log >&2; exit 1; }
strip --strip-debug mod/tessera_virtio_mmio.ko

mkdir -p out/modules
cp "root/boot/vmlinuz-$KERNEL_ABI-cloud-amd64" out/vmlinuz
: >out/modules/order
for m in "${MODULES[@]}"; do
  cp "root/lib/modules/$KERNEL_ABI-cloud-amd64/$m" out/modules/
  basename "$m" >>out/modules/order
done
cp mod/tessera_virtio_mmio.ko out/modules/
echo tessera_virtio_mmio.ko >>out/modules/order
rm -rf "$dest"; mv out "$dest"
echo "$dest"

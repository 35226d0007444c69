#!/usr/bin/env bash
# Installs vhost-device-vsock (the vhost-user vsock backend QEMU's nitro-enclave machine talks to)
# from crates.io, once, into the cache; prints the path of the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

VERSION=0.3.0
dest="$TESSERA_EMULATED_CACHE/vhost-device-vsock-$VERSION"
if [ -x "$dest/bin/vhost-device-vsock" ]; then echo "$dest/bin/vhost-device-vsock"; exit 0; fi
log "building vhost-device-vsock $VERSION from crates.io (about 2 minutes)"
# A target dir of its own: the workspace's would be locked by any build running beside this.
CARGO_TARGET_DIR="$TESSERA_EMULATED_CACHE/vhost-device-vsock-target" \
  nice cargo install --quiet --locked --version "=$VERSION" --root "$dest.tmp" vhost-device-vsock >&2
rm -rf "$TESSERA_EMULATED_CACHE/vhost-device-vsock-target" "$dest"
mv "$dest.tmp" "$dest"
echo "$dest/bin/vhost-device-vsock"

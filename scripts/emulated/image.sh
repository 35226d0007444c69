#!/usr/bin/env bash
# `make image`: the enclave image (EIF) from the release binaries of this tree, the pinned kernel
# (scripts/emulated/kernel.sh) and the shared libraries the binaries load, through
# `tessera image build`. Prints the image's SHA-256 and PCR0-2.
#   OUT=path.eif (default target/image/tessera-enclave.eif)   BIN=release binary folder
#   TESSERA=the tessera CLI that builds it (default $BIN/tessera; any build of it gives the same image)
#   PIVOT=path   the pivot app (default: tessera-demo-pivot)   JSON=1 for the JSON report
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

BIN=${BIN:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release}
OUT=${OUT:-$(dirname "$BIN")/image/tessera-enclave.eif}
PIVOT=${PIVOT:-$BIN/tessera-demo-pivot}
mkdir -p "$(dirname "$OUT")"

kernel_dir=$("$here/kernel.sh")
TESSERA=${TESSERA:-$BIN/tessera}
for b in "$TESSERA" "$BIN/tessera-init" "$BIN/tessera-enclave"; do
  [ -x "$b" ] || { echo "image: $b is missing: run make image (it builds them)" >&2; exit 2; }
done

# The ELF interpreter and shared libraries of the programs in the image, at the paths they are
# loaded from. They come from this machine's Debian packages (docs/image.md names the versions).
libs=()
while read -r lib; do libs+=(--lib "$lib"); done < <(
  for b in "$BIN/tessera-init" "$BIN/tessera-enclave" "$PIVOT"; do ldd "$b"; done |
    awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u)

modules=()
while read -r m; do modules+=(--module "$kernel_dir/modules/$m"); done <"$kernel_dir/modules/order"

"$TESSERA" image build --kernel "$kernel_dir/vmlinuz" --init "$BIN/tessera-init" \
  --enclave "$BIN/tessera-enclave" --pivot "$PIVOT" "${modules[@]}" \
  --module-params 'tessera_virtio_mmio.ko=device=${virtio_mmio.device}' \
  "${libs[@]}" ${JSON:+--json} -o "$OUT"

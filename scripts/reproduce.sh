#!/usr/bin/env bash
# `make reproduce`: builds the release binaries of the committed tree (HEAD, or $REV) twice, in
# two directories of different names and depths, and fails unless every binary is bit-for-bit
# the same. A member runs this against a release tag and compares the table with the published
# hashes (docs/release.md).
#
# What makes two builds agree:
# - the sources are `git archive` of one commit, so uncommitted edits never leak in;
# - rustc's --remap-path-prefix and the C compiler's -ffile-prefix-map rewrite the checkout,
#   $CARGO_HOME and the toolchain directory to fixed names (aws-lc-sys compiles C and assembly
#   whose __FILE__ strings and debug paths would otherwise carry the build directory);
# - SOURCE_DATE_EPOCH is the commit's time, for any build script that stamps a date;
# - Cargo.lock is honoured (--locked) and each build has its own target dir inside its checkout.
# Then the enclave image (docs/image.md) is built from each tree's binaries with the pinned
# kernel, and the two EIFs must match too (IMAGE=0 skips the image).
set -euo pipefail
cd "$(dirname "$0")/.."

rev=${REV:-HEAD}
commit=$(git rev-parse --verify "$rev^{commit}")
work=${REPRO_DIR:-$(mktemp -d /tmp/tessera-reproduce.XXXXXX)}
bins=(tessera tessera-enclave tessera-relay tessera-init tessera-demo-pivot)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
sysroot=$(rustc --print sysroot)

export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$commit")
# Locale and time zone reach some build scripts' output.
export LC_ALL=C TZ=UTC
unset RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER CARGO_TARGET_DIR

build() {
  local dir=$1
  mkdir -p "$dir"
  git archive --format=tar "$commit" | tar -x -C "$dir"
  local maps=("$dir=/build/tessera" "$cargo_home=/cargo" "$sysroot=/rustc-toolchain")
  local rustflags="" cflags=""
  for m in "${maps[@]}"; do
    rustflags+=" --remap-path-prefix=$m"
    cflags+=" -ffile-prefix-map=$m"
  done
  echo "reproduce: building $commit in $dir" >&2
  (
    cd "$dir"
    RUSTFLAGS="${rustflags# }" CFLAGS="${cflags# }" CXXFLAGS="${cflags# }" \
      CARGO_TARGET_DIR="$dir/target" \
      cargo build --locked --release -p operator-tui -p tessera-enclave -p tessera-relay -p tessera-init \
      >"$dir.build.log" 2>&1
  ) || { tail -n 40 "$dir.build.log" >&2; echo "reproduce: build failed in $dir" >&2; exit 1; }
}

a="$work/a/tessera"
b="$work/second-builder/src/tessera-copy"
build "$a"
build "$b"

status=0
printf '\n%-16s %-64s %s\n' binary "sha256 (build A)" verdict
for bin in "${bins[@]}"; do
  ha=$(sha256sum "$a/target/release/$bin" | cut -d' ' -f1)
  hb=$(sha256sum "$b/target/release/$bin" | cut -d' ' -f1)
  if [ "$ha" = "$hb" ]; then
    verdict=same
  else
    verdict="DIFFERS (build B: $hb)"
    status=1
  fi
  printf '%-16s %-64s %s\n' "$bin" "$ha" "$verdict"
done
if [ "${IMAGE:-1}" != 0 ]; then
  for t in "$a" "$b"; do
    BIN="$t/target/release" OUT="$t/target/image/tessera-enclave.eif" scripts/emulated/image.sh \
      >"$t.image.log" 2>&1 || { cat "$t.image.log" >&2; echo "reproduce: image build failed" >&2; exit 1; }
  done
  ha=$(sha256sum "$a/target/image/tessera-enclave.eif" | cut -d' ' -f1)
  hb=$(sha256sum "$b/target/image/tessera-enclave.eif" | cut -d' ' -f1)
  if [ "$ha" = "$hb" ]; then verdict=same; else verdict="DIFFERS (build B: $hb)"; status=1; fi
  printf '%-16s %-64s %s\n' "EIF" "$ha" "$verdict"
  grep -E '^PCR[0-2] ' "$a.image.log"
fi
echo
echo "commit $commit, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, $(rustc --version)"
if [ "$status" = 0 ]; then
  echo "reproduce: every binary matches"
  [ -n "${REPRO_DIR:-}" ] || rm -rf "$work"
else
  echo "reproduce: MISMATCH; both trees kept under $work (compare with diffoscope)" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Benchmarks of the enclave image, each beside its floor, printed as a table (docs/image.md):
# - image build: `tessera image build` of the real inputs, against the floor of reading the same
#   input bytes and hashing them once (sha384sum), which any builder must do;
# - boot: QEMU start to tessera-init's first line (the kernel's boot, the floor) and to
#   "listening on vsock" (init, modules, /dev/nsm, tessera-enclave ready), over RUNS boots.
#   RUNS (default 5), BIN (release binaries).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
BIN=${BIN:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release}
RUNS=${RUNS:-5}
work=$(mktemp -d /tmp/tessera-image-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%8d %8d %8d", a[1], a[int((NR+1)/2)], a[NR]}'; }

EIF="$work/image.eif"
OUT="$EIF" BIN="$BIN" "$here/image.sh" >/dev/null
kernel_dir=$("$here/kernel.sh")
inputs=("$kernel_dir"/vmlinuz "$kernel_dir"/modules/* "$BIN/tessera-init" "$BIN/tessera-enclave" "$BIN/tessera-demo-pivot")

build=() floor=()
for _ in $(seq 1 "$RUNS"); do
  t=$(now_ms); OUT="$EIF" BIN="$BIN" "$here/image.sh" >/dev/null; build+=($(( $(now_ms) - t )))
  t=$(now_ms); cat "${inputs[@]}" | sha384sum >/dev/null; floor+=($(( $(now_ms) - t )))
done

kernel=() ready=()
for i in $(seq 1 "$RUNS"); do
  state="$work/vm$i"; mkdir -p "$state"; : >"$state/console.log"
  "$here/run.sh" "$EIF" "$state" >"$state/run.log" 2>&1 &
  pid=$!; pids+=("$pid")
  # run.sh prints its "booting" line just after starting QEMU.
  until grep -q "enclave booting" "$state/run.log" 2>/dev/null; do sleep 0.01; kill -0 "$pid" || exit 1; done
  t=$(now_ms); k=""
  deadline=$(( t + 120000 ))
  until grep -q "listening on vsock" "$state/console.log"; do
    [ -z "$k" ] && grep -q "tessera-init: starting" "$state/console.log" && k=$(( $(now_ms) - t ))
    [ "$(now_ms)" -lt "$deadline" ] || { echo "bench: boot $i timed out" >&2; exit 1; }
    kill -0 "$pid" || { cat "$state/run.log" >&2; exit 1; }
    # Polling faster would take CPU from the emulator being measured (2 cores).
    sleep 0.05
  done
  ready+=($(( $(now_ms) - t ))); kernel+=("${k:-0}")
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

size=$(stat -c %s "$EIF")
printf '\nimage: %s bytes; %d runs each; milliseconds\n' "$size" "$RUNS"
printf '%-52s %8s %8s %8s\n' measurement min median max
printf '%-52s %s\n' "tessera image build (make image's inputs)" "$(printf '%s\n' "${build[@]}" | stats)"
printf '%-52s %s\n' "  floor: read and SHA-384 the same inputs once" "$(printf '%s\n' "${floor[@]}" | stats)"
printf '%-52s %s\n' "QEMU start to 'listening on vsock' (TCG)" "$(printf '%s\n' "${ready[@]}" | stats)"
printf '%-52s %s\n' "  floor: QEMU start to tessera-init's first line" "$(printf '%s\n' "${kernel[@]}" | stats)"

#!/usr/bin/env bash
# `make fuzz-smoke`: runs every cargo-fuzz target for $1 seconds (default 20) and fails if any
# target crashes, leaks past the RSS limit, makes one allocation above 64 MiB (every input these
# parsers accept is far smaller, so a larger allocation means a length taken on trust) or times
# out on one input. Seeds corpora at run time from the repository's own vectors: the real AWS
# attestation documents in core/tests/vectors/nitro/real, the generated attestation documents
# and EIFs (written by the vector tests), and the demo's bundles and transcript when demo-out/
# exists.
set -uo pipefail
seconds=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz

seed() { # seed TARGET FILE...
  local dir="corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -f "$f" "$dir/seed-$(basename "$f")"; done
  return 0
}
shopt -s nullglob globstar
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
for t in attestation_vectors eif_vectors; do
  if ! (cd "$root" && TESSERA_WRITE_VECTORS="$generated/$t" cargo test --locked -q -p tessera-core --test "$t" \
    -- --ignored --exact write_vectors write_generated_vectors) >"$generated/$t.log" 2>&1; then
    cat "$generated/$t.log" >&2
    echo "fuzz-smoke: writing the $t seeds failed" >&2
    exit 1
  fi
done
real=("$root"/core/tests/vectors/nitro/real/*.cbor)
[ ${#real[@]} -ge 17 ] || { echo "fuzz-smoke: the real attestation documents are missing" >&2; exit 1; }
seed attestation_doc "${real[@]}" "$generated"/attestation_vectors/*.cbor
seed eif "$generated"/eif_vectors/*.eif
[ "$(ls corpus/eif | wc -l)" -ge 3 ] || { echo "fuzz-smoke: no EIF seeds" >&2; exit 1; }
seed bundle "$root"/demo-out/**/*.tbundle
seed transcript "$root"/demo-out/transcript.jsonl
seed relay_body # created empty so every target has a corpus dir
seed egress_request # the egress proxy protocol, proxy side
seed egress_response # the egress proxy protocol, enclave side
seed http_response "$root"/fuzz/seeds/http_response/*
seed fetch_proof
seed yubikey_attest "$root"/fuzz/seeds/yubikey_attest/*
seed forward "$root"/demo-out/forward/*.cbor
seed scan_frames
seed dr "$root"/demo-out/genesis/genesis-output.tbundle "$root"/demo-out/dr-restore/genesis-output.tbundle # DR wraps

t0=$(date +%s)
mkdir -p artifacts
if ! cargo +nightly fuzz build -O >artifacts/build.log 2>&1; then
  tail -n 40 artifacts/build.log >&2
  echo "fuzz-smoke: building the fuzz targets failed" >&2
  exit 1
fi
echo "fuzz-smoke: built in $(( $(date +%s) - t0 ))s"

failed=()
for t in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$t"
  log="artifacts/$t.smoke.log"
  if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" \
    -rss_limit_mb=2048 -malloc_limit_mb=64 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
    echo "fuzz-smoke: $t ok: ${seconds}s, ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "corpus/$t" | wc -l)"
  else
    echo "fuzz-smoke: $t FAILED (log: fuzz/$log)" >&2
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 8 >&2
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-smoke: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz-smoke: all targets clean in $(( $(date +%s) - t0 ))s"

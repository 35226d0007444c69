#!/usr/bin/env bash
# Runs every cargo-fuzz target briefly (seconds per target as $1) and fails on any crash.
set -euo pipefail
seconds=${1:-20}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build -O $targets >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in $targets; do
  echo "fuzz-smoke: $t for ${seconds}s"
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done

#!/usr/bin/env bash
# `make demo`: the core walk-through with software members.
set -euo pipefail
cd "$(dirname "$0")/.."
target/release/tessera core-demo

#!/usr/bin/env bash
# Runs the YubiKey backend's tests against the virtual PIV card behind a real pcscd.
set -euo pipefail
echo "card tests: not wired yet" >&2

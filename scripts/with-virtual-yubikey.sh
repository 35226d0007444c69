#!/usr/bin/env bash
# Runs the YubiKey PIV backend's card tests against Tessera's virtual PIV card behind a real
# pcscd, plus the rage / age-plugin-yubikey interop tests and the gpg/sq OpenPGP card test, one
# test at a time. The cards are the project's own harness in tools/virtual-card (see its README).
#
#   scripts/with-virtual-yubikey.sh            # what `make test` runs
#   scripts/with-virtual-yubikey.sh -- --nocapture
#
# Uses already running cards (VIRTUAL_YUBIKEY=1 from tools/virtual-card/start.sh) or starts
# them and stops them again afterwards. A missing card, package or tool is a failure
# (TESSERA_REQUIRE_CARD=1): the card tests never pass without having run.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CARD_DIR="$ROOT/tools/virtual-card"
CARGO="${CARGO:-cargo}"
TOOLS_TARGET="${TESSERA_TOOLS_TARGET:-$HOME/.cache/tessera-tools-target}"
extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi

# pcscd, vpcd, libclang (the cards' storage layer is bound with bindgen), tmux, gpg, sq.
"$ROOT/scripts/ensure-deps.sh"

started=0
if [ "${VIRTUAL_YUBIKEY:-}" != 1 ]; then
  eval "$("$CARD_DIR/start.sh")"
  started=1
fi
stop() { if [ "$started" = 1 ]; then "$CARD_DIR/stop.sh" >/dev/null 2>&1 || true; fi; }
trap stop EXIT

# rage and age-plugin-yubikey from crates.io, built once into a cache directory.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v rage >/dev/null || ! command -v age-plugin-yubikey >/dev/null; then
  echo "with-virtual-yubikey: installing rage and age-plugin-yubikey (cached in ~/.cargo/bin)" >&2
  CARGO_TARGET_DIR="$TOOLS_TARGET" "$CARGO" install --locked rage age-plugin-yubikey >&2
fi

export VIRTUAL_YUBIKEY=1 TESSERA_REQUIRE_CARD=1 VIRTUAL_YUBIKEY_DIR="${VIRTUAL_YUBIKEY_DIR:-$CARD_DIR}"
cd "$ROOT"
"$CARGO" test --locked -p operator-tui --test yubikey --test yubikey_cli --test age_interop --test tui_tmux --test openpgp_card \
  -- --test-threads=1 "${extra[@]}"

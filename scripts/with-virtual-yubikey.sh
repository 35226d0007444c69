#!/usr/bin/env bash
# Runs the YubiKey PIV backend's card tests against the virtual PIV card behind a real pcscd,
# plus the rage / age-plugin-yubikey interop tests and the gpg/sq OpenPGP card test, one test at a
# time.
#
#   scripts/with-virtual-yubikey.sh            # what `make test` runs
#   scripts/with-virtual-yubikey.sh -- --nocapture
#
# Uses an already running virtual card (VIRTUAL_YUBIKEY=1 from start.sh) or starts one (needs
# root the first time, for apt-get) and stops it again afterwards. Without a card and without
# root it prints a loud SKIPPED banner and exits 0; everywhere else the tests run for real and a
# missing card or tool is a failure (TESSERA_REQUIRE_CARD=1).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VYK_DIR="${VIRTUAL_YUBIKEY_DIR:-$ROOT/../shared/tools/virtual-yubikey}"
CARGO="${CARGO:-cargo}"
TOOLS_TARGET="${TESSERA_TOOLS_TARGET:-$HOME/.cache/tessera-tools-target}"
extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi

skip() {
  echo "" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "!!! YubiKey card tests SKIPPED: $1" >&2
  echo "!!! The PIV backend was NOT tested against a card." >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "" >&2
  exit 0
}

started=0
if [ "${VIRTUAL_YUBIKEY:-}" != 1 ]; then
  [ -x "$VYK_DIR/start.sh" ] || skip "no virtual card harness at $VYK_DIR"
  if [ "$(id -u)" -ne 0 ] && ! { command -v pcscd >/dev/null && dpkg -s vsmartcard-vpcd >/dev/null 2>&1; }; then
    skip "no virtual card running and not root (cannot install pcscd and vsmartcard-vpcd)"
  fi
  # The card's storage layer is bound with bindgen, which needs libclang.
  if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && [ -z "${LIBCLANG_PATH:-}" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      echo "with-virtual-yubikey: installing libclang-dev (to build the virtual card)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libclang-dev >/dev/null
    else
      skip "libclang is missing and not root to install it"
    fi
  fi
  eval "$("$VYK_DIR/start.sh")"
  started=1
fi
stop() { if [ "$started" = 1 ]; then "$VYK_DIR/stop.sh" >/dev/null 2>&1 || true; fi; }
trap stop EXIT

# rage and age-plugin-yubikey from crates.io, built once into a cache directory.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v rage >/dev/null || ! command -v age-plugin-yubikey >/dev/null; then
  echo "with-virtual-yubikey: installing rage and age-plugin-yubikey (cached in ~/.cargo/bin)" >&2
  CARGO_TARGET_DIR="$TOOLS_TARGET" "$CARGO" install --locked rage age-plugin-yubikey >&2
fi

export VIRTUAL_YUBIKEY=1 TESSERA_REQUIRE_CARD=1 VIRTUAL_YUBIKEY_DIR="$VYK_DIR"
cd "$ROOT"
"$CARGO" test --locked -p operator-tui --test yubikey --test yubikey_cli --test age_interop --test tui_tmux --test openpgp_card \
  -- --test-threads=1 "${extra[@]}"

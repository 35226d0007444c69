#!/usr/bin/env bash
# Starts pcscd with vsmartcard's vpcd reader driver and Tessera's two virtual cards: a PIV card
# in "Virtual PCD 00 00" and an OpenPGP card in "Virtual PCD 00 01".
#
#   eval "$(tools/virtual-card/start.sh)"   # prints `export ...` lines for the card tests
#   tools/virtual-card/stop.sh
#
# Needs the Debian packages pcscd, vsmartcard-vpcd, libpcsclite-dev, pkg-config and libclang-dev
# (scripts/ensure-deps.sh installs them; this script does too when run as root). The cards are
# built once into $TESSERA_VCARD_TARGET (default ~/.cache/tessera-virtual-card-target).
# Logs and process ids go to $TESSERA_VCARD_STATE (default /tmp/tessera-virtual-card);
# pcscd.log there has every APDU.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${TESSERA_VCARD_STATE:-/tmp/tessera-virtual-card}"
TARGET="${TESSERA_VCARD_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-virtual-card-target}"
CARGO="${CARGO:-cargo}"
mkdir -p "$STATE"

say() { echo "virtual-card: $*" >&2; }
fail() { say "$*"; exit 1; }

need=()
for p in pcscd vsmartcard-vpcd libpcsclite-dev pkg-config libclang-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  [ "$(id -u)" -eq 0 ] || fail "missing Debian packages: ${need[*]} (run scripts/ensure-deps.sh)"
  say "installing ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

say "building the cards (first time: about two minutes)"
"$CARGO" build --locked --release -q --manifest-path "$HERE/Cargo.toml" --target-dir "$TARGET" >&2
BIN="$TARGET/release/tessera-virtual-card"

# Whatever a previous start left running.
"$HERE/stop.sh" >/dev/null 2>&1 || true

# pcscd in the foreground: no systemd socket activation needed. Never connect to the vpcd ports
# to see whether they are up: vpcd would take the connection for a card.
pcscd --foreground --debug --apdu >"$STATE/pcscd.log" 2>&1 &
echo $! >"$STATE/pcscd.pid"
for _ in $(seq 1 100); do
  grep -q 'daemon ready' "$STATE/pcscd.log" 2>/dev/null && break
  kill -0 "$(cat "$STATE/pcscd.pid")" 2>/dev/null || break
  sleep 0.1
done
grep -q 'daemon ready' "$STATE/pcscd.log" || { cat "$STATE/pcscd.log" >&2; fail "pcscd did not start"; }

for card in piv:35963 openpgp:35964; do
  name=${card%%:*}
  "$BIN" "$name" "localhost:${card##*:}" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
done
for _ in $(seq 1 100); do
  grep -q 'attached' "$STATE/piv.log" && grep -q 'attached' "$STATE/openpgp.log" && break
  sleep 0.1
done
for name in piv openpgp; do
  grep -q 'attached' "$STATE/$name.log" || { cat "$STATE/$name.log" >&2; fail "the $name card did not attach"; }
done
# pcscd's reader thread polls for the card once in a while.
for _ in $(seq 1 50); do
  [ "$(grep -c 'Card inserted' "$STATE/pcscd.log" || true)" -ge 2 ] && break
  sleep 0.1
done
sleep 0.3

echo "export TESSERA_VCARD_STATE=$STATE"
echo "export VIRTUAL_YUBIKEY_DIR=$HERE"
echo "export VIRTUAL_YUBIKEY=1"
say "ready: PIV in 'Virtual PCD 00 00', OpenPGP in 'Virtual PCD 00 01'"

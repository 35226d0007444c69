#!/usr/bin/env bash
# `make demo`: a whole ceremony on this machine. A DEV enclave (local NSM, local root) and the
# relay on local sockets; five software members; genesis 3-of-5; a manifest approved by 3 of 5;
# boot; three members provision through request and share bundles; the provisioned enclave's
# app signs a message that is verified with the manifest's quorum key, and so does the pivot app
# over the relay's app bridge; then a live patch, a reshard to a new share set, and a second
# enclave that joins the namespace by key forwarding and signs with the same quorum key. The
# genesis also wraps the seed to an offline disaster-recovery key, which is drilled and, as the
# last resort would, restored to a new share set.
#
# Artifacts stay in demo-out/. KEEP=1 leaves the enclave and relay running.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release}
OUT=${OUT:-demo-out}
tessera=("$BIN/tessera")
members=(alice bob carol dave erin)
approvers=(alice bob carol)
providers=(alice carol erin)

rm -rf "$OUT"
mkdir -p "$OUT"/{members,approvals,genesis,app}
OUT=$(cd "$OUT" && pwd)
export TESSERA_TRANSCRIPT="$OUT/transcript.jsonl"

t0=$(date +%s%N)
step() { printf '\n== [%6.0f ms] %s\n' "$(( ($(date +%s%N) - t0) / 1000000 ))" "$*"; }
pids=()
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
  fi
}
trap cleanup EXIT

# Waits until a log line matching $2 appears in $1 (the programs print a readiness line).
wait_for() {
  for _ in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$1"; echo "demo: process exited early" >&2; exit 1; }
    sleep 0.05
  done
  cat "$1"; echo "demo: timed out waiting for $2 in $1" >&2; exit 1
}

step "the pivot app the manifest names (takes the quorum key on stdin, signs requests arriving on its ingress port 5000)"
cp "$BIN/tessera-demo-app" "$OUT/app/tessera-demo-app"
APP_SHA256=$(sha256sum "$OUT/app/tessera-demo-app" | cut -d' ' -f1)
echo "tessera-demo-app SHA-256 $APP_SHA256"

step "start a DEV enclave on unix:$OUT/enclave.sock"
# One copy of the enclave program for every node: a dev node's PCR0 measures its own binary.
mkdir -p "$OUT/bin" && cp "$BIN/tessera-enclave" "$OUT/bin/tessera-enclave"
"$OUT/bin/tessera-enclave" --listen "unix:$OUT/enclave.sock" --dev --dev-ca "$OUT/dev-ca.pem" \
  --dev-root-out "$OUT/dev-root.pem" --dev-pcrs-out "$OUT/dev-pcrs.json" \
  --pivot-bin "$OUT/app/tessera-demo-app" >"$OUT/enclave.log" 2>&1 &
pids+=($!)
wait_for "$OUT/enclave.log" "listening on"
grep "DEV root" "$OUT/enclave.log"

step "start the relay, with the app bridge"
"$BIN/tessera-relay" --listen 127.0.0.1:0 --app-listen 127.0.0.1:0 --enclave "unix:$OUT/enclave.sock" >"$OUT/relay.log" 2>&1 &
pids+=($!)
wait_for "$OUT/relay.log" "listening on http://"
RELAY=$(grep -o 'http://[0-9.:]*' "$OUT/relay.log" | head -n1)
BRIDGE=$(sed -n 's|^tessera-relay: app bridge on tcp://||p' "$OUT/relay.log" | head -n1)
echo "relay at $RELAY, app bridge at $BRIDGE"

step "five software members (DEV/TEST keys) write their member descriptors"
for m in "${members[@]}"; do
  "${tessera[@]}" member init-software --alias "$m" --keys "$OUT/members/$m.keys" -o "$OUT/members/$m.member.tbundle"
done

step "an offline disaster-recovery key (X25519 identity kept in a safe)"
mkdir -p "$OUT/dr"
DR=$("${tessera[@]}" dr keygen -o "$OUT/dr/dr.age-identity" | sed -n 's/^recipient: //p')
echo "DR recipient $DR"

step "genesis: the enclave makes the quorum key, splits it 3-of-5, and wraps it to the DR key"
member_args=(); for m in "${members[@]}"; do member_args+=(--member "$OUT/members/$m.member.tbundle"); done
"${tessera[@]}" genesis run --relay "$RELAY" --namespace demo --threshold 3 "${member_args[@]}" --dr-recipient "$DR" -o "$OUT/genesis"

step "each member verifies the genesis attestation and their own share, stores it, and pins the namespace's quorum key"
for m in "${members[@]}"; do
  echo "-- $m"
  "${tessera[@]}" genesis verify "$OUT/genesis/genesis-output.tbundle" --attestation "$OUT/genesis/genesis-attestation.cbor" \
    --pcrs "$OUT/dev-pcrs.json" --root "$OUT/dev-root.pem" --software "$OUT/members/$m.keys" --share-out "$OUT/members/$m.share.age" \
    --pins "$OUT/members/$m.pins" --dr-recipient "$DR"
done

step "DR drill (offline): the DR key recovers the seed, which derives the published quorum key"
"${tessera[@]}" dr drill "$OUT/genesis/genesis-output.tbundle" --attestation "$OUT/genesis/genesis-attestation.cbor" \
  --pcrs "$OUT/dev-pcrs.json" --root "$OUT/dev-root.pem" --identity "$OUT/dr/dr.age-identity"

step "the coordinator drafts the manifest (nonce 1)"
mset=(); pset=(); for m in "${members[@]}"; do mset+=(--manifest-member "$OUT/members/$m.member.tbundle"); pset+=(--patch-member "$OUT/members/$m.member.tbundle"); done
"${tessera[@]}" manifest new --namespace demo --nonce 1 --genesis "$OUT/genesis/genesis-output.tbundle" \
  --pcrs "$OUT/dev-pcrs.json" "${mset[@]}" --manifest-threshold 3 "${pset[@]}" --patch-threshold 2 \
  --app-sha256 "$APP_SHA256" --app-ingress-port 5000 -o "$OUT/manifest.tbundle"
CODE=$("${tessera[@]}" manifest show "$OUT/manifest.tbundle" --confirm-code)

step "three Manifest-set members review and approve (confirmation code $CODE)"
approval_args=()
for m in "${approvers[@]}"; do
  echo "-- $m"
  "${tessera[@]}" manifest approve "$OUT/manifest.tbundle" --software "$OUT/members/$m.keys" --confirm "$CODE" \
    --state-dir "$OUT/members/$m.approved" --pins "$OUT/members/$m.pins" --root "$OUT/dev-root.pem" \
    -o "$OUT/approvals/$m.approval.tbundle" | grep -E '^(  [✓!✗]|approval written)'

  approval_args+=(--approval "$OUT/approvals/$m.approval.tbundle")
done
"${tessera[@]}" manifest envelope "$OUT/manifest.tbundle" "${approval_args[@]}" -o "$OUT/envelope.tbundle"

step "members who did not approve record the Manifest set they trust (code $CODE announced by the coordinator)"
for m in dave erin; do
  "${tessera[@]}" trust manifest-set "$OUT/envelope.tbundle" --software "$OUT/members/$m.keys" --pins "$OUT/members/$m.pins" \
    --confirm "$CODE" | tail -n 1
done
"${tessera[@]}" trust show --software "$OUT/members/erin.keys" --pins "$OUT/members/erin.pins"

step "boot: the enclave checks the approvals and attests to its ephemeral key"
"${tessera[@]}" boot --relay "$RELAY" "$OUT/envelope.tbundle" --root "$OUT/dev-root.pem"

for m in "${providers[@]}"; do
  step "provision by $m: request bundle (online) -> share bundle (offline) -> post (online)"
  usb="$OUT/usb-$m"; mkdir -p "$usb"
  "${tessera[@]}" provision request --relay "$RELAY" -o "$usb"
  request=$(ls "$usb"/request-*.tbundle)
  "${tessera[@]}" provision sign "$request" --share "$OUT/members/$m.share.age" --root "$OUT/dev-root.pem" \
    --software "$OUT/members/$m.keys" --pins "$OUT/members/$m.pins" --confirm "$CODE" -o "$usb"
  "${tessera[@]}" provision post --relay "$RELAY" "$(ls "$usb"/share-*.tbundle)"
done

step "the provisioned enclave's app signs a message with the quorum key"
"${tessera[@]}" app-sign --relay "$RELAY" --manifest "$OUT/envelope.tbundle" --message "hello from the demo quorum"
"${tessera[@]}" status --relay "$RELAY"

step "a request over the relay's app bridge: the pivot app signs it with the quorum key"
wait_for "$OUT/enclave.log" "tessera-demo-app: listening on"
"${tessera[@]}" bridge sign --bridge "$BRIDGE" --manifest "$OUT/envelope.tbundle" --message "hello over the app bridge"

step "a live patch: two Patch-set members approve log_level=debug; the enclave applies it"
drafted=$("${tessera[@]}" patch new --manifest "$OUT/envelope.tbundle" --sequence 1 --set log_level=debug -o "$OUT/patch-1.tbundle")
echo "$drafted"
PCODE=$(sed -n 's/^confirmation code: //p' <<<"$drafted")
patch_approvals=()
for m in bob dave; do
  "${tessera[@]}" patch approve "$OUT/patch-1.tbundle" --manifest "$OUT/envelope.tbundle" --software "$OUT/members/$m.keys" \
    --pins "$OUT/members/$m.pins" \
    --confirm "$PCODE" -o "$OUT/approvals/$m.patch-1.approval.tbundle" | tail -n 1
  patch_approvals+=(--approval "$OUT/approvals/$m.patch-1.approval.tbundle")
done
"${tessera[@]}" patch post --relay "$RELAY" --manifest "$OUT/envelope.tbundle" "$OUT/patch-1.tbundle" "${patch_approvals[@]}"

step "reshard: the quorum key is re-split inside the enclave to a new 2-of-3 share set"
drafted=$("${tessera[@]}" reshard new --manifest "$OUT/envelope.tbundle" --threshold 2 \
  --member "$OUT/members/bob.member.tbundle" --member "$OUT/members/dave.member.tbundle" --member "$OUT/members/erin.member.tbundle" \
  -o "$OUT/reshard.tbundle")
echo "$drafted"
RCODE=$(sed -n 's/^confirmation code: //p' <<<"$drafted")
reshard_approvals=()
for m in "${approvers[@]}"; do
  "${tessera[@]}" reshard approve "$OUT/reshard.tbundle" --manifest "$OUT/envelope.tbundle" --software "$OUT/members/$m.keys" \
    --pins "$OUT/members/$m.pins" \
    --confirm "$RCODE" -o "$OUT/approvals/$m.reshard.approval.tbundle" | tail -n 1
  reshard_approvals+=(--approval "$OUT/approvals/$m.reshard.approval.tbundle")
done
"${tessera[@]}" reshard post --relay "$RELAY" --manifest "$OUT/envelope.tbundle" "$OUT/reshard.tbundle" "${reshard_approvals[@]}" -o "$OUT/reshard"
"${tessera[@]}" genesis verify "$OUT/reshard/genesis-output.tbundle" --attestation "$OUT/reshard/genesis-attestation.cbor" \
  --pcrs "$OUT/dev-pcrs.json" --root "$OUT/dev-root.pem" --software "$OUT/members/erin.keys" --share-out "$OUT/members/erin.reshard.share.age" \
  --pins "$OUT/members/erin.pins" --dr-recipient "$DR" | tail -n 3

step "a second DEV enclave (same image, same dev CA) and its relay join the namespace by key forwarding"
"$OUT/bin/tessera-enclave" --listen "unix:$OUT/enclave-2.sock" --dev --dev-ca "$OUT/dev-ca.pem" \
  --dev-root-out "$OUT/dev-root-2.pem" --dev-pcrs-out "$OUT/dev-pcrs-2.json" \
  --pivot-bin "$OUT/app/tessera-demo-app" >"$OUT/enclave-2.log" 2>&1 &
pids+=($!)
wait_for "$OUT/enclave-2.log" "listening on"
"$BIN/tessera-relay" --listen 127.0.0.1:0 --app-listen 127.0.0.1:0 --enclave "unix:$OUT/enclave-2.sock" >"$OUT/relay-2.log" 2>&1 &
pids+=($!)
wait_for "$OUT/relay-2.log" "listening on http://"
RELAY2=$(grep -o 'http://[0-9.:]*' "$OUT/relay-2.log" | head -n1)
BRIDGE2=$(sed -n 's|^tessera-relay: app bridge on tcp://||p' "$OUT/relay-2.log" | head -n1)
echo "second relay at $RELAY2, app bridge at $BRIDGE2"
"${tessera[@]}" forward join --relay "$RELAY2" "$OUT/envelope.tbundle" --root "$OUT/dev-root.pem"
"${tessera[@]}" forward run --from "$RELAY" --to "$RELAY2" --out "$OUT/forward"
"${tessera[@]}" status --relay "$RELAY2" | grep -E '^(phase|manifest_hash)'

step "the second enclave signs with the same quorum key, without another share ceremony"
"${tessera[@]}" app-sign --relay "$RELAY2" --manifest "$OUT/envelope.tbundle" --message "hello from the second node"
wait_for "$OUT/enclave-2.log" "tessera-demo-app: listening on"
"${tessera[@]}" bridge sign --bridge "$BRIDGE2" --manifest "$OUT/envelope.tbundle" --message "hello over the second node's app bridge"

step "DR restore (the last resort, rehearsed): the seed re-split 2-of-3 to bob, dave and erin"
"${tessera[@]}" dr restore "$OUT/genesis/genesis-output.tbundle" --attestation "$OUT/genesis/genesis-attestation.cbor" \
  --pcrs "$OUT/dev-pcrs.json" --root "$OUT/dev-root.pem" --identity "$OUT/dr/dr.age-identity" --threshold 2 \
  --member "$OUT/members/bob.member.tbundle" --member "$OUT/members/dave.member.tbundle" --member "$OUT/members/erin.member.tbundle" \
  --confirm "restore demo" -o "$OUT/dr-restore"
"${tessera[@]}" genesis verify "$OUT/dr-restore/genesis-output.tbundle" --restored-from "$OUT/genesis/genesis-output.tbundle" \
  --attestation "$OUT/genesis/genesis-attestation.cbor" --pcrs "$OUT/dev-pcrs.json" --root "$OUT/dev-root.pem" \
  --software "$OUT/members/erin.keys" --share-out "$OUT/members/erin.restored.share.age" --pins "$OUT/members/erin.pins" \
  --dr-recipient "$DR" | tail -n 3

if [ "${KEEP:-0}" = 1 ]; then
  echo "$RELAY" > "$OUT/relay.url"
  printf '%s\n' "${pids[@]}" > "$OUT/pids"
  step "KEEP=1: enclave and relay keep running (pids in $OUT/pids, relay URL in $OUT/relay.url)"
else
  step "done; artifacts in $OUT"
fi

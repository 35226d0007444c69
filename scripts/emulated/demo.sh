#!/usr/bin/env bash
# `make emulated-demo`: the ceremony of `make demo` against the real enclave image booted in an
# emulated Nitro enclave (QEMU's nitro-enclave machine, TCG) instead of a local DEV process. The
# enclave runs tessera-init as PID 1, talks to the NSM through /dev/nsm and listens on vsock; the
# relay reaches it through vhost-device-vsock's hybrid vsock socket. Members verify with
# --root EMULATED (the emulated NSM does not sign) and the PCRs `tessera pcrs` computes from the
# image: genesis 3-of-5, a manifest approved by 3, boot, provisioning by 3, an app signature.
#
# Artifacts in emulated-demo-out/ (OUT=...). BIN=release binary folder, EIF=a prebuilt image;
# TESSERA and RELAY_BIN name the member CLI and the relay when they come from elsewhere (CI uses the
# debug builds `make test` made; only the image's binaries need the release build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

BIN=${BIN:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release}
OUT=${OUT:-emulated-demo-out}
TESSERA=${TESSERA:-$BIN/tessera}
RELAY_BIN=${RELAY_BIN:-$BIN/tessera-relay}
tessera=("$TESSERA")
members=(alice bob carol dave erin)
approvers=(alice bob carol)
providers=(alice carol erin)

rm -rf "$OUT"
mkdir -p "$OUT"/{members,approvals,genesis,vm}
OUT=$(cd "$OUT" && pwd)
export TESSERA_TRANSCRIPT="$OUT/transcript.jsonl"

t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
step() { printf '\n== [%6.0f ms] %s\n' "$(ms)" "$*"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Waits until a line matching $2 appears in $1, while process $3 lives; $4 seconds at most.
wait_for() {
  local deadline=$(( $(date +%s) + ${4:-60} ))
  while [ "$(date +%s)" -le "$deadline" ]; do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { tail -n 30 "$1" >&2; echo "emulated-demo: process exited early" >&2; exit 1; }
    sleep 0.1
  done
  tail -n 30 "$1" >&2; echo "emulated-demo: timed out waiting for $2 in $1" >&2; exit 1
}

step "the enclave image (kernel, tessera-init, modules, tessera-enclave, the pivot app)"
EIF=${EIF:-$OUT/tessera-enclave.eif}
[ -f "$EIF" ] || OUT="$EIF" BIN="$BIN" "$here/image.sh" | tail -n 4
# The parent instance's IAM role, which the machine measures into PCR3 as Nitro does.
ROLE_ARN=${ROLE_ARN:-arn:aws:iam::123456789012:role/tessera-emulated}
export ROLE_ARN
pcr3=$("${tessera[@]}" pcrs --role-arn "$ROLE_ARN")
"${tessera[@]}" pcrs "$EIF" --json | sed "s/\"PCR2\": \"\([0-9a-f]*\)\"/\"PCR2\": \"\1\",\n    \"PCR3\": \"$pcr3\"/" \
  >"$OUT/image-pcrs.json"
"${tessera[@]}" pcrs "$EIF"
echo "PCR3 $pcr3 (role $ROLE_ARN)"

step "prepare QEMU, vhost-device-vsock and the kernel (cached after the first run)"
"$here/qemu.sh" >/dev/null
"$here/vhost-device-vsock.sh" >/dev/null

step "boot the image in an emulated Nitro enclave"
boot0=$(ms)
"$here/run.sh" "$EIF" "$OUT/vm" >"$OUT/vm/run.log" 2>&1 &
pids+=($!)
: >>"$OUT/vm/console.log"
wait_for "$OUT/vm/console.log" "listening on vsock" "${pids[-1]}" 120
echo "enclave listening on vsock $(( $(ms) - boot0 )) ms after QEMU was started"
grep -E "^tessera-(init|enclave):" "$OUT/vm/console.log" | sed 's/^/  console: /'

step "start the relay on the enclave's hybrid vsock socket"
"$RELAY_BIN" --listen 127.0.0.1:0 --enclave "hybrid-vsock:$OUT/vm/vm.vsock:5005" >"$OUT/relay.log" 2>&1 &
pids+=($!)
wait_for "$OUT/relay.log" "listening on http://" "${pids[-1]}"
RELAY=$(grep -m1 -o 'http://[0-9.:]*' "$OUT/relay.log")
"${tessera[@]}" status --relay "$RELAY"

step "five software members (DEV/TEST keys)"
for m in "${members[@]}"; do
  "${tessera[@]}" member init-software --alias "$m" --keys "$OUT/members/$m.keys" -o "$OUT/members/$m.member.tbundle" >/dev/null
done

step "genesis in the emulated enclave: 3-of-5"
member_args=(); for m in "${members[@]}"; do member_args+=(--member "$OUT/members/$m.member.tbundle"); done
"${tessera[@]}" genesis run --relay "$RELAY" --namespace emulated --threshold 3 "${member_args[@]}" -o "$OUT/genesis"
cp "$OUT/genesis/genesis-attestation.cbor" "$OUT/emulated-attestation.cbor"

step "the genesis attestation is refused without the EMULATED trust mode"
if "${tessera[@]}" attest verify "$OUT/genesis/genesis-attestation.cbor" >"$OUT/refused.txt" 2>&1; then
  echo "emulated-demo: an emulated document verified against the AWS root" >&2; exit 1
fi
grep -m1 -o "EMULATED enclave's unsigned document[^:]*" "$OUT/refused.txt"
"${tessera[@]}" attest verify "$OUT/genesis/genesis-attestation.cbor" --root EMULATED >"$OUT/emulated.txt"
sed -n 1,5p "$OUT/emulated.txt"

step "the enclave attests the PCR0-2 that tessera pcrs computed from the image, and the role's PCR3"
"${tessera[@]}" attest verify "$OUT/genesis/genesis-attestation.cbor" --root EMULATED --at doc --json \
  >"$OUT/attested.json" 2>/dev/null
for i in 0 1 2 3; do
  want=$(sed -n "s/.*\"PCR$i\": \"\([0-9a-f]*\)\".*/\1/p" "$OUT/image-pcrs.json")
  grep -q "\"$i\":\"$want\"" "$OUT/attested.json" \
    || { echo "emulated-demo: attested PCR$i differs from the expected $want" >&2; exit 1; }
  echo "  PCR$i attested = expected: ${want:0:32}..."
done

step "members verify the genesis attestation (EMULATED, PCRs of the image) and their shares"
for m in "${members[@]}"; do
  "${tessera[@]}" genesis verify "$OUT/genesis/genesis-output.tbundle" --attestation "$OUT/genesis/genesis-attestation.cbor" \
    --pcrs "$OUT/image-pcrs.json" --root EMULATED --software "$OUT/members/$m.keys" --share-out "$OUT/members/$m.share.age" \
    --pins "$OUT/members/$m.pins" | tail -n 1
done

step "the manifest names the image's PCRs and the pivot app inside it"
mset=(); pset=(); for m in "${members[@]}"; do mset+=(--manifest-member "$OUT/members/$m.member.tbundle"); pset+=(--patch-member "$OUT/members/$m.member.tbundle"); done
"${tessera[@]}" manifest new --namespace emulated --nonce 1 --genesis "$OUT/genesis/genesis-output.tbundle" \
  --pcrs "$OUT/image-pcrs.json" "${mset[@]}" --manifest-threshold 3 "${pset[@]}" --patch-threshold 2 \
  --app "${PIVOT:-$BIN/tessera-demo-pivot}" -o "$OUT/manifest.tbundle"
CODE=$("${tessera[@]}" manifest show "$OUT/manifest.tbundle" --confirm-code)

step "three members approve (code $CODE)"
approval_args=()
for m in "${approvers[@]}"; do
  "${tessera[@]}" manifest approve "$OUT/manifest.tbundle" --software "$OUT/members/$m.keys" --confirm "$CODE" \
    --state-dir "$OUT/members/$m.approved" --pins "$OUT/members/$m.pins" --root EMULATED \
    -o "$OUT/approvals/$m.approval.tbundle" | grep -E '^approval written' || true
  approval_args+=(--approval "$OUT/approvals/$m.approval.tbundle")
done
"${tessera[@]}" manifest envelope "$OUT/manifest.tbundle" "${approval_args[@]}" -o "$OUT/envelope.tbundle"

step "members who did not approve record the Manifest set they trust"
for m in dave erin; do
  "${tessera[@]}" trust manifest-set "$OUT/envelope.tbundle" --software "$OUT/members/$m.keys" --pins "$OUT/members/$m.pins" \
    --confirm "$CODE" | tail -n 1
done

step "boot: the emulated enclave checks the approvals and attests to its ephemeral key"
"${tessera[@]}" boot --relay "$RELAY" "$OUT/envelope.tbundle" --root EMULATED

for m in "${providers[@]}"; do
  step "provision by $m"
  usb="$OUT/usb-$m"; mkdir -p "$usb"
  "${tessera[@]}" provision request --relay "$RELAY" -o "$usb" >/dev/null
  request=$(ls "$usb"/request-*.tbundle)
  "${tessera[@]}" provision sign "$request" --share "$OUT/members/$m.share.age" --root EMULATED \
    --software "$OUT/members/$m.keys" --pins "$OUT/members/$m.pins" --confirm "$CODE" -o "$usb" | tail -n 1
  "${tessera[@]}" provision post --relay "$RELAY" "$(ls "$usb"/share-*.tbundle)"
done

step "the provisioned enclave's app signs with the quorum key"
"${tessera[@]}" app-sign --relay "$RELAY" --manifest "$OUT/envelope.tbundle" --message "hello from the emulated enclave"
"${tessera[@]}" status --relay "$RELAY"
wait_for "$OUT/vm/console.log" "tessera-demo-pivot: received 32 key bytes" "${pids[0]}" 30
grep "tessera-demo-pivot:" "$OUT/vm/console.log" | sed 's/^/  console: /'

step "done; artifacts in $OUT"

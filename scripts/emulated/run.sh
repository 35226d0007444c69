#!/usr/bin/env bash
# Boots an EIF in QEMU's nitro-enclave machine (TCG: no KVM needed) with vhost-device-vsock as its
# vsock device, and stays in the foreground until the enclave ends (tessera-init reboots when
# tessera-enclave exits; -no-reboot makes that QEMU's exit) or this script is stopped.
#   run.sh IMAGE.eif STATE_DIR
# In STATE_DIR: console.log (the enclave's serial console), vm.vsock (the host side of its
# vsock: the relay connects with --enclave hybrid-vsock:STATE_DIR/vm.vsock:5005).
#   MEM (default 512M), CID (default 4), ROLE_ARN / INSTANCE_ID (measured into PCR3 / PCR4).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

eif=${1:?usage: run.sh IMAGE.eif STATE_DIR}
state=${2:?usage: run.sh IMAGE.eif STATE_DIR}
mkdir -p "$state"
state=$(cd "$state" && pwd)
qemu=$("$here/qemu.sh")
vhost=$("$here/vhost-device-vsock.sh")
apt_install -t bookworm-backports qemu-system-data seabios

rm -f "$state/vhost.sock" "$state/vm.vsock" "$state"/vm.vsock_*
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 143' TERM INT

"$vhost" --vm "guest-cid=${CID:-4},socket=$state/vhost.sock,uds-path=$state/vm.vsock" \
  >"$state/vhost.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 400); do
  [ -S "$state/vhost.sock" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/vhost.log" >&2; exit 1; }
  sleep 0.05
done
[ -S "$state/vhost.sock" ] || { log "vhost-device-vsock did not create its socket"; exit 1; }

machine="nitro-enclave,vsock=vsock0,id=tessera-emulated"
[ -n "${ROLE_ARN:-}" ] && machine+=",parent-role=$ROLE_ARN"
[ -n "${INSTANCE_ID:-}" ] && machine+=",parent-id=$INSTANCE_ID"
"$qemu" -M "$machine" -kernel "$eif" -m "${MEM:-512M}" -accel tcg -cpu max -smp 1 \
  -L /usr/share/seabios -L /usr/share/qemu -no-reboot -display none -monitor none \
  -serial "file:$state/console.log" -chardev "socket,id=vsock0,path=$state/vhost.sock" &
pids+=($!)
echo "$!" >"$state/qemu.pid"
log "enclave booting (console: $state/console.log, vsock: hybrid-vsock:$state/vm.vsock:5005)"
wait "${pids[1]}"

#!/usr/bin/env bash
# Installs the Debian packages Tessera's build and tests need, when any is missing.
# Runs as root on CI; elsewhere it uses sudo if available, or says what to install.
set -euo pipefail

# libpcsclite-dev, pkg-config: the PC/SC bindings of the YubiKey and OpenPGP card backends.
# pcscd, vsmartcard-vpcd: the smart-card daemon and the virtual reader the test cards sit in.
# libclang-dev: bindgen, run when the virtual cards (tools/virtual-card) are built, loads
#   libclang.so and clang's own headers (libclang-cpp is a different library and does not do);
#   the webcam capture (v4l2-sys-mit) runs bindgen too, over the kernel's linux/videodev2.h.
# linux-libc-dev: that header.
# gnupg, sq: the OpenPGP tests check Tessera's signatures with both.
# tmux: the app's end-to-end test drives it in a terminal.
# faketime: the attestation bench runs evervault's verifier, which reads only the wall clock, at
#   the sample document's own time (libfaketime, wall clock only).
# python3-venv: scripts/check-deploy.sh installs the Kubernetes schema validator from PyPI.
# nodejs, npm: the UR interoperability tests run @ngraveio/bc-ur (tools/bc-ur-interop); any
#   node and npm on the PATH do.
packages=(libpcsclite-dev pkg-config pcscd vsmartcard-vpcd libclang-dev linux-libc-dev gnupg sq tmux python3-venv faketime)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exec "$(dirname "$0")/../tools/bc-ur-interop/install.sh"
fi

echo "tessera: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "tessera: please install: ${missing[*]}" >&2
  exit 1
fi
exec "$(dirname "$0")/../tools/bc-ur-interop/install.sh"

#!/usr/bin/env bash
# Installs @ngraveio/bc-ur, pinned with its integrity hashes by package-lock.json, into a cache
# folder (never into the checkout). The interoperability tests and the transport benchmark of
# airgap-bundle run harness.js against it. Reinstalls only when package-lock.json changes.
#
# Folder: $TESSERA_BC_UR_DIR, or ${XDG_CACHE_HOME:-~/.cache}/tessera/bc-ur-interop.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${TESSERA_BC_UR_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/bc-ur-interop}
stamp="$dir/installed-lock.sha256"
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules/@ngraveio/bc-ur" ]; then
  exit 0
fi
echo "tessera: installing @ngraveio/bc-ur (tools/bc-ur-interop/package-lock.json) into $dir" >&2
mkdir -p "$dir"
rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
# npm ci installs exactly the locked versions and checks every integrity hash; no install
# scripts run.
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
echo "$want" >"$stamp"

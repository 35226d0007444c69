#!/usr/bin/env bash
# Stops what start.sh started, by the process ids it recorded.
STATE="${TESSERA_VCARD_STATE:-/tmp/tessera-virtual-card}"
for name in openpgp piv pcscd; do
  f="$STATE/$name.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
done
exit 0

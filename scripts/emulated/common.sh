# Shared by the scripts in scripts/emulated/: the cache folder, apt helpers, the backports suite.
# Sourced, not run.

TESSERA_EMULATED_CACHE="${TESSERA_EMULATED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-emulated}"
mkdir -p "$TESSERA_EMULATED_CACHE"

log() { echo "tessera-emulated: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "please run as root: $*"; return 1
  fi
}

# Adds bookworm-backports (binary and source) to apt's sources once, then refreshes the lists.
ensure_backports() {
  local f=/etc/apt/sources.list.d/tessera-backports.sources
  if [ ! -f "$f" ]; then
    log "adding bookworm-backports to apt's sources ($f)"
    as_root tee "$f" >/dev/null <<'SRC'
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    as_root apt-get update -qq
  elif [ -z "$(ls /var/lib/apt/lists/*bookworm-backports*Sources* 2>/dev/null)" ]; then
    as_root apt-get update -qq
  fi
}

# apt_install [-t SUITE] PKG...: installs the packages that are not installed yet.
apt_install() {
  local target=()
  if [ "${1:-}" = "-t" ]; then target=(-t "$2"); shift 2; fi
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${target[@]}" "${missing[@]}" >/dev/null
}

#!/usr/bin/env bash
# `make lint` (and CI): validates the Kubernetes manifests in deploy/kubernetes/ against the
# Kubernetes API schemas, strictly (an unknown or misspelt field fails), for the oldest and the
# newest Kubernetes versions docs/deploy.md supports. The validator is kubernetes-validate from
# PyPI, pinned, in a virtualenv cached under ~/.cache; its schemas ship inside the package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=1.37.0
venv=${XDG_CACHE_HOME:-$HOME/.cache}/tessera/kubernetes-validate-$version
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$version"
fi
shopt -s nullglob
files=("$root"/deploy/kubernetes/*.yaml)
[ ${#files[@]} -gt 0 ] || { echo "check-deploy: no manifests in deploy/kubernetes" >&2; exit 1; }
for k in 1.31.0 1.37.0; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "${files[@]}"
done
echo "check-deploy: ${#files[@]} manifest file(s) valid for Kubernetes 1.31 and 1.37 (strict)"

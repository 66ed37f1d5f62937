#!/usr/bin/env bash
# Install everything the tests need (Debian packages and Python extras), then run
# ruff, the import-linter layers contract (pyproject.toml) and the whole pytest
# suite against real registries started by fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v chromium >/dev/null || need+=(chromium)   # browser tests: Debian's, not a download
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check .
lint-imports --no-cache
python3 -m pytest "$@"

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

# pyproject allows httpx 0.27 and 0.28, whose params= differ (0.28 replaces a URL's
# query): the client's protocol, auth and dialect tests run again on 0.27.
old_httpx=.cache/httpx-0.27
[ -f "$old_httpx/httpx/__init__.py" ] || python3 -m pip install -q --disable-pip-version-check \
  --no-deps --target "$old_httpx" 'httpx==0.27.2' 'sniffio>=1.3'
PYTHONPATH="$old_httpx" python3 -c 'import httpx; assert httpx.__version__ == "0.27.2", httpx.__version__'
PYTHONPATH="$old_httpx" python3 -m pytest -q -p no:cacheprovider tests/test_dialects.py \
  tests/test_auth_registry.py tests/test_auth_safety.py tests/test_client_errors.py \
  tests/test_faults.py tests/test_verbs.py tests/test_deadlines.py

#!/usr/bin/env bash
# Install everything the tests need (Debian packages and Python extras), then run
# ruff, the import-linter layers contract (pyproject.toml), the documentation build
# (mkdocs --strict) and the whole pytest suite against real registries started by
# fixtures.
set -euo pipefail
# a relative REGINSIGHT_REGISTRY_V3 means from where the script was called
[ -z "${REGINSIGHT_REGISTRY_V3:-}" ] || REGINSIGHT_REGISTRY_V3=$(realpath -m -- "$REGINSIGHT_REGISTRY_V3")
cd "$(dirname "$0")/.."

# Distribution v3.0.0's registry for the registry_v3 fixture, looked for where
# tests/registry_server.py's _registry_v3 looks, in the same order: REGINSIGHT_REGISTRY_V3,
# else ../shared/registry-v3/registry beside the checkout (/work/shared's for a clone
# elsewhere), else the one built here with Go into .cache/registry-v3. A binary that is
# not v3.0.0 stops the run; a missing one does under CI=true (elsewhere its tests fail).
v3_version=v3.0.0
v3_module=github.com/distribution/distribution/v3
v3_cache=.cache/registry-v3
v3_stop() {
  echo "scripts/test.sh: $*" >&2
  exit 1
}
v3_check() {  # prints "<argv0> github.com/distribution/distribution/v3 v3.0.0"
  local said
  said=$(timeout 20 "$1" --version 2>&1 | head -n 1 | cut -c 1-200) || true
  [[ "$said" =~ \ "$v3_module"\ "$v3_version"$ ]] ||
    v3_stop "$(realpath -ms -- "$1") is not Distribution $v3_version's registry (its --version" \
      "said '$said'); point REGINSIGHT_REGISTRY_V3 at that registry (how it is built:" \
      "../shared/registry-v3/README.md)"
}
v3_find() {
  local candidate
  if [ -n "${REGINSIGHT_REGISTRY_V3:-}" ]; then
    [ -f "$REGINSIGHT_REGISTRY_V3" ] && [ -x "$REGINSIGHT_REGISTRY_V3" ] ||
      v3_stop "REGINSIGHT_REGISTRY_V3=$REGINSIGHT_REGISTRY_V3: no such executable file"
    v3_check "$REGINSIGHT_REGISTRY_V3"
    return
  fi
  for candidate in ../shared/registry-v3/registry /work/shared/registry-v3/registry \
                   "$v3_cache/registry"; do
    if [ -f "$candidate" ]; then
      v3_check "$candidate"
      REGINSIGHT_REGISTRY_V3=$(realpath -- "$candidate")
      return
    fi
  done
  if command -v go >/dev/null; then
    echo "building Distribution $v3_version's registry with Go into $v3_cache" >&2
    # -X as upstream's release build sets it: a plain go install says v3.0.0+unknown
    GOBIN="$PWD/$v3_cache" go install -trimpath \
      -ldflags "-X $v3_module/version.version=$v3_version" "$v3_module/cmd/registry@$v3_version" ||
      echo "scripts/test.sh: go install of the registry failed" >&2
    if [ -f "$v3_cache/registry" ]; then
      v3_check "$v3_cache/registry"
      REGINSIGHT_REGISTRY_V3="$PWD/$v3_cache/registry"
      return
    fi
  fi
  local missing="Distribution $v3_version's registry not found: set REGINSIGHT_REGISTRY_V3=PATH, \
put it at ../shared/registry-v3/registry beside the checkout, or install Go for this script to build it"
  [ "${CI:-}" != true ] || v3_stop "$missing (CI=true: every test must run)"
  echo "scripts/test.sh: $missing; the tests on Distribution 3 will fail" >&2
}
v3_find
[ -z "${REGINSIGHT_REGISTRY_V3:-}" ] || export REGINSIGHT_REGISTRY_V3

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

python3 -m pip install -q --disable-pip-version-check -e '.[test,docs]'
python3 -m ruff check .
lint-imports --no-cache
# the site (mkdocs.yml) into site/: any warning fails, so a broken link or anchor, a page
# left out of the navigation or a public name without a docstring stops the run.
# Not --quiet: it hides the warnings that --strict counts. Only INFO lines are dropped.
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict 2>&1 | { grep -v '^INFO ' || true; }
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

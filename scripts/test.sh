#!/usr/bin/env bash
# Runs Warden's whole test suite on a fresh machine: installs what the tests
# drive for real (LiveKit's Node and Python SDKs, redis-server, Chromium,
# nginx, HAProxy and Caddy in front of Warden, systemd-analyze for the unit
# file, promtool and Prometheus for the metrics), then `cargo test`, then
# the Python package's pytest suite (python/).
# Idempotent: what is already installed is kept.
#   scripts/test.sh            # everything
#   scripts/test.sh keys::     # extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# curl (OpenSSL): a TLS client that is not rustls, for the sealed TLS streams.
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Debian puts nginx and haproxy in /usr/sbin (not on a user's PATH); the tests look there.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v caddy >/dev/null 2>&1 || need_apt+=(caddy)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# LiveKit's official Node SDK (interop) and the browser driver.
for dir in tests/interop tests/browser; do
  if [ -f "$dir/package.json" ]; then
    stamp="$dir/node_modules/.stamp"
    want="$(sha256sum "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      if [ -f "$dir/package-lock.json" ]; then (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
      else (cd "$dir" && npm install --no-audit --no-fund --loglevel=error); fi
      echo "$want" > "$stamp"
    fi
  fi
done

# LiveKit's official Python SDK (interop), in a venv beside the tests.
venv="$root/tests/interop/.venv"
want="$(sha256sum tests/interop/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
  echo "$want" > "$venv/.stamp"
fi

cargo test --all-targets "$@"

# The Python package (python/): built from this checkout with maturin into its
# own venv, then its pytest suite, which also asks the gateway binary just
# built for status. Here it is built in the dev profile into the same target
# directory as `cargo test` (its lock pins the same versions), so only pyo3 and
# the binding crate compile; a user's `pip install ./python` builds release.
pyvenv="$root/python/.venv"
want="$(sha256sum python/requirements-dev.txt | cut -d' ' -f1)"
if [ "$(cat "$pyvenv/.stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements-dev.txt
  echo "$want" > "$pyvenv/.stamp"
fi
# The build backend runs `maturin` from PATH: the venv's.
PATH="$pyvenv/bin:$PATH" CARGO_TARGET_DIR="$root/target" MATURIN_PEP517_ARGS="--profile dev" \
  "$pyvenv/bin/pip" install --quiet --disable-pip-version-check \
  --no-build-isolation --no-deps --force-reinstall ./python
WARDEN_BIN="$root/target/debug/warden" "$pyvenv/bin/python" -m pytest -q -p no:cacheprovider python/tests

#!/usr/bin/env bash
# Installs what building Switchyard's WebAssembly policy components (and running its tests) needs on
# a fresh Debian 12 x86_64 machine, and skips whatever is already there. Safe to run repeatedly.
#
# Why each piece:
#   - Rust guests: rustup here cannot add wasm targets. When rustup already has
#     wasm32-unknown-unknown we use it; otherwise Debian's Rust 1.96 (rustc-web, cargo-web) with its
#     exactly matching std source (rust-web-src) builds std for wasm32-unknown-unknown with
#     -Zbuild-std, linked by wasm-ld from lld-22 (Debian's wasm targets default to rust-lld, which
#     Debian lacks).
#   - redis-server: integration tests of the shared (multi-replica) state start a real Redis.
#   - wrk: the load generator the benchmark harness drives.
#   - python3-venv + the `openai` package, node + the `openai` npm package: the client-compatibility
#     tests run the official OpenAI libraries, unmodified, against the proxy.
#   - componentize-py (PyPI) and componentize-js (npm): build the Python and JavaScript policies.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "[install-toolchain] $*" >&2; }

SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi

have_rustup_wasm() {
  command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}

apt_need=()
if ! have_rustup_wasm; then
  [[ -x /usr/bin/rustc && -x /usr/bin/cargo ]] || apt_need+=(rustc-web cargo-web)
  [[ -d /usr/lib/rustlib/src/rust/library ]] || apt_need+=(rust-web-src)
  [[ -x /usr/lib/llvm-22/bin/wasm-ld ]] || apt_need+=(lld-22)
fi
command -v redis-server >/dev/null 2>&1 || apt_need+=(redis-server)
command -v wrk >/dev/null 2>&1 || apt_need+=(wrk)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_need+=(python3-venv)
command -v node >/dev/null 2>&1 || apt_need+=(nodejs npm)

if [[ ${#apt_need[@]} -gt 0 ]]; then
  log "apt-get install ${apt_need[*]}"
  $SUDO apt-get update -qq
  # redis-server's package would start a system service; tests start their own instances.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${apt_need[@]}"
  if [[ $made_policy == 1 ]]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
else
  log "system packages already present"
fi

# Other-language policy toolchains: componentize-py (Python registry) and componentize-js (npm),
# each kept inside the repository's ignored folders.
PYTOOLS="$ROOT/target/pytools"
if [[ ! -x "$PYTOOLS/bin/componentize-py" ]]; then
  log "python venv with componentize-py -> $PYTOOLS"
  python3 -m venv "$PYTOOLS"
  "$PYTOOLS/bin/pip" install -q --disable-pip-version-check -r "$ROOT/policies/flash-first-py/requirements.txt"
fi
JS_POLICY="$ROOT/policies/flash-first-js"
if [[ ! -d "$JS_POLICY/node_modules/@bytecodealliance/componentize-js" ]]; then
  log "npm ci (componentize-js) in $JS_POLICY"
  (cd "$JS_POLICY" && npm ci --no-audit --no-fund --loglevel=error)
fi

# OpenAI client libraries for the compatibility tests, kept inside the repository's ignored folders.
VENV="$ROOT/target/client-venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import openai' >/dev/null 2>&1; then
  log "python venv with openai -> $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/clients/python/requirements.txt"
fi
NODE_DIR="$ROOT/tests/clients/node"
if [[ ! -d "$NODE_DIR/node_modules/openai" ]]; then
  log "npm install (openai) in $NODE_DIR"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
log "done"

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
#   - python3-venv + the `openai` and `anthropic` packages, node + the `openai` npm package: the
#     client-compatibility tests run the official OpenAI and Anthropic libraries, unmodified,
#     against the proxy.
#   - Claude Code and Codex (npm, pinned in tests/clients/agents) + strace: the agent tests run
#     both CLIs headless against the gateway and check, with strace, that they connect nowhere else.
#   - chromium + chromium-driver: the console tests drive the web console in headless Chromium
#     through chromedriver (WebDriver).
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
command -v strace >/dev/null 2>&1 || apt_need+=(strace)
command -v chromium >/dev/null 2>&1 || apt_need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_need+=(chromium-driver)

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

# OpenAI and Anthropic client libraries for the compatibility tests, kept inside the repository's
# ignored folders. The venv keeps a copy of the requirements it was installed from, so a changed
# pin is installed on the next run.
VENV="$ROOT/target/client-venv"
REQS="$ROOT/tests/clients/python/requirements.txt"
if [[ ! -x "$VENV/bin/python" ]] || ! cmp -s "$REQS" "$VENV/installed-requirements.txt" \
  || ! "$VENV/bin/python" -c 'import openai, anthropic' >/dev/null 2>&1; then
  log "python venv with openai and anthropic -> $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/installed-requirements.txt"
fi
NODE_DIR="$ROOT/tests/clients/node"
if [[ ! -d "$NODE_DIR/node_modules/openai" ]]; then
  log "npm install (openai) in $NODE_DIR"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
# Claude Code and Codex for the agent tests, at the versions package-lock.json pins (each ships a
# native binary in a platform package; nothing is compiled).
AGENTS_DIR="$ROOT/tests/clients/agents"
if [[ ! -x "$AGENTS_DIR/node_modules/.bin/claude" || ! -x "$AGENTS_DIR/node_modules/.bin/codex" ]] \
  || ! cmp -s "$AGENTS_DIR/package-lock.json" "$AGENTS_DIR/node_modules/installed-package-lock.json"; then
  log "npm ci (claude-code, codex) in $AGENTS_DIR"
  # Claude Code declares engines.node >= 22 but runs a native binary; on Node 20 npm only warns.
  (cd "$AGENTS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$AGENTS_DIR/package-lock.json" "$AGENTS_DIR/node_modules/installed-package-lock.json"
fi
log "done"

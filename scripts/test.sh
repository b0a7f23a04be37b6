#!/usr/bin/env bash
# Runs every test from a fresh clone: installs what is missing, builds the policy components from
# source (checking the one embedded in the binary is byte-identical), then the whole workspace's
# tests: unit tests, native policy tests, the sandbox suite and the integration suite.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { echo "[test] $*" >&2; }

"$ROOT/scripts/install-toolchain.sh"
log "building policy components from source"
"$ROOT/scripts/build-policies.sh" --check
log "building the workspace (the integration tests run the real binary too)"
cargo build --locked --workspace
log "native tests of the Python and JavaScript policies"
rm -rf "$ROOT/target/pybindings"  # the generator refuses to write over an earlier run
"$ROOT/target/pytools/bin/componentize-py" -d wit -w policy bindings "$ROOT/target/pybindings" >/dev/null
(cd policies/flash-first-py && PYTHONPATH="$ROOT/target/pybindings" python3 -m unittest -q test_flash_first)
(cd policies/flash-first-js && npm test --silent)
log "running the tests"
cargo test --locked --workspace "$@"

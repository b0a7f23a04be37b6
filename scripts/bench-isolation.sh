#!/usr/bin/env bash
# The isolation benchmark from a fresh clone: a well-behaved tenant's latency alone, next to a
# well-behaved neighbour and next to each hostile policy of the test suite (about 8 minutes on
# 2 cores; `ISOLATION_MODES=loop,slow` for a subset). It installs what is missing, builds the
# policy components and the release gateway (which the bench runs as a process of its own), then
# runs `cargo bench -p switchyard-tests --bench isolation`. Run it on a quiet machine.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/install-toolchain.sh"
"$ROOT/scripts/build-policies.sh"
cargo build --locked --release -p switchyard --bin switchyard
cargo bench --locked -p switchyard-tests --bench isolation

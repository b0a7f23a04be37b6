#!/usr/bin/env bash
# The benchmark harness, from a fresh clone, in one command:
#
#   scripts/bench.sh                 every measurement (about 15 minutes on 2 cores)
#   scripts/bench.sh --quick         a short smoke run of the same steps (figures not for quoting)
#   scripts/bench.sh --decision      also the policy decision micro-benchmark (cargo bench)
#
# It installs what is missing (the policy toolchain, oha 1.16 from crates.io, nginx from Debian
# for the reference rows), builds the policies and a release build, then runs
# `switchyard-bench run`: a mock upstream, Switchyard, nginx and a bare hyper proxy side by side on
# loopback. Results: target/bench/latest/{summary.md,results.json,scaling.svg}.
#
# Other options pass through to `switchyard-bench run` (see `--help`). Run it on a quiet machine:
# every process shares the same cores, and the figures are only comparable within one run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { echo "[bench] $*" >&2; }

decision=0
args=()
for a in "$@"; do
  if [[ $a == --decision ]]; then decision=1; else args+=("$a"); fi
done

"$ROOT/scripts/install-toolchain.sh"
SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
# nginx: the reference proxy (the rows the targets are ratios of). Debian's nginx package would
# start a system service on port 80; policy-rc.d keeps it from starting.
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
  log "apt-get install nginx-light"
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nginx-light
  if [[ $made_policy == 1 ]]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
# oha: the load generator (fixed rates with latency correction, JSON output).
if ! command -v oha >/dev/null 2>&1 && [[ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/oha" ]]; then
  log "cargo install --locked oha 1.16.0 (a few minutes, once)"
  cargo install --locked oha --version 1.16.0
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log "building policy components and the release binaries"
"$ROOT/scripts/build-policies.sh"
cargo build --locked --release -p switchyard -p switchyard-bench

# A thousand streams hold a few thousand sockets across the processes.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "running the harness"
"$ROOT/target/release/switchyard-bench" run "${args[@]}"
if [[ $decision == 1 ]]; then
  log "policy decision micro-benchmark"
  cargo bench --locked -p switchyard-policy --bench decision 2>&1 | tee target/bench/latest/decision.txt
fi
log "results: target/bench/latest/summary.md"

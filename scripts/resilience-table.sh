#!/usr/bin/env bash
# Runs the failover scenarios (tests/all/failover.rs) one at a time and prints the resilience
# table of docs/resilience.md from the line each scenario prints: id, fault, outcome, score, and
# the time the client waited (for scenario 2, the time from the primary's recovery until it took
# traffic again). One at a time, so no scenario's wait includes another's.
#
#   scripts/resilience-table.sh          the Markdown table on stdout, the test output in
#                                        target/resilience.log
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p target
cargo test -p switchyard-tests --test all failover -- --nocapture --test-threads=1 \
    >target/resilience.log 2>&1 || {
    echo "the failover scenarios failed; see target/resilience.log" >&2
    exit 1
}
python3 - target/resilience.log <<'PY'
import re
import sys

rows = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    # The test harness may have written `test name ... ` before it on the same line.
    at = line.find("RESILIENCE\t")
    parts = line[at:].rstrip("\n").split("\t") if at >= 0 else []
    if len(parts) == 6:
        rows.append(parts[1:])


def order(row):
    # 1a < 1b < ... < 12b < A1 ...: anchors after the issue's items.
    m = re.match(r"([A-Z]?)(\d+)([a-z]*)", row[0])
    return (m.group(1) != "", int(m.group(2)), m.group(3)) if m else (True, 999, row[0])


counts = {}
print("| # | fault | Switchyard's outcome | score | client waited |")
print("|---|---|---|---|---|")
for id_, fault, outcome, score, ms in sorted(rows, key=order):
    counts[score] = counts.get(score, 0) + 1
    ms = int(ms)
    waited = f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms} ms"
    print(f"| {id_} | {fault} | {outcome} | {score.lower()} | {waited} |")
print()
print(", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in ["Pass", "Partial", "Safe", "Fail"]))
PY

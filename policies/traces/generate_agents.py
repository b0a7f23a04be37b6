#!/usr/bin/env python3
"""Generates the traces `switchyard policy simulate` is measured on (deterministic: seeded).

    python3 policies/traces/generate_agents.py target/traces

writes:
- agent-sessions.jsonl: coding-agent sessions of 10-60 turns. Each request carries the whole
  conversation so far, so consecutive turns share a growing prefix: a system prompt and tool
  definitions, the task, then assistant tool calls and their results (files read, test output).
  Most turns are the agent's inner loop; some sessions start with a hard task ("multi-file
  refactor ..."), and now and then the user sends a new message mid-session, hard or simple.
  Sessions overlap in time, as several developers' agents do.
- outage.jsonl and outage-faults.json: short conversations from several users over 10 minutes,
  while one of the two upstreams serving Flash becomes slow to its first token (8 s) for three
  minutes, then refuses everything for two, then recovers.
"""

import json
import random
import sys
from pathlib import Path

SYSTEM = (
    "You are a coding agent working in the `atlas` monorepo (Rust services, a TypeScript web "
    "app, Terraform). Read files before editing them, keep changes minimal, run the tests after "
    "every change and report what you did. "
) * 12

TOOLS = [
    {"type": "function", "function": {"name": name, "description": desc,
                                      "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}
    for name, desc in [
        ("read_file", "Read a file of the repository."),
        ("write_file", "Replace a file's content."),
        ("grep", "Search the repository for a pattern."),
        ("run_tests", "Run a crate's or package's tests."),
        ("list_dir", "List a directory."),
        ("git_diff", "Show the working tree's diff."),
    ]
]

SIMPLE_TASKS = [
    "Fix the failing integration test in crates/ingest.",
    "Add a --verbose flag to the ingest CLI.",
    "Rename `UserRecord` to `Account` in services/billing.",
    "Why does `cargo test -p auth` time out on CI?",
    "Add pagination to the /v1/invoices endpoint.",
    "Update the README of web/ for the new build command.",
]
HARD_TASKS = [
    "Do a multi-file refactor: move the storage layer to async across the codebase.",
    "Plan and carry out a migration of the entire codebase from log to tracing.",
    "Find the root cause of the data race in the scheduler and fix it across all services.",
]
FOLLOW_UPS_SIMPLE = ["Looks good, also add a test for the empty case.", "Run the tests again.",
                     "Write a commit message for this.", "Thanks. Now fix the lint warning."]
FOLLOW_UPS_HARD = ["Now do a multi-file refactor of the error types to use thiserror everywhere.",
                   "Now redesign the retry logic across the entire codebase."]


def file_text(rng, lines):
    return "\n".join(f"fn step_{i}(x: u64) -> u64 {{ x.wrapping_mul({rng.randint(2, 99)}) ^ {i} }}"
                     for i in range(lines))


def agent_sessions(rng):
    out = []
    for s in range(40):
        start = s * 7_000 + rng.randint(0, 5_000)
        hard = rng.random() < 0.2
        task = rng.choice(HARD_TASKS if hard else SIMPLE_TASKS)
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"[session {s}] {task}"}]
        turns = rng.randint(10, 60)
        at = start
        call = 0
        for t in range(turns):
            out.append({"at_ms": at, "output_tokens": rng.randint(120, 700),
                        "request": {"model": "auto", "stream": True, "tools": TOOLS,
                                    "messages": list(messages)}})
            at += rng.randint(2_000, 8_000)
            if t + 1 < turns and rng.random() < 0.08:
                follow = rng.choice(FOLLOW_UPS_HARD if rng.random() < 0.4 else FOLLOW_UPS_SIMPLE)
                messages.append({"role": "assistant", "content": "Done: the change is in and the tests pass."})
                messages.append({"role": "user", "content": follow})
                continue
            name = rng.choice(["read_file", "grep", "run_tests", "write_file", "list_dir"])
            call += 1
            call_id = f"call_{s}_{call}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": json.dumps({"path": f"crates/ingest/src/m{call}.rs"})}}]})
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": file_text(rng, rng.randint(15, 90))})
    out.sort(key=lambda e: e["at_ms"])
    return out


def outage(rng):
    out = []
    for u in range(60):
        at = rng.randint(0, 560_000)
        messages = [{"role": "system", "content": "You are a helpful assistant for the support team. " * 20},
                    {"role": "user", "content": f"[user {u}] Summarise ticket #{rng.randint(1000, 9999)}."}]
        for t in range(rng.randint(3, 8)):
            out.append({"at_ms": at, "output_tokens": rng.randint(80, 300),
                        "request": {"model": "auto", "messages": list(messages)}})
            messages.append({"role": "assistant", "content": "Here is the summary: " + "lorem ipsum " * 20})
            messages.append({"role": "user", "content": "And the next one?"})
            at += rng.randint(5_000, 20_000)
    out.sort(key=lambda e: e["at_ms"])
    faults = {"faults": [
        {"upstream": "flash-a", "from_ms": 120_000, "to_ms": 300_000, "kind": "slow", "ttft_ms": 8000},
        {"upstream": "flash-a", "from_ms": 300_000, "to_ms": 420_000, "kind": "down"},
    ]}
    return out, faults


def main():
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    rng = random.Random(20261201)
    with open(dest / "agent-sessions.jsonl", "w") as f:
        for e in agent_sessions(rng):
            f.write(json.dumps(e) + "\n")
    trace, faults = outage(rng)
    with open(dest / "outage.jsonl", "w") as f:
        for e in trace:
            f.write(json.dumps(e) + "\n")
    (dest / "outage-faults.json").write_text(json.dumps(faults, indent=2) + "\n")


if __name__ == "__main__":
    main()

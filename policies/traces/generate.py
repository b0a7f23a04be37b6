"""Generates coding-assistant.jsonl: a small, realistic trace of coding-assistant traffic for
`switchyard policy simulate` (deterministic: same output on every run).

Mix: code reviews, single-file edits, classification and commit messages (short, high volume),
agent sessions at several depths (tool calls), multi-file refactors and whole-codebase questions,
a few screenshots, a few xhigh-reasoning requests. Each line is
{"request": <OpenAI chat request>, "output_tokens": N}.
"""
import json
import random

rng = random.Random(42)
SYSTEM = "You are a senior engineer helping on the `atlas` monorepo (Rust and TypeScript)."


def code(lines):
    return "\n".join(f"fn step_{i}(x: u64) -> u64 {{ x.wrapping_mul({i + 3}) ^ {i} }}" for i in range(lines))


def chat(user, **extra):
    return {"model": "auto", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], **extra}


def agent(depth, task):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
    for i in range(depth):
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": rng.choice(["read_file", "grep", "run_tests", "edit_file"]), "arguments": json.dumps({"path": f"src/mod_{i}.rs"})}}]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": code(rng.randint(5, 40))})
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ["read_file", "grep", "run_tests", "edit_file"]]
    return {"model": "auto", "messages": messages, "tools": tools}


lines = []
for _ in range(22):
    lines.append((chat(f"Review this change for bugs:\n```rust\n{code(rng.randint(10, 80))}\n```"), rng.randint(150, 600)))
for _ in range(18):
    lines.append((chat(f"Add error handling to this function and keep the style:\n```rust\n{code(rng.randint(5, 40))}\n```"), rng.randint(200, 900)))
for _ in range(14):
    lines.append((chat(f"Classify this issue as bug, feature or question: {rng.choice(['crash on empty input', 'add dark mode', 'how do I configure TLS?'])}", max_tokens=5), 3))
for _ in range(8):
    lines.append((chat("Write a commit message for this diff:\n" + code(rng.randint(3, 20))), rng.randint(30, 80)))
for depth in [2, 4, 6, 8, 9, 12, 15, 18, 24, 30]:
    lines.append((agent(depth, "Fix the failing integration test in crates/ingest."), rng.randint(300, 1500)))
for _ in range(5):
    lines.append((chat("Do a multi-file refactor: move the storage layer to async across the codebase.\n" + code(60)), rng.randint(2000, 6000)))
for _ in range(3):
    lines.append((chat("Explain how a request flows across the entire codebase.\n" + code(400) * 12), rng.randint(1500, 3000)))
for _ in range(3):
    lines.append(({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Why does this layout break on mobile?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}, rng.randint(200, 500)))
for _ in range(4):
    lines.append((chat("Prove this lock-free queue is linearizable.\n" + code(30), reasoning_effort="xhigh"), rng.randint(3000, 8000)))
rng.shuffle(lines)
with open("coding-assistant.jsonl", "w") as f:
    for request, output in lines:
        f.write(json.dumps({"request": request, "output_tokens": output}) + "\n")
print(f"wrote {len(lines)} requests")

//! The reference policies cache-sticky and adaptive against flash-first, through
//! `switchyard policy simulate` (the real binary), on small deterministic traces made here: the
//! same comparisons as `docs/policies.md` makes on the full traces of
//! `policies/traces/generate_agents.py`, with the config measured there
//! (`policies/traces/two-flash-upstreams.toml`).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use switchyard_tests::*;

/// Runs `policy simulate` of `policy` against `compare` and returns its JSON report.
fn simulate(
    dir: &TempDir,
    policy: &str,
    compare: &str,
    trace: &Path,
    faults: Option<&Path>,
) -> Value {
    let config = repo_root().join("policies/traces/two-flash-upstreams.toml");
    let json = dir.path(&format!("{policy}-vs-{compare}.json"));
    let svg = dir.path(&format!("{policy}-vs-{compare}.svg"));
    let (policy_path, compare_path) = (component(policy), component(compare));
    let mut args = vec![
        "policy",
        "simulate",
        "--policy",
        policy_path.to_str().unwrap(),
        "--compare",
        compare_path.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--requests",
        trace.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    if let Some(f) = faults {
        args.extend(["--faults", f.to_str().unwrap()]);
    }
    let out = Command::new(binary())
        .args(&args)
        .env("SWITCHYARD_LOG", "error")
        .output()
        .expect("run switchyard");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        std::fs::read_to_string(&svg).unwrap().starts_with("<svg"),
        "an SVG chart"
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// A small deterministic generator (xorshift), so the traces are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn write_trace(path: &Path, mut lines: Vec<(u64, Value)>) {
    lines.sort_by_key(|(at, _)| *at);
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Coding-agent sessions of 24-30 turns, each turn a tool call and its result on a growing
/// prompt; one session in three gets a hard follow-up halfway.
fn agent_trace(path: &Path) {
    let mut rng = Rng(0x5eed_cafe);
    let system =
        "You are a coding agent in the `atlas` monorepo. Read before you edit. ".repeat(20);
    let tools = json!([{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]);
    let mut lines = Vec::new();
    for s in 0..6u64 {
        let mut messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": format!("[session {s}] Fix the failing test in crates/ingest.")}),
        ];
        let mut at = s * 4_000;
        for t in 0..24 + rng.below(7) {
            lines.push((
                at,
                json!({"at_ms": at, "output_tokens": 200 + rng.below(300),
                       "request": {"model": "auto", "stream": true, "tools": tools, "messages": messages}}),
            ));
            at += 2_000 + rng.below(4_000);
            if s % 3 == 0 && t == 14 {
                messages.push(json!({"role": "assistant", "content": "Done."}));
                messages.push(json!({"role": "user", "content": "Now do a multi-file refactor of the error types."}));
                continue;
            }
            let id = format!("call_{s}_{t}");
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]}));
            let body: String = (0..20 + rng.below(40))
                .map(|i| {
                    format!(
                        "fn step_{i}(x: u64) -> u64 {{ x ^ {} }}\n",
                        rng.below(1_000)
                    )
                })
                .collect();
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": body}));
        }
    }
    write_trace(path, lines);
}

#[test]
fn cache_sticky_is_cheaper_than_flash_first_with_fewer_model_switches() {
    let dir = TempDir::new("policies-agents");
    let trace = dir.path("agents.jsonl");
    agent_trace(&trace);
    let report = simulate(&dir, "cache-sticky", "flash-first", &trace, None);
    let (sticky, flash_first) = (&report["run"], &report["compare"]);
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap();
    assert_eq!(f(sticky, "requests"), f(flash_first, "requests"));
    assert_eq!((f(sticky, "errors"), f(flash_first, "errors")), (0.0, 0.0));
    // flash-first moves every session to Pro at its eleventh tool call, re-reading the prompt
    // there; cache-sticky keeps them on Flash, and only the hard follow-ups go to Pro.
    assert!(
        f(sticky, "cost_usd") < 0.75 * f(flash_first, "cost_usd"),
        "cache-sticky ${} vs flash-first ${}",
        sticky["cost_usd"],
        flash_first["cost_usd"]
    );
    assert!(
        f(sticky, "model_switches") < f(flash_first, "model_switches"),
        "switches: {} vs {}",
        sticky["model_switches"],
        flash_first["model_switches"]
    );
    assert!(f(sticky, "cache_hit_ratio") >= f(flash_first, "cache_hit_ratio"));
    assert!(
        sticky["mix"]["deepseek-v4-pro"]["requests"]
            .as_u64()
            .unwrap()
            > 0,
        "the hard follow-ups escalate: {}",
        sticky["mix"]
    );
    assert!(
        sticky["reasons"]["warm"].as_u64().unwrap() > 0,
        "{}",
        sticky["reasons"]
    );
}

/// Support conversations of 3-6 turns from 40 users over four minutes; `faults` makes flash-a
/// slow to its first token (8 s) from 40 s to 160 s, then refuse everything for a minute.
fn outage_trace(path: &Path, faults: &Path) {
    let mut rng = Rng(0x07a6_e000_9e37);
    let system = "You are a helpful assistant for the support team. ".repeat(20);
    let mut lines = Vec::new();
    for u in 0..40 {
        let mut at = rng.below(200_000);
        let mut messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": format!("[user {u}] Summarise ticket #{}.", 1_000 + rng.below(9_000))}),
        ];
        for _ in 0..3 + rng.below(4) {
            lines.push((
                at,
                json!({"at_ms": at, "output_tokens": 80 + rng.below(200),
                       "request": {"model": "auto", "messages": messages}}),
            ));
            messages.push(json!({"role": "assistant", "content": "Here is the summary."}));
            messages.push(json!({"role": "user", "content": "And the next one?"}));
            at += 5_000 + rng.below(10_000);
        }
    }
    write_trace(path, lines);
    let faults_json = json!({"faults": [
        {"upstream": "flash-a", "from_ms": 40_000, "to_ms": 160_000, "kind": "slow", "ttft_ms": 8_000},
        {"upstream": "flash-a", "from_ms": 160_000, "to_ms": 220_000, "kind": "down"},
    ]});
    std::fs::write(faults, faults_json.to_string()).unwrap();
}

#[test]
fn adaptive_has_fewer_slow_requests_than_flash_first_under_a_slow_upstream() {
    let dir = TempDir::new("policies-outage");
    let (trace, faults) = (dir.path("outage.jsonl"), dir.path("faults.json"));
    outage_trace(&trace, &faults);
    let report = simulate(&dir, "adaptive", "flash-first", &trace, Some(&faults));
    let (adaptive, flash_first) = (&report["run"], &report["compare"]);
    let n = |r: &Value, k: &str| r[k].as_u64().unwrap();
    // flash-first's share of the slow upstream waits 8 s for each first token.
    assert!(n(flash_first, "slow") >= 10, "flash-first: {flash_first}");
    assert!(
        n(adaptive, "slow") * 2 <= n(flash_first, "slow"),
        "slow requests: adaptive {} vs flash-first {}",
        adaptive["slow"],
        flash_first["slow"]
    );
    assert!(n(adaptive, "errors") <= n(flash_first, "errors"));
    // The model mix is flash-first's: only the upstreams differ.
    assert_eq!(
        adaptive["mix"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["deepseek-v4-flash"]
    );
    assert_eq!(adaptive["reasons"], flash_first["reasons"]);
}

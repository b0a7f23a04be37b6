//! `switchyard policy check FILE`: validates a component against the contract, runs its config
//! validation and a set of sample requests, and prints the decisions with the time each took.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use switchyard_policy::types::Decision;
use switchyard_policy::{CallContext, EngineSettings, PolicyEngine, SandboxLimits};

use super::samples::samples;

/// Options of `policy check`.
pub struct CheckOptions<'a> {
    pub file: &'a Path,
    /// The policy config (JSON) to validate and decide with.
    pub config: &'a str,
    pub limits: SandboxLimits,
    /// Decisions per sample; the median is printed.
    pub runs: usize,
}

/// One line describing a decision.
pub fn describe(d: &Decision) -> String {
    match d {
        Decision::Reject(r) => format!("REJECT {} {}: {}", r.status, r.code, r.message),
        Decision::Route(r) => {
            let fallbacks: Vec<&str> = r.fallbacks.iter().map(|t| t.model.as_str()).collect();
            let tags: Vec<String> = r
                .tags
                .iter()
                .map(|p| format!("{}={}", p.key, p.value))
                .collect();
            format!(
                "{:<18} fallbacks [{}] {}",
                r.primary.model,
                fallbacks.join(", "),
                tags.join(" ")
            )
        }
    }
}

/// Runs the check; returns whether everything passed. Prints a report to stdout.
pub fn run(opts: &CheckOptions<'_>) -> anyhow::Result<bool> {
    let bytes = std::fs::read(opts.file)?;
    let engine = PolicyEngine::new(EngineSettings {
        max_memory_bytes: opts.limits.memory_bytes.max(64 << 20),
        concurrent_instances: 4,
        ..EngineSettings::default()
    })
    .map_err(anyhow::Error::msg)?;
    let name = opts
        .file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy");
    let started = Instant::now();
    let policy = match engine.compile(name, &bytes) {
        Ok(p) => p,
        Err(e) => {
            println!("FAIL {}: {e}", opts.file.display());
            return Ok(false);
        }
    };
    println!(
        "policy   {} ({} bytes, sha256 {})",
        opts.file.display(),
        bytes.len(),
        policy.hash()
    );
    println!(
        "contract switchyard:policy@{}: ok; imports: {}",
        policy.contract(),
        policy.imports().join(", ")
    );
    println!("compile  {:.1} ms", started.elapsed().as_secs_f64() * 1e3);

    let ctx = CallContext {
        tenant: "check".into(),
        request_id: Arc::from("check"),
        limits: opts.limits.clone(),
        capture_logs: true,
        yield_each_tick: false,
        store: None,
    };
    let mut ok = true;
    match policy.validate_config(&ctx, opts.config) {
        Ok(outcome) => match outcome.value {
            Ok(()) => println!("config   {}: accepted", opts.config),
            Err(reason) => {
                println!("config   {}: REFUSED: {reason}", opts.config);
                ok = false;
            }
        },
        Err(failure) => {
            println!("config   validate-config FAILED: {failure}");
            ok = false;
        }
    }

    println!(
        "\nsample decisions (median of {} runs, fresh instance each):",
        opts.runs
    );
    for (label, summary) in samples(opts.config) {
        let mut times = Vec::with_capacity(opts.runs);
        let mut last = None;
        for _ in 0..opts.runs.max(1) {
            let t = Instant::now();
            let result = policy.decide(&ctx, &summary);
            times.push(t.elapsed());
            last = Some(result);
        }
        times.sort();
        let median = times[times.len() / 2];
        match last.expect("at least one run") {
            Ok(outcome) => {
                println!(
                    "  {label:<26} {:>8.1} us  {}",
                    median.as_secs_f64() * 1e6,
                    describe(&outcome.value)
                );
                for line in outcome.logs {
                    println!(
                        "  {:<26}             log {:?}: {}",
                        "", line.level, line.message
                    );
                }
            }
            Err(failure) => {
                println!("  {label:<26} FAILED: {failure}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

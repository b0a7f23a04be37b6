//! Isolation: a well-behaved tenant's latency alone, and next to each hostile tenant sending 100
//! requests per second to the same gateway at the same time (and, for scale, next to a second
//! well-behaved tenant at that rate).
//!
//! `cargo bench -p switchyard-tests --bench isolation` (after `scripts/build-policies.sh`);
//! `ISOLATION_MODES=loop,slow` limits the run to those hostile modes.
//! Quarantine is turned off for the hostile tenant, so every one of its requests really reaches
//! the scheduler and the sandbox: this measures their isolation, not the quarantine's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_tests::*;

const GOOD_REQUESTS: usize = 10_000;
const ATTACKERS: usize = 4;
/// Requests per second each attacking client sends.
const ATTACK_RATE: u64 = 25;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// What an operator gives each tenant of a shared gateway: a tenth of a core of decision time per
/// second, where the default is a whole core.
const SHARED_LIMITS: &str = ", decision_cpu_ms_per_second = 100";

/// What one run measured.
struct Run {
    /// The good tenant's latency percentiles, milliseconds.
    p50: f64,
    p99: f64,
    /// Requests the hostile tenant sent.
    attacks: usize,
    /// Median decision time of the hostile tenant's routed requests, µs.
    hostile_decision_us: Option<f64>,
}

async fn run(mode: Option<(&str, &str)>, attacker_limits: &str) -> Run {
    let mock = MockUpstream::echo().await;
    let (mode_name, extra) = mode.unwrap_or(("ok", ""));
    // Routes that succeed go to Flash (the attacker's only model); `bad-model` aims at Pro.
    let target = if mode_name == "bad-model" {
        "deepseek-v4-pro"
    } else {
        "deepseek-v4-flash"
    };
    let toml = upstream_toml(
        "main",
        &mock.url(),
        &["deepseek-v4-flash", "deepseek-v4-pro"],
        "",
    ) + &policy_toml("hostile", "hostile")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "attacker",
            KEY_B,
            "hostile",
            &["deepseek-v4-flash"],
            &format!(
                "policy_config = {{ mode = \"{mode_name}\", model = \"{target}\" {extra} }}\nsandbox = {{ quarantine_failures = 100000000 {attacker_limits} }}"
            ),
        )
        + &tenant_toml(
            "good",
            KEY_A,
            "ff",
            &["deepseek-v4-flash", "deepseek-v4-pro"],
            "",
        );
    let gw = Arc::new(start_gateway(&toml).await);
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    if mode.is_some() {
        for _ in 0..ATTACKERS {
            let (gw, stop) = (gw.clone(), stop.clone());
            attackers.push(tokio::spawn(async move {
                let mut decision_us = Vec::new();
                let mut n = 0;
                let mut tick = tokio::time::interval(Duration::from_millis(1000 / ATTACK_RATE));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let r = chat(&gw, KEY_B, &user_says("auto", "attack")).await;
                    // Present when the policy routed (its decision time, queueing included).
                    if let Some(us) = r.headers.get("x-switchyard-decision-us") {
                        decision_us.extend(us.to_str().ok().and_then(|v| v.parse::<f64>().ok()));
                    }
                    n += 1;
                }
                (n, decision_us)
            }));
        }
    }
    let body = user_says("auto", "review this function");
    for _ in 0..100 {
        chat(&gw, KEY_A, &body).await;
    }
    let mut samples = Vec::with_capacity(GOOD_REQUESTS);
    for _ in 0..GOOD_REQUESTS {
        let t = Instant::now();
        let r = chat(&gw, KEY_A, &body).await;
        samples.push(t.elapsed());
        assert_eq!(r.status, 200, "the good tenant must always be served");
    }
    stop.store(true, Ordering::Relaxed);
    let mut attacks = 0;
    let mut decision_us = Vec::new();
    for a in attackers {
        let (n, us) = a.await.unwrap();
        attacks += n;
        decision_us.extend(us);
    }
    samples.sort();
    Run {
        p50: pct(&samples, 0.5),
        p99: pct(&samples, 0.99),
        attacks,
        hostile_decision_us: (!decision_us.is_empty()).then(|| median(decision_us)),
    }
}

/// Rounds over every configuration; each figure is the median over the rounds, which are
/// interleaved so that a passing stall of the machine lands in one round of one row, not in a row.
const ROUNDS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let modes: [(&str, &str); 10] = [
        ("ok (well-behaved, for scale)", ""),
        ("loop", ""),
        ("memory-bomb", ""),
        ("recursion", ""),
        ("panic", ""),
        ("huge-string", ""),
        ("many-fallbacks", ""),
        ("bad-model", ""),
        ("log-spam", ""),
        ("slow", ", spin = 200000"),
    ];
    // `ISOLATION_MODES=loop,slow` runs only those (the baseline always runs).
    let only = std::env::var("ISOLATION_MODES").ok();
    let modes: Vec<_> = modes
        .into_iter()
        .filter(|(mode, _)| {
            let name = mode.split(' ').next().unwrap_or(mode);
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|m| m == name))
        })
        .collect();
    // A first run warms the process (allocator, page tables, caches) and is not reported.
    run(None, "").await;
    // Per row, over the rounds: runs with the default limits, runs with shared limits.
    let mut alone = Vec::new();
    let mut rows: Vec<(Vec<Run>, Vec<Run>)> = modes.iter().map(|_| Default::default()).collect();
    for _ in 0..ROUNDS {
        alone.push(run(None, "").await);
        for ((mode, extra), row) in modes.iter().zip(&mut rows) {
            let name = mode.split(' ').next().unwrap_or(mode);
            row.0.push(run(Some((name, extra)), "").await);
            row.1.push(run(Some((name, extra)), SHARED_LIMITS).await);
        }
    }
    let p50 = |runs: &[Run]| median(runs.iter().map(|r| r.p50).collect());
    let p99 = |runs: &[Run]| median(runs.iter().map(|r| r.p99).collect());
    let (base50, base99) = (p50(&alone), p99(&alone));
    println!(
        "good tenant latency, {GOOD_REQUESTS} sequential requests, next to {ATTACKERS} clients of another tenant at {} requests/s in all;",
        ATTACKERS as u64 * ATTACK_RATE
    );
    println!(
        "that tenant with the default limits, and with shared-gateway limits (`{}`); medians of {ROUNDS} interleaved rounds",
        SHARED_LIMITS.trim_start_matches(", ")
    );
    println!();
    println!(
        "| next to | p50 ms | p99 ms | p50 ratio | p99 ratio | p99 ms, shared limits | p99 ratio, shared limits | hostile requests | hostile decision µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!("| nothing (alone) | {base50:.3} | {base99:.3} | 1.00 | 1.00 | | | 0 | |");
    for ((mode, _), (default, shared)) in modes.iter().zip(rows) {
        let (p50, p99, shared99) = (p50(&default), p99(&default), p99(&shared));
        let attacks: usize = default.iter().chain(&shared).map(|r| r.attacks).sum();
        let decision_us: Vec<f64> = default
            .iter()
            .filter_map(|r| r.hostile_decision_us)
            .collect();
        let decision = if decision_us.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.0}", median(decision_us))
        };
        println!(
            "| {mode} | {p50:.3} | {p99:.3} | {:.2} | {:.2} | {shared99:.3} | {:.2} | {attacks} | {decision} |",
            p50 / base50,
            p99 / base99,
            shared99 / base99,
        );
    }
}

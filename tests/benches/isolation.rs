//! Isolation: a well-behaved tenant's latency alone, and next to each hostile tenant sending 100
//! requests per second to the same gateway at the same time (and, for scale, next to a second
//! well-behaved tenant at that rate).
//!
//! `cargo bench -p switchyard-tests --bench isolation` (after `scripts/build-policies.sh`).
//! Quarantine is turned off for the hostile tenant, so every one of its requests really reaches
//! the scheduler and the sandbox: this measures their isolation, not the quarantine's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_tests::*;

const GOOD_REQUESTS: usize = 1500;
const ATTACKERS: usize = 4;
/// Requests per second each attacking client sends.
const ATTACK_RATE: u64 = 25;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn run(mode: Option<(&str, &str)>) -> (f64, f64, usize) {
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
                "policy_config = {{ mode = \"{mode_name}\", model = \"{target}\" {extra} }}\nsandbox = {{ quarantine_failures = 100000000 }}"
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
                let mut n = 0;
                let mut tick = tokio::time::interval(Duration::from_millis(1000 / ATTACK_RATE));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let _ = chat(&gw, KEY_B, &user_says("auto", "attack")).await;
                    n += 1;
                }
                n
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
    for a in attackers {
        attacks += a.await.unwrap();
    }
    samples.sort();
    (pct(&samples, 0.5), pct(&samples, 0.99), attacks)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (base50, base99, _) = run(None).await;
    println!(
        "good tenant latency, {GOOD_REQUESTS} sequential requests, next to {ATTACKERS} clients of another tenant at {} requests/s in all",
        ATTACKERS as u64 * ATTACK_RATE
    );
    println!();
    println!("| next to | good p50 ms | good p99 ms | p50 ratio | p99 ratio | hostile requests |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!("| nothing (alone) | {base50:.3} | {base99:.3} | 1.00 | 1.00 | 0 |");
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
    for (mode, extra) in modes {
        let name = mode.split(' ').next().unwrap_or(mode);
        let (p50, p99, attacks) = run(Some((name, extra))).await;
        println!(
            "| {mode} | {p50:.3} | {p99:.3} | {:.2} | {:.2} | {attacks} |",
            p50 / base50,
            p99 / base99
        );
    }
}

//! Isolation: a well-behaved tenant's latency alone, next to a second well-behaved tenant, and
//! next to each hostile tenant sending 100 requests per second to the same gateway at the same
//! time.
//!
//! `scripts/bench-isolation.sh` (builds the policies and the release binary, then runs
//! `cargo bench -p switchyard-tests --bench isolation`); `ISOLATION_MODES=loop,slow` limits the
//! run to those hostile modes (the well-behaved neighbour always runs).
//!
//! The gateway under test is the release `switchyard` binary in a process of its own, as in
//! production; the mock upstream, the attacking clients and the good tenant's client run here,
//! each on a runtime of its own, and every client keeps its connections open as SDKs do. (The
//! first version of this bench ran all of them and the gateway on one two-thread runtime, with a
//! new connection per request: there a well-behaved neighbour alone cost the good tenant
//! 1.33-1.66x at p99, and the rows could not be told apart from that.) Quarantine is turned off
//! for the hostile tenant, so every one of its requests really reaches the scheduler and the
//! sandbox: this measures their isolation, not the quarantine's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_tests::*;

const GOOD_REQUESTS: usize = 10_000;
const ATTACKERS: usize = 4;
/// Requests per second each attacking client sends.
const ATTACK_RATE: u64 = 25;
/// Rounds over every configuration; each figure is the median over the rounds, which are
/// interleaved so that a passing stall of the machine lands in one round of one row, not in a row.
const ROUNDS: usize = 5;

/// What an operator gives each tenant of a shared gateway: a tenth of a core of decision time per
/// second, where the default is a whole core.
const SHARED_LIMITS: &str = ", decision_cpu_ms_per_second = 100";

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// What one run measured.
struct Run {
    /// The good tenant's latency percentiles, milliseconds.
    p50: f64,
    p99: f64,
    /// Requests the other tenant sent, and how many of them were answered 200.
    attacks: usize,
    attacks_ok: usize,
    /// Median decision time of the other tenant's routed requests, µs.
    other_decision_us: Option<f64>,
}

/// The runtimes the bench's own parts run on, apart from each other and from the gateway.
struct Runtimes {
    /// The mock upstream.
    mock: tokio::runtime::Runtime,
    /// The other tenant's clients.
    attack: tokio::runtime::Runtime,
    /// The good tenant's client (driven by `block_on` from the main thread).
    good: tokio::runtime::Runtime,
}

fn one_thread_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One gateway process with a good tenant (flash-first) and another tenant on the hostile test
/// policy in `mode` (`ok` is well-behaved), measured for `GOOD_REQUESTS` sequential requests.
fn run(rt: &Runtimes, mode: Option<(&str, &str)>, other_limits: &str) -> Run {
    let mock = rt.mock.block_on(MockUpstream::echo());
    let (mode_name, extra) = mode.unwrap_or(("ok", ""));
    // Routes that succeed go to Flash (the other tenant's only model); `bad-model` aims at Pro.
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
        + "[policies.ff]\npath = \"builtin:flash-first\"\n"
        + &tenant_toml(
            "other",
            KEY_B,
            "hostile",
            &["deepseek-v4-flash"],
            &format!(
                "policy_config = {{ mode = \"{mode_name}\", model = \"{target}\" {extra} }}\nsandbox = {{ quarantine_failures = 100000000 {other_limits} }}"
            ),
        )
        + &tenant_toml(
            "good",
            KEY_A,
            "ff",
            &["deepseek-v4-flash", "deepseek-v4-pro"],
            "",
        );
    let dir = TempDir::new("isolation");
    let config = dir.path("switchyard.toml");
    std::fs::write(&config, toml).expect("write the config");
    // The access log off: a line per request would be parsed by this process's log reader.
    let gateway = Process::serve(
        &["--config", config.to_str().expect("utf-8 path")],
        &[("SWITCHYARD_LOG", "info,switchyard::access=warn")],
    );
    let url: Arc<str> = gateway.url().into();

    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    if mode.is_some() {
        for _ in 0..ATTACKERS {
            let (url, stop) = (url.clone(), stop.clone());
            attackers.push(rt.attack.spawn(async move {
                let client = KeepAliveClient::default();
                let body = Bytes::from(user_says("auto", "attack").to_string());
                let (mut sent, mut ok, mut decision_us) = (0, 0, Vec::new());
                let mut tick = tokio::time::interval(Duration::from_millis(1000 / ATTACK_RATE));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let r = client.chat(&url, KEY_B, body.clone()).await;
                    // Present when the policy routed (its decision time, queueing included).
                    if let Some(us) = r.headers.get("x-switchyard-decision-us") {
                        decision_us.extend(us.to_str().ok().and_then(|v| v.parse::<f64>().ok()));
                    }
                    sent += 1;
                    ok += usize::from(r.status == 200);
                }
                (sent, ok, decision_us)
            }));
        }
    }
    let samples = rt.good.block_on(async {
        let client = KeepAliveClient::default();
        let body = Bytes::from(user_says("auto", "review this function").to_string());
        for _ in 0..200 {
            client.chat(&url, KEY_A, body.clone()).await;
        }
        let mut samples = Vec::with_capacity(GOOD_REQUESTS);
        for _ in 0..GOOD_REQUESTS {
            let t = Instant::now();
            let r = client.chat(&url, KEY_A, body.clone()).await;
            samples.push(t.elapsed());
            assert_eq!(r.status, 200, "the good tenant must always be served");
        }
        samples.sort();
        samples
    });
    stop.store(true, Ordering::Relaxed);
    let (mut attacks, mut attacks_ok, mut decision_us) = (0, 0, Vec::new());
    for a in attackers {
        let (sent, ok, us) = rt.attack.block_on(a).expect("attacker");
        attacks += sent;
        attacks_ok += ok;
        decision_us.extend(us);
    }
    drop(gateway);
    rt.mock.block_on(async move { drop(mock) });
    Run {
        p50: pct(&samples, 0.5),
        p99: pct(&samples, 0.99),
        attacks,
        attacks_ok,
        other_decision_us: (!decision_us.is_empty()).then(|| median(decision_us)),
    }
}

/// Stops when the release gateway is missing or older than anything it is built from (then the
/// figures would be a stale build's): `scripts/bench-isolation.sh` builds it first.
/// `ISOLATION_ALLOW_STALE=1` runs anyway.
fn refuse_stale_binary() {
    fn newest(path: &std::path::Path) -> Option<std::time::SystemTime> {
        if !path.is_dir() {
            return std::fs::metadata(path).and_then(|m| m.modified()).ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|entry| newest(&entry.path()))
            .max()
    }
    let root = repo_root();
    let bin = root.join("target/release/switchyard");
    let built = newest(&bin);
    let sources = ["host", "wit", "Cargo.toml", "Cargo.lock"]
        .iter()
        .filter_map(|p| newest(&root.join(p)))
        .max();
    let stale = match (built, sources) {
        (None, _) => true,
        (Some(built), Some(sources)) => built < sources,
        (Some(_), None) => false,
    };
    if stale && std::env::var_os("ISOLATION_ALLOW_STALE").is_none() {
        eprintln!(
            "{} is missing or older than the gateway's sources: run `cargo build --release -p switchyard` \
             (scripts/bench-isolation.sh does), or set ISOLATION_ALLOW_STALE=1",
            bin.display()
        );
        std::process::exit(2);
    }
}

fn main() {
    refuse_stale_binary();
    let modes: [(&str, &str); 10] = [
        ("ok (well-behaved neighbour, for scale)", ""),
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
    // `ISOLATION_MODES=loop,slow` runs only those (alone and the neighbour always run).
    let only = std::env::var("ISOLATION_MODES").ok();
    let modes: Vec<_> = modes
        .into_iter()
        .enumerate()
        .filter(|(i, (mode, _))| {
            let name = mode.split(' ').next().unwrap_or(mode);
            *i == 0
                || only
                    .as_deref()
                    .is_none_or(|o| o.split(',').any(|m| m == name))
        })
        .map(|(_, m)| m)
        .collect();
    let rt = Runtimes {
        mock: one_thread_runtime("mock-upstream"),
        attack: one_thread_runtime("other-tenant"),
        good: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    };
    // A first run warms the machine (page cache, the artifact cache) and is not reported.
    run(&rt, None, "");
    // Per round: alone; per row, with the default limits and with shared limits.
    let mut alone = Vec::new();
    let mut rows: Vec<(Vec<Run>, Vec<Run>)> = modes.iter().map(|_| Default::default()).collect();
    for _ in 0..ROUNDS {
        alone.push(run(&rt, None, ""));
        for ((mode, extra), row) in modes.iter().zip(&mut rows) {
            let name = mode.split(' ').next().unwrap_or(mode);
            row.0.push(run(&rt, Some((name, extra)), ""));
            row.1.push(run(&rt, Some((name, extra)), SHARED_LIMITS));
        }
    }
    let p50 = |runs: &[Run]| median(runs.iter().map(|r| r.p50).collect());
    let p99 = |runs: &[Run]| median(runs.iter().map(|r| r.p99).collect());
    // The p99 ratio to the well-behaved neighbour of the same round, median over the rounds.
    let neighbour = &rows[0].0;
    let against_neighbour = |runs: &[Run]| {
        median(
            runs.iter()
                .zip(neighbour)
                .map(|(r, n)| r.p99 / n.p99)
                .collect(),
        )
    };
    let (base50, base99) = (p50(&alone), p99(&alone));
    println!(
        "good tenant latency, {GOOD_REQUESTS} sequential requests on one kept-alive connection, next to {ATTACKERS} clients of another tenant at {} requests/s in all;",
        ATTACKERS as u64 * ATTACK_RATE
    );
    println!(
        "that tenant with the default limits, and with shared-gateway limits (`{}`); the gateway in its own process; medians of {ROUNDS} interleaved rounds",
        SHARED_LIMITS.trim_start_matches(", ")
    );
    println!();
    println!(
        "| next to | p50 ms | p99 ms | p50 ratio | p99 ratio | p99 vs neighbour | p99 ms, shared limits | p99 ratio, shared limits | other's requests (200s) | other's decision µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!("| nothing (alone) | {base50:.3} | {base99:.3} | 1.00 | 1.00 | | | | 0 | |");
    for ((mode, _), (default, shared)) in modes.iter().zip(&rows) {
        let (p50, p99, shared99) = (p50(default), p99(default), p99(shared));
        let attacks: usize = default.iter().chain(shared).map(|r| r.attacks).sum();
        let attacks_ok: usize = default.iter().chain(shared).map(|r| r.attacks_ok).sum();
        let decision_us: Vec<f64> = default.iter().filter_map(|r| r.other_decision_us).collect();
        let decision = if decision_us.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.0}", median(decision_us))
        };
        println!(
            "| {mode} | {p50:.3} | {p99:.3} | {:.2} | {:.2} | {:.2} | {shared99:.3} | {:.2} | {attacks} ({attacks_ok}) | {decision} |",
            p50 / base50,
            p99 / base99,
            against_neighbour(default),
            shared99 / base99,
        );
    }
}

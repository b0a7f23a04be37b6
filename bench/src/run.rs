//! `switchyard-bench run`: every measurement of the performance issue in one invocation, each next
//! to a direct call to the same mock upstream (and to nginx and a bare hyper proxy when present),
//! written out as `results.json`, `summary.md` and `scaling.svg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bodies;
use crate::load::{self, Latency, OhaRun, Streams, which};
use crate::procs::{Memory, Proc, wait_until_up};
use switchyard_tools::svg;

const MOCK: &str = "127.0.0.1:18180";
const SLOW_MOCK: &str = "127.0.0.1:18182";
const NGINX: &str = "127.0.0.1:18181";
const FLOOR: &str = "127.0.0.1:18185";
const SWITCHYARD: &str = "127.0.0.1:18190";
const SWITCHYARD_WARM: &str = "127.0.0.1:18191";
const PATH: &str = "/v1/chat/completions";
/// The key of the single-tenant configuration.
const KEY: &str = "sk-bench";

/// What to run.
pub struct Options {
    pub switchyard: PathBuf,
    pub policy: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
    /// Shorter runs and smaller curves: a smoke test of the harness, not figures to quote.
    pub quick: bool,
    /// The parts to run; empty runs all.
    pub only: Vec<String>,
}

impl Options {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

/// A target of the side-by-side runs.
struct Target {
    name: &'static str,
    url: String,
    key: Option<&'static str>,
    proc: Proc,
}

#[derive(Debug, Serialize)]
struct Row {
    target: String,
    body: String,
    load: String,
    #[serde(flatten)]
    latency: Latency,
    cpu_us_per_request: f64,
}

#[derive(Debug, Serialize)]
struct SizePoint {
    bytes: usize,
    direct_p50_ms: f64,
    switchyard_p50_ms: f64,
    added_p50_ms: f64,
    switchyard_cpu_us_per_request: f64,
    switchyard_peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct StreamPoint {
    streams: usize,
    direct: Streams,
    switchyard: Streams,
    switchyard_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct TenantPoint {
    tenants: usize,
    cold_start_ms: f64,
    warm_start_ms: f64,
    rss_idle_mib: f64,
    rss_after_load_mib: f64,
    latency: Latency,
}

/// One front door, passed through to an upstream that speaks it or translated through chat.
#[derive(Debug, Serialize)]
struct DialectRow {
    api: String,
    /// `passthrough` or `translated`.
    mode: String,
    /// `small` or `sse`.
    body: String,
    #[serde(flatten)]
    latency: Latency,
    cpu_us_per_request: f64,
}

#[derive(Debug, Default, Serialize)]
struct Results {
    date: String,
    machine: String,
    quick: bool,
    startup_warm_ms: f64,
    startup_cold_ms: f64,
    memory: BTreeMap<String, Memory>,
    idle_rss_mib: f64,
    rows: Vec<Row>,
    body_sizes: Vec<SizePoint>,
    streams: Vec<StreamPoint>,
    tenants: Vec<TenantPoint>,
    dialects: Vec<DialectRow>,
    /// Per target: the highest rate (small body) it served with p99 under 20 ms.
    max_rate_p99_20ms: BTreeMap<String, u32>,
}

struct Durations {
    load: Duration,
    size: Duration,
}

pub async fn run(mut opts: Options) -> Result<()> {
    let oha = load::find_oha()?;
    std::fs::create_dir_all(&opts.out)?;
    std::fs::create_dir_all(&opts.cache)?;
    if !opts.policy.is_file() {
        bail!(
            "{:?} is missing: build the policies first (scripts/build-policies.sh)",
            opts.policy
        );
    }
    // Configs live in `out` and resolve relative paths from there: pass absolute ones.
    for path in [
        &mut opts.switchyard,
        &mut opts.policy,
        &mut opts.out,
        &mut opts.cache,
    ] {
        *path = std::fs::canonicalize(&*path).with_context(|| format!("{path:?}"))?;
    }
    let d = if opts.quick {
        Durations {
            load: Duration::from_secs(2),
            size: Duration::from_secs(1),
        }
    } else {
        Durations {
            load: Duration::from_secs(10),
            size: Duration::from_secs(4),
        }
    };
    let logs = opts.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let bodies = bodies::write_fixed(&opts.out.join("bodies"))?;
    let mut results = Results {
        date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        machine: machine(),
        quick: opts.quick,
        ..Results::default()
    };

    // The mock upstream, and Switchyard in front of it: a cold start (compiling the policy into
    // the artifact cache) then the warm start that is measured.
    let mock = start_own(&["mock", "--listen", MOCK], MOCK, &logs.join("mock.log")).await?;
    let config = opts.out.join("switchyard.toml");
    std::fs::write(
        &config,
        single_tenant_config(SWITCHYARD, MOCK, &opts.policy, &opts.cache),
    )?;
    let _ = std::fs::remove_dir_all(opts.cache.join("single"));
    let (cold, cold_ms) = start_switchyard(&opts.switchyard, &config, &logs, "cold").await?;
    drop(cold);
    let (switchyard, warm_ms) = start_switchyard(&opts.switchyard, &config, &logs, "warm").await?;
    results.startup_cold_ms = cold_ms;
    results.startup_warm_ms = warm_ms;
    tokio::time::sleep(Duration::from_millis(500)).await;
    results.idle_rss_mib = switchyard.memory().rss_mib;
    eprintln!(
        "switchyard up: cold start {cold_ms:.0} ms, warm start {warm_ms:.0} ms, idle RSS {:.1} MiB",
        results.idle_rss_mib
    );

    let mut targets = vec![
        Target {
            name: "direct",
            url: format!("http://{MOCK}{PATH}"),
            key: None,
            proc: mock,
        },
        Target {
            name: "switchyard",
            url: format!("http://{SWITCHYARD}{PATH}"),
            key: Some(KEY),
            proc: switchyard,
        },
    ];
    // The same gateway with the tenant on a warm instance (`sandbox.instance = "warm"`), the
    // opt-in isolation level, in its own process beside the default.
    if opts.wants("side-by-side") {
        let warm_config = opts.out.join("switchyard-warm-instance.toml");
        std::fs::write(
            &warm_config,
            single_tenant_config(SWITCHYARD_WARM, MOCK, &opts.policy, &opts.cache)
                + "sandbox = { instance = \"warm\" }\n",
        )?;
        let (proc, _) = start_switchyard_at(
            &opts.switchyard,
            &warm_config,
            &logs,
            "warm-instance",
            SWITCHYARD_WARM,
        )
        .await?;
        targets.push(Target {
            name: "switchyard-warm-instance",
            url: format!("http://{SWITCHYARD_WARM}{PATH}"),
            key: Some(KEY),
            proc,
        });
    }
    if let Some(nginx) = start_nginx(&opts.out).await? {
        targets.push(Target {
            name: "nginx",
            url: format!("http://{NGINX}{PATH}"),
            key: None,
            proc: nginx,
        });
    } else {
        eprintln!("nginx not on PATH: its reference rows are skipped");
    }
    let upstream = format!("http://{MOCK}/");
    let floor = start_own(
        &["floor", "--listen", FLOOR, "--upstream", &upstream],
        FLOOR,
        &logs.join("floor.log"),
    )
    .await?;
    targets.push(Target {
        name: "hyper-floor",
        url: format!("http://{FLOOR}{PATH}"),
        key: None,
        proc: floor,
    });

    // Side by side: three bodies, three loads, every target.
    // `seq`: one client, one request after another (the added latency independent benchmarks
    // quote for a single client).
    let loads: [(&str, u32, Option<u32>); 4] = [
        ("c32", 32, None),
        ("rate200", 32, Some(200)),
        ("rate20", 32, Some(20)),
        ("seq", 1, None),
    ];
    let side_by_side = if opts.wants("side-by-side") {
        &[
            ("small", &bodies.small),
            ("large", &bodies.large),
            ("sse", &bodies.sse),
        ][..]
    } else {
        &[]
    };
    for &(body_name, body) in side_by_side {
        for (load_name, concurrency, rate) in loads {
            for target in &mut targets {
                target.proc.check_running()?;
                let cpu = target.proc.cpu();
                let latency = load::oha(
                    &oha,
                    &OhaRun {
                        url: &target.url,
                        body,
                        key: target.key,
                        concurrency,
                        rate,
                        duration: d.load,
                    },
                )?;
                let used = target.proc.cpu() - cpu;
                let cpu_us = cpu_us_per_request(used, latency.requests);
                eprintln!(
                    "{body_name:5} {load_name:7} {:11} {:>9.0} rps  p50 {:7.3} ms  p99 {:7.3} ms  ttfb p50 {:7.3} ms  cpu {:7.1} us/req  errors {}",
                    target.name,
                    latency.rps,
                    latency.p50_ms,
                    latency.p99_ms,
                    latency.ttfb_p50_ms,
                    cpu_us,
                    latency.errors
                );
                results.rows.push(Row {
                    target: target.name.into(),
                    body: body_name.into(),
                    load: load_name.into(),
                    latency,
                    cpu_us_per_request: cpu_us,
                });
            }
        }
    }
    // The highest rate each target holds with p99 under 20 ms (small body): rates doubled from
    // 1,000 requests/s until one misses, then halved in between three times.
    if opts.wants("side-by-side") {
        for target in &mut targets {
            let mut run_at = |rate: u32| -> Result<Latency> {
                target.proc.check_running()?;
                load::oha(
                    &oha,
                    &OhaRun {
                        url: &target.url,
                        body: &bodies.small,
                        key: target.key,
                        concurrency: 64,
                        rate: Some(rate),
                        duration: d.load / 2,
                    },
                )
            };
            let holds = |l: &Latency, rate: u32| {
                l.p99_ms < 20.0 && l.errors == 0 && l.rps >= 0.95 * f64::from(rate)
            };
            let (mut good, mut bad) = (0u32, None::<u32>);
            let mut rate = 1_000;
            while bad.is_none() && rate <= 256_000 {
                let l = run_at(rate)?;
                if holds(&l, rate) {
                    good = rate;
                    rate *= 2;
                } else {
                    bad = Some(rate);
                }
            }
            if let Some(mut high) = bad {
                for _ in 0..3 {
                    let mid = (good + high) / 2;
                    if holds(&run_at(mid)?, mid) {
                        good = mid;
                    } else {
                        high = mid;
                    }
                }
            }
            eprintln!("{:11} holds p99 < 20 ms up to {good} rps", target.name);
            results
                .max_rate_p99_20ms
                .insert(target.name.to_owned(), good);
        }
    }
    for target in &targets {
        results
            .memory
            .insert(target.name.to_owned(), target.proc.memory());
    }

    // Cost versus body size: 2 KB to 4 MB (about a 1M-token prompt).
    // Decimal sizes: 4 MB is about 970k tokens, inside the models' 1M-token window with the
    // reserved output (4 MiB would be over it, and rightly refused).
    let sizes: &[usize] = if !opts.wants("sizes") {
        &[]
    } else if opts.quick {
        &[2_000, 128_000, 4_000_000]
    } else {
        &[
            2_000, 16_000, 128_000, 512_000, 1_000_000, 2_000_000, 4_000_000,
        ]
    };
    let sized_dir = opts.out.join("bodies");
    for &bytes in sizes {
        let path = sized_dir.join(format!("size-{bytes}.json"));
        std::fs::write(&path, bodies::conversation(bytes, false))?;
        let mut p50 = [0.0; 2];
        let mut cpu_us = 0.0;
        for (i, target) in targets.iter().take(2).enumerate() {
            let cpu = target.proc.cpu();
            let latency = load::oha(
                &oha,
                &OhaRun {
                    url: &target.url,
                    body: &path,
                    key: target.key,
                    concurrency: 4,
                    rate: None,
                    duration: d.size,
                },
            )?;
            if latency.errors > 0 {
                bail!(
                    "{} failed {} requests of {bytes} bytes",
                    target.name,
                    latency.errors
                );
            }
            p50[i] = latency.p50_ms;
            if i == 1 {
                cpu_us = cpu_us_per_request(target.proc.cpu() - cpu, latency.requests);
            }
        }
        let point = SizePoint {
            bytes,
            direct_p50_ms: p50[0],
            switchyard_p50_ms: p50[1],
            added_p50_ms: p50[1] - p50[0],
            switchyard_cpu_us_per_request: cpu_us,
            switchyard_peak_rss_mib: targets[1].proc.memory().peak_mib,
        };
        eprintln!(
            "body {:>8} B: direct p50 {:.3} ms, switchyard p50 {:.3} ms (+{:.3}), {:.0} us CPU/req",
            bytes, point.direct_p50_ms, point.switchyard_p50_ms, point.added_p50_ms, cpu_us
        );
        results.body_sizes.push(point);
    }
    drop(targets);

    // Open SSE streams: a mock that spaces its 11 events 50 ms apart, so streams stay open.
    let slow = start_own(
        &["mock", "--listen", SLOW_MOCK, "--chunk-delay-ms", "50"],
        SLOW_MOCK,
        &logs.join("slow-mock.log"),
    )
    .await?;
    let stream_config = opts.out.join("switchyard-streams.toml");
    std::fs::write(
        &stream_config,
        single_tenant_config(SWITCHYARD, SLOW_MOCK, &opts.policy, &opts.cache),
    )?;
    let (sy, _) = start_switchyard(&opts.switchyard, &stream_config, &logs, "streams").await?;
    let sse = Bytes::from(std::fs::read(&bodies.sse)?);
    let counts: &[usize] = if !opts.wants("streams") {
        &[]
    } else if opts.quick {
        &[1, 100]
    } else {
        &[1, 10, 100, 1000]
    };
    for &n in counts {
        let direct =
            load::streams(&format!("http://{SLOW_MOCK}{PATH}"), None, sse.clone(), n).await?;
        let through = load::streams(
            &format!("http://{SWITCHYARD}{PATH}"),
            Some(KEY),
            sse.clone(),
            n,
        )
        .await?;
        let rss = sy.memory().peak_mib;
        eprintln!(
            "{n:5} streams: TTFT p50 direct {:.2} ms, switchyard {:.2} ms; gap p99 direct {:.1} ms, switchyard {:.1} ms; failed {}/{}",
            direct.ttft_p50_ms,
            through.ttft_p50_ms,
            direct.gap_p99_ms,
            through.gap_p99_ms,
            direct.failed,
            through.failed
        );
        results.streams.push(StreamPoint {
            streams: n,
            direct,
            switchyard: through,
            switchyard_rss_mib: rss,
        });
    }
    drop(sy);
    drop(slow);

    // The three front doors, each passed through (the upstream speaks it) and translated (the
    // upstream speaks only chat), at full load, where CPU per request is counted precisely.
    let dialect_mock = start_own(
        &["mock", "--listen", MOCK],
        MOCK,
        &logs.join("mock-dialects.log"),
    )
    .await?;
    let modes = if opts.wants("dialects") {
        &[
            ("passthrough", r#"["chat", "messages", "responses"]"#),
            ("translated", r#"["chat"]"#),
        ][..]
    } else {
        &[]
    };
    for &(mode, apis) in modes {
        let config = opts.out.join(format!("switchyard-{mode}.toml"));
        std::fs::write(
            &config,
            dialect_config(SWITCHYARD, MOCK, &opts.policy, &opts.cache, apis),
        )?;
        let (mut sy, _) = start_switchyard(&opts.switchyard, &config, &logs, mode).await?;
        for (api, path, body_name, body) in [
            ("chat", PATH, "small", &bodies.small),
            ("chat", PATH, "sse", &bodies.sse),
            ("messages", "/v1/messages", "small", &bodies.messages),
            ("messages", "/v1/messages", "sse", &bodies.messages_sse),
            ("responses", "/v1/responses", "small", &bodies.responses),
            ("responses", "/v1/responses", "sse", &bodies.responses_sse),
        ] {
            sy.check_running()?;
            let cpu = sy.cpu();
            let latency = load::oha(
                &oha,
                &OhaRun {
                    url: &format!("http://{SWITCHYARD}{path}"),
                    body,
                    key: Some(KEY),
                    concurrency: 32,
                    rate: None,
                    duration: d.load,
                },
            )?;
            let cpu_us = cpu_us_per_request(sy.cpu() - cpu, latency.requests);
            eprintln!(
                "{api:9} {mode:11} {body_name:5} {:>9.0} rps  p50 {:7.3} ms  cpu {:7.1} us/req  errors {}",
                latency.rps, latency.p50_ms, cpu_us, latency.errors
            );
            if latency.errors > 0 {
                bail!(
                    "{api} {mode} {body_name}: {} requests failed",
                    latency.errors
                );
            }
            results.dialects.push(DialectRow {
                api: api.into(),
                mode: mode.into(),
                body: body_name.into(),
                latency,
                cpu_us_per_request: cpu_us,
            });
        }
    }
    drop(dialect_mock);

    // Tenants, each with its own policy component (distinct bytes, so compiled and held apart).
    let _mock = start_own(
        &["mock", "--listen", MOCK],
        MOCK,
        &logs.join("mock-tenants.log"),
    )
    .await?;
    let tenant_counts: &[usize] = if !opts.wants("tenants") {
        &[]
    } else if opts.quick {
        &[1, 10]
    } else {
        &[1, 10, 100, 1000]
    };
    let small = Bytes::from(std::fs::read(&bodies.small)?);
    for &n in tenant_counts {
        let dir = opts.out.join(format!("tenants-{n}"));
        let (config, keys) = many_tenants_config(&dir, n, &opts.policy, &opts.cache)?;
        // A cold start compiles every policy; the warm start after it reads the artifacts.
        let _ = std::fs::remove_dir_all(opts.cache.join("tenants"));
        let (cold, cold_ms) = start_switchyard(
            &opts.switchyard,
            &config,
            &logs,
            &format!("tenants-{n}-cold"),
        )
        .await?;
        drop(cold);
        let (sy, warm_ms) =
            start_switchyard(&opts.switchyard, &config, &logs, &format!("tenants-{n}")).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = sy.memory().rss_mib;
        let total = (n * 3).max(if opts.quick { 500 } else { 3000 });
        let latency = load::rotating(
            &format!("http://{SWITCHYARD}{PATH}"),
            &keys,
            small.clone(),
            total,
            16,
        )
        .await?;
        let after = sy.memory().rss_mib;
        eprintln!(
            "{n:5} tenants: cold start {cold_ms:.0} ms, warm start {warm_ms:.0} ms, RSS idle {idle:.1} MiB, after load {after:.1} MiB, p50 {:.3} ms, p99 {:.3} ms, errors {}",
            latency.p50_ms, latency.p99_ms, latency.errors
        );
        results.tenants.push(TenantPoint {
            tenants: n,
            cold_start_ms: cold_ms,
            warm_start_ms: warm_ms,
            rss_idle_mib: idle,
            rss_after_load_mib: after,
            latency,
        });
    }

    std::fs::write(
        opts.out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    std::fs::write(opts.out.join("summary.md"), summary(&results))?;
    std::fs::write(opts.out.join("scaling.svg"), charts(&results))?;
    eprintln!(
        "wrote {:?}/{{results.json,summary.md,scaling.svg}}",
        opts.out
    );
    Ok(())
}

/// Starts one of this binary's own servers (`mock`, `floor`) and waits until `listen` answers.
async fn start_own(args: &[&str], listen: &str, log: &Path) -> Result<Proc> {
    let proc = Proc::spawn(
        args[0],
        Command::new(std::env::current_exe()?).args(args),
        log,
    )?;
    wait_until_up(&format!("http://{listen}/healthz"), Duration::from_secs(10)).await?;
    Ok(proc)
}

/// A stream count at which every stream ended and none stalled: the gap p99 within 5 ms of
/// the upstream's own.
fn stall_free(p: &StreamPoint) -> bool {
    p.direct.failed + p.switchyard.failed == 0
        && p.switchyard.gap_p99_ms <= p.direct.gap_p99_ms + 5.0
}

/// CPU microseconds per request.
fn cpu_us_per_request(used: Duration, requests: u64) -> f64 {
    used.as_secs_f64() * 1e6 / requests.max(1) as f64
}

async fn start_switchyard(
    binary: &Path,
    config: &Path,
    logs: &Path,
    label: &str,
) -> Result<(Proc, f64)> {
    start_switchyard_at(binary, config, logs, label, SWITCHYARD).await
}

/// [`start_switchyard`] with a config that listens on `listen`.
async fn start_switchyard_at(
    binary: &Path,
    config: &Path,
    logs: &Path,
    label: &str,
    listen: &str,
) -> Result<(Proc, f64)> {
    let started = std::time::Instant::now();
    let mut proc = Proc::spawn(
        "switchyard",
        Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            // The access log is off, as nginx's is in the reference configuration.
            .env("SWITCHYARD_LOG", "warn"),
        &logs.join(format!("switchyard-{label}.log")),
    )?;
    let up = wait_until_up(
        &format!("http://{listen}/healthz"),
        Duration::from_secs(600),
    )
    .await;
    proc.check_running()?;
    up?;
    Ok((proc, started.elapsed().as_secs_f64() * 1000.0))
}

async fn start_nginx(out: &Path) -> Result<Option<Proc>> {
    let Some(nginx) = which("nginx", &["/usr/sbin".into(), "/sbin".into()]) else {
        return Ok(None);
    };
    let prefix = out.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("proxy.conf");
    std::fs::write(&conf, nginx_config(&prefix))?;
    let proc = Proc::spawn(
        "nginx",
        Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"]),
        &out.join("logs/nginx.log"),
    )?;
    wait_until_up(&format!("http://{NGINX}/healthz"), Duration::from_secs(10)).await?;
    Ok(Some(proc))
}

/// nginx as the shared rig runs it: one worker, upstream keep-alive, no buffering, no access log.
fn nginx_config(prefix: &Path) -> String {
    let p = prefix.display();
    format!(
        r#"worker_processes 1;
pid {p}/logs/nginx.pid;
error_log {p}/logs/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_max_body_size 8m;
    client_body_buffer_size 8m;
    client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;
    upstream mock {{ server {MOCK}; keepalive 128; keepalive_requests 10000000; }}
    server {{
        listen {NGINX} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"#
    )
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The `[server]` and mock `[upstreams]` part of a configuration.
fn gateway_config(listen: &str, upstream: &str, cache: &Path) -> String {
    format!(
        r#"[server]
listen = "{listen}"
watch = false
artifact_cache_dir = "{}"

[upstreams.mock]
base_url = "http://{upstream}/v1"
models = ["deepseek-v4-flash", "deepseek-v4-pro"]
"#,
        cache.display()
    )
}

/// A policy and the tenant that uses it, authenticated by `key`.
fn tenant_config(tenant: &str, policy_name: &str, policy: &Path, key: &str) -> String {
    format!(
        r#"
[policies.{policy_name}]
path = "{}"

[tenants.{tenant}]
api_keys_sha256 = ["{}"]
policy = "{policy_name}"
models = ["deepseek-v4-flash", "deepseek-v4-pro"]
"#,
        policy.display(),
        key_hash(key)
    )
}

/// The single tenant, its upstream speaking `apis` (a TOML array).
fn dialect_config(listen: &str, upstream: &str, policy: &Path, cache: &Path, apis: &str) -> String {
    gateway_config(listen, upstream, &cache.join("single")).replace(
        "[upstreams.mock]\n",
        &format!("[upstreams.mock]\napis = {apis}\n"),
    ) + &tenant_config("bench", "flash-first", policy, KEY)
}

fn single_tenant_config(listen: &str, upstream: &str, policy: &Path, cache: &Path) -> String {
    gateway_config(listen, upstream, &cache.join("single"))
        + &tenant_config("bench", "flash-first", policy, KEY)
}

/// `n` tenants, each with its own copy of the policy made distinct by a custom section (so it has
/// its own content hash, compiled artifact and pool images, as different policies would).
fn many_tenants_config(
    dir: &Path,
    n: usize,
    policy: &Path,
    cache: &Path,
) -> Result<(PathBuf, Vec<String>)> {
    std::fs::create_dir_all(dir)?;
    let component = std::fs::read(policy).with_context(|| format!("reading {policy:?}"))?;
    let mut config = gateway_config(SWITCHYARD, MOCK, &cache.join("tenants"));
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let path = dir.join(format!("policy-{i}.wasm"));
        std::fs::write(
            &path,
            with_custom_section(
                &component,
                "switchyard-bench-tenant",
                i.to_string().as_bytes(),
            ),
        )?;
        let key = format!("sk-bench-tenant-{i}");
        config.push_str(&tenant_config(
            &format!("t{i}"),
            &format!("p{i}"),
            &path,
            &key,
        ));
        keys.push(key);
    }
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, config)?;
    Ok((path, keys))
}

/// Appends a custom section (id 0: a name and opaque bytes) to a component or module.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{cpus} vCPU {model}, kernel {}, load average before: {}",
        command_output("uname", &["-r"]),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn row<'a>(r: &'a Results, target: &str, body: &str, load: &str) -> Option<&'a Row> {
    r.rows
        .iter()
        .find(|x| x.target == target && x.body == body && x.load == load)
}

fn summary(r: &Results) -> String {
    let mut s = format!(
        "Run {} on {}{}.\n\nCPU µs/req is precise only under the c32 load; at 20 and 200 rps a run holds a few hundred requests and CPU is counted in 10 ms ticks.\n\nSwitchyard: warm start {:.0} ms (cold, compiling: {:.0} ms), idle RSS {:.1} MiB.\n\n",
        r.date,
        r.machine,
        if r.quick {
            " (quick mode: smoke test, not for quoting)"
        } else {
            ""
        },
        r.startup_warm_ms,
        r.startup_cold_ms,
        r.idle_rss_mib
    );
    let targets: Vec<&str> = {
        let mut t: Vec<&str> = r.rows.iter().map(|x| x.target.as_str()).collect();
        t.dedup();
        t.sort();
        t.dedup();
        t
    };
    for body in ["small", "large", "sse"] {
        s.push_str(&format!("### {body}\n\n| target | load | RPS | p50 ms | p99 ms | TTFB p50 ms | +p50 vs direct ms | +p99 vs direct ms | CPU µs/req | CPU vs nginx | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"));
        for load in ["c32", "rate200", "rate20", "seq"] {
            let direct = row(r, "direct", body, load);
            let nginx = row(r, "nginx", body, load);
            for t in &targets {
                let Some(x) = row(r, t, body, load) else {
                    continue;
                };
                let added = |f: fn(&Latency) -> f64| {
                    direct.map_or(f64::NAN, |d| f(&x.latency) - f(&d.latency))
                };
                s.push_str(&format!(
                    "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:+.3} | {:+.3} | {:.1} | {} | {} |\n",
                    t,
                    load,
                    x.latency.rps,
                    x.latency.p50_ms,
                    x.latency.p99_ms,
                    x.latency.ttfb_p50_ms,
                    added(|l| l.p50_ms),
                    added(|l| l.p99_ms),
                    x.cpu_us_per_request,
                    nginx.map_or("-".into(), |n| format!("{:.2}x", x.cpu_us_per_request / n.cpu_us_per_request)),
                    x.latency.errors
                ));
            }
        }
        s.push('\n');
    }
    if !r.max_rate_p99_20ms.is_empty() {
        s.push_str("### Highest rate with p99 under 20 ms (small body, 64 connections)\n\n| target | requests/s | x nginx |\n|---|---:|---:|\n");
        let nginx = r.max_rate_p99_20ms.get("nginx").copied();
        for (name, rate) in &r.max_rate_p99_20ms {
            s.push_str(&format!(
                "| {name} | {rate} | {} |\n",
                nginx.map_or("-".into(), |n| format!(
                    "{:.2}x",
                    f64::from(*rate) / f64::from(n.max(1))
                ))
            ));
        }
        s.push('\n');
    }
    s.push_str("### Memory after the runs (process tree)\n\n| target | RSS MiB | peak MiB |\n|---|---:|---:|\n");
    for (name, m) in &r.memory {
        s.push_str(&format!(
            "| {name} | {:.1} | {:.1} |\n",
            m.rss_mib, m.peak_mib
        ));
    }
    s.push_str("\n### Body size (4 connections, as fast as possible)\n\n| body | direct p50 ms | switchyard p50 ms | added p50 ms | CPU µs/req | peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|\n");
    for p in &r.body_sizes {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:+.3} | {:.0} | {:.1} |\n",
            human_bytes(p.bytes),
            p.direct_p50_ms,
            p.switchyard_p50_ms,
            p.added_p50_ms,
            p.switchyard_cpu_us_per_request,
            p.switchyard_peak_rss_mib
        ));
    }
    s.push_str("\n### Open SSE streams (11 events, 50 ms apart; TTFT = first event with text; gaps between text events)\n\n| streams | TTFT p50 direct / switchyard ms | TTFT p99 direct / switchyard ms | added TTFT p50 / p99 ms | gap p50 direct / switchyard ms | gap p99 direct / switchyard ms | stall-free | failed | switchyard peak RSS MiB |\n|---:|---|---|---|---|---|---|---:|---:|\n");
    for p in &r.streams {
        s.push_str(&format!(
            "| {} | {:.2} / {:.2} | {:.2} / {:.2} | {:+.2} / {:+.2} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} | {:.1} |\n",
            p.streams,
            p.direct.ttft_p50_ms,
            p.switchyard.ttft_p50_ms,
            p.direct.ttft_p99_ms,
            p.switchyard.ttft_p99_ms,
            p.switchyard.ttft_p50_ms - p.direct.ttft_p50_ms,
            p.switchyard.ttft_p99_ms - p.direct.ttft_p99_ms,
            p.direct.gap_p50_ms,
            p.switchyard.gap_p50_ms,
            p.direct.gap_p99_ms,
            p.switchyard.gap_p99_ms,
            if stall_free(p) { "yes" } else { "no" },
            p.direct.failed + p.switchyard.failed,
            p.switchyard_rss_mib
        ));
    }
    let most = r
        .streams
        .iter()
        .filter(|p| stall_free(p))
        .map(|p| p.streams)
        .max();
    s.push_str(&format!(
        "\nStall-free (no failure, inter-token gap p99 within 5 ms of the upstream's): up to {} concurrent streams.\n",
        most.map_or("none of the".into(), |n| n.to_string())
    ));
    s.push_str("\n### Front doors (c32): passed through to an upstream that speaks the dialect, or translated through chat\n\n| api | body | passthrough CPU µs/req | translated CPU µs/req | translated / passthrough | passthrough p50 ms | translated p50 ms |\n|---|---|---:|---:|---:|---:|---:|\n");
    for api in ["chat", "messages", "responses"] {
        for body in ["small", "sse"] {
            let find = |mode: &str| {
                r.dialects
                    .iter()
                    .find(|d| d.api == api && d.body == body && d.mode == mode)
            };
            if let (Some(p), Some(t)) = (find("passthrough"), find("translated")) {
                s.push_str(&format!(
                    "| {api} | {body} | {:.1} | {:.1} | {:.2}x | {:.3} | {:.3} |\n",
                    p.cpu_us_per_request,
                    t.cpu_us_per_request,
                    t.cpu_us_per_request / p.cpu_us_per_request.max(1e-9),
                    p.latency.p50_ms,
                    t.latency.p50_ms
                ));
            }
        }
    }
    s.push_str("\n### Tenants, each with its own policy\n\n| tenants | cold start ms | warm start ms | RSS idle MiB | RSS after load MiB | MiB per tenant (vs 1) | p50 ms | p99 ms | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let base = r.tenants.first().map_or(0.0, |t| t.rss_after_load_mib);
    for t in &r.tenants {
        let per = if t.tenants > 1 {
            format!(
                "{:.2}",
                (t.rss_after_load_mib - base) / (t.tenants - 1) as f64
            )
        } else {
            "-".into()
        };
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.3} | {:.3} | {} |\n",
            t.tenants,
            t.cold_start_ms,
            t.warm_start_ms,
            t.rss_idle_mib,
            t.rss_after_load_mib,
            per,
            t.latency.p50_ms,
            t.latency.p99_ms,
            t.latency.errors
        ));
    }
    s
}

fn human_bytes(b: usize) -> String {
    if b >= 1_000_000 {
        format!("{} MB", b / 1_000_000)
    } else {
        format!("{} KB", b / 1_000)
    }
}

fn charts(r: &Results) -> String {
    const SY: &str = "#d9480f";
    const DIRECT: &str = "#1c7ed6";
    svg::render(&[
        svg::Chart {
            title: "Added p50 latency vs body size",
            x_label: "request body, bytes (log)",
            y_label: "ms over direct",
            series: vec![svg::Series {
                name: "switchyard",
                colour: SY,
                points: r
                    .body_sizes
                    .iter()
                    .map(|p| (p.bytes as f64, p.added_p50_ms))
                    .collect(),
            }],
        },
        svg::Chart {
            title: "CPU per KB of body (flat = linear)",
            x_label: "request body, bytes (log)",
            y_label: "µs CPU per KB",
            series: vec![svg::Series {
                name: "switchyard",
                colour: SY,
                points: r
                    .body_sizes
                    .iter()
                    .map(|p| {
                        (
                            p.bytes as f64,
                            p.switchyard_cpu_us_per_request / (p.bytes as f64 / 1000.0),
                        )
                    })
                    .collect(),
            }],
        },
        svg::Chart {
            title: "Time to first token vs open streams",
            x_label: "concurrent SSE streams (log)",
            y_label: "TTFT p50, ms",
            series: vec![
                svg::Series {
                    name: "direct",
                    colour: DIRECT,
                    points: r
                        .streams
                        .iter()
                        .map(|p| (p.streams as f64, p.direct.ttft_p50_ms))
                        .collect(),
                },
                svg::Series {
                    name: "switchyard",
                    colour: SY,
                    points: r
                        .streams
                        .iter()
                        .map(|p| (p.streams as f64, p.switchyard.ttft_p50_ms))
                        .collect(),
                },
            ],
        },
        svg::Chart {
            title: "RSS vs tenants (own policy each)",
            x_label: "tenants (log)",
            y_label: "MiB after load",
            series: vec![svg::Series {
                name: "switchyard",
                colour: SY,
                points: r
                    .tenants
                    .iter()
                    .map(|t| (t.tenants as f64, t.rss_after_load_mib))
                    .collect(),
            }],
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_section_changes_the_bytes_but_not_the_component() {
        // The smallest component: the preamble (magic, version 0x0d, layer 1).
        let component = b"\0asm\x0d\x00\x01\x00".to_vec();
        let a = with_custom_section(&component, "t", b"1");
        let b = with_custom_section(&component, "t", b"2");
        assert_ne!(a, b);
        assert!(a.starts_with(&component));
        // id 0, size 3 = name length (1) + "t" + payload "1".
        assert_eq!(&a[component.len()..], b"\x00\x03\x01t1");
    }
}

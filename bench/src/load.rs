//! Load: `oha` for fixed concurrency and fixed, latency-corrected rates (an established load
//! generator, so the figures compare with other people's), and a small client of our own for what
//! `oha` cannot do: many long-lived SSE streams with per-event timing, and requests that rotate
//! API keys across many tenants.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

/// One `oha` run.
pub struct OhaRun<'a> {
    pub url: &'a str,
    pub body: &'a Path,
    pub key: Option<&'a str>,
    pub concurrency: u32,
    /// Fixed rate (requests per second, latency-corrected); `None` is as fast as possible.
    pub rate: Option<u32>,
    pub duration: Duration,
}

/// What a load run measured, client side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ttfb_p50_ms: f64,
    pub ttfb_p99_ms: f64,
}

/// Runs `oha` and reads its JSON report.
pub fn oha(oha: &Path, run: &OhaRun<'_>) -> Result<Latency> {
    let mut cmd = std::process::Command::new(oha);
    cmd.args(["--no-tui", "--output-format", "json", "-w", "-m", "POST"])
        .args(["-z", &format!("{}ms", run.duration.as_millis())])
        .args(["-c", &run.concurrency.to_string()])
        .args(["-H", "content-type: application/json"])
        .arg("-D")
        .arg(run.body);
    if let Some(key) = run.key {
        cmd.args(["-H", &format!("authorization: Bearer {key}")]);
    }
    if let Some(rate) = run.rate {
        cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    cmd.arg(run.url);
    let out = cmd.output().with_context(|| format!("running {oha:?}"))?;
    if !out.status.success() {
        bail!(
            "oha failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading oha's JSON report")?;
    let secs = |path: &[&str]| {
        path.iter()
            .try_fold(&report, |v, k| v.get(k))
            .and_then(serde_json::Value::as_f64)
            .map_or(f64::NAN, |s| s * 1000.0)
    };
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let ok = statuses.get("200").and_then(|v| v.as_u64()).unwrap_or(0);
    let other: u64 = statuses
        .iter()
        .filter(|(k, _)| *k != "200")
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    let failed: u64 = report["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    Ok(Latency {
        requests: ok + other,
        errors: other + failed,
        rps: report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: secs(&["latencyPercentiles", "p50"]),
        p99_ms: secs(&["latencyPercentiles", "p99"]),
        ttfb_p50_ms: secs(&["firstBytePercentiles", "p50"]),
        ttfb_p99_ms: secs(&["firstBytePercentiles", "p99"]),
    })
}

/// Finds `oha`: `$OHA`, then `PATH`, then `~/.cargo/bin`.
pub fn find_oha() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("OHA") {
        return Ok(p.into());
    }
    let cargo_bin: Vec<PathBuf> = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin"))
        .into_iter()
        .collect();
    if let Some(p) = which("oha", &cargo_bin) {
        return Ok(p);
    }
    bail!("oha not found: run scripts/bench.sh (it installs oha 1.16 with cargo install --locked)")
}

pub type PlainClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled HTTP/1.1 client for loopback targets.
pub fn plain_client() -> PlainClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector)
}

fn post(url: &str, key: Option<&str>, body: Bytes) -> Request<Full<Bytes>> {
    let mut builder = Request::post(url).header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    builder.body(Full::new(body)).expect("valid request")
}

/// Percentile (0..=100) of `values`, in the unit given; NaN when empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

/// Whether an SSE event carries generated text (a non-empty `content` delta). The first event of
/// a stream usually carries only the role; Switchyard holds it until the first real event (its
/// commit point, so a fallback can still happen), so time to first *token* is the fair measure.
fn carries_a_token(event: &[u8]) -> bool {
    const CONTENT: &[u8] = b"\"content\":\"";
    memchr::memmem::find(event, CONTENT)
        .is_some_and(|at| event.get(at + CONTENT.len()).is_some_and(|&b| b != b'"'))
}

/// Open SSE streams: time to the first token and the gaps between the events that carry tokens.
#[cfg(test)]
mod tests {
    #[test]
    fn only_events_with_text_count_as_tokens() {
        assert!(super::carries_a_token(
            br#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#
        ));
        assert!(!super::carries_a_token(
            br#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!super::carries_a_token(b"data: [DONE]"));
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Streams {
    pub streams: usize,
    pub failed: usize,
    pub ttft_p50_ms: f64,
    pub ttft_p99_ms: f64,
    pub gap_p50_ms: f64,
    pub gap_p99_ms: f64,
    pub gap_max_ms: f64,
}

/// Opens `n` streams at once (each on its own connection, as real clients do) and reads them to
/// the end, timing every event. A first round, not counted, warms the connection pools; small
/// counts run ten rounds so their percentiles rest on more than a handful of streams.
pub async fn streams(url: &str, key: Option<&str>, body: Bytes, n: usize) -> Result<Streams> {
    let _ = stream_round(url, key, body.clone(), n).await?;
    let rounds = if n < 10 { 10 } else { 1 };
    let mut ttft = Vec::new();
    let mut gaps = Vec::new();
    let mut failed = 0;
    for _ in 0..rounds {
        let (t, g, f) = stream_round(url, key, body.clone(), n).await?;
        ttft.extend(t);
        gaps.extend(g);
        failed += f;
    }
    Ok(Streams {
        streams: n,
        failed,
        ttft_p50_ms: percentile(&mut ttft, 50.0),
        ttft_p99_ms: percentile(&mut ttft, 99.0),
        gap_p50_ms: percentile(&mut gaps, 50.0),
        gap_p99_ms: percentile(&mut gaps, 99.0),
        gap_max_ms: gaps.iter().copied().fold(f64::NAN, f64::max),
    })
}

/// One round of `n` concurrent streams: times to first token, gaps, failures.
async fn stream_round(
    url: &str,
    key: Option<&str>,
    body: Bytes,
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let client = Arc::new(plain_client());
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, start, body) = (client.clone(), start.clone(), body.clone());
        let (url, key) = (url.to_owned(), key.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let sent = Instant::now();
            let response = client.request(post(&url, key.as_deref(), body)).await?;
            if !response.status().is_success() {
                bail!("status {}", response.status());
            }
            let mut body = response.into_body();
            let mut times = Vec::new();
            let mut pending = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                pending.extend_from_slice(data);
                // An event is complete at a blank line; a write may carry one event or several.
                while let Some(end) = memchr::memmem::find(&pending, b"\n\n") {
                    let event = pending.drain(..end + 2).collect::<Vec<_>>();
                    if carries_a_token(&event) {
                        times.push(sent.elapsed());
                    }
                }
            }
            anyhow::Ok(times)
        }));
    }
    let mut ttft = Vec::new();
    let mut gaps = Vec::new();
    let mut failed = 0;
    for task in tasks {
        match task.await? {
            Ok(times) if !times.is_empty() => {
                ttft.push(times[0].as_secs_f64() * 1000.0);
                gaps.extend(
                    times
                        .windows(2)
                        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0),
                );
            }
            _ => failed += 1,
        }
    }
    Ok((ttft, gaps, failed))
}

/// Sends `total` requests from `concurrency` workers, rotating through `keys` (one per tenant),
/// and returns the latency distribution.
pub async fn rotating(
    url: &str,
    keys: &[String],
    body: Bytes,
    total: usize,
    concurrency: usize,
) -> Result<Latency> {
    let client = Arc::new(plain_client());
    let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, keys, next, body) = (client.clone(), keys.clone(), next.clone(), body.clone());
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let key = &keys[i % keys.len()];
                let sent = Instant::now();
                match client.request(post(&url, Some(key), body.clone())).await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.into_body().collect().await;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Latency {
        requests: all.len() as u64 + errors,
        errors,
        rps: all.len() as f64 / elapsed,
        p50_ms: percentile(&mut all, 50.0),
        p99_ms: percentile(&mut all, 99.0),
        ttfb_p50_ms: f64::NAN,
        ttfb_p99_ms: f64::NAN,
    })
}

/// The first `program` file in `PATH`, then in `extra` directories.
pub fn which(program: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .chain(extra)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

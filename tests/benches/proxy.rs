//! Proxy overhead: the same requests sent directly to a loopback mock upstream and through
//! Switchyard (routed by the real flash-first component), in the same run.
//!
//! `cargo bench -p switchyard-tests --bench proxy` (after `scripts/build-policies.sh`).
//! Reports sequential latency (p50/p99, one keep-alive connection), the added latency and its
//! ratio, CPU time per request spent by the gateway (the process's CPU with the gateway in the
//! path minus without it), and throughput at 32 concurrent connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard_tests::*;
use tokio::net::TcpListener;

const SEQUENTIAL: usize = 4_000;
const BLOCK: usize = 500;
const CONCURRENCY: usize = 32;
const LOAD_SECONDS: u64 = 4;

/// A fixed chat completion (about the size of the shared rig's mock response).
fn response_body() -> Bytes {
    Bytes::from(
        completion_body(
            "deepseek-v4-flash",
            "This is a fixed mock response used to measure proxy overhead only.",
        )
        .to_string(),
    )
}

async fn fast_mock() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = response_body();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        let mut r = Response::new(Full::new(body));
                        r.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/v1")
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn one(client: &HttpClient, url: &str, key: &str, body: &Bytes) {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(body.clone()))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

async fn throughput(client: &HttpClient, url: &str, key: &str, body: &Bytes) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, key, body, done) = (
            client.clone(),
            url.to_owned(),
            key.to_owned(),
            body.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                one(&client, &url, &key, &body).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / LOAD_SECONDS as f64
}

#[tokio::main]
async fn main() {
    let upstream = fast_mock().await;
    let toml = upstream_toml(
        "main",
        &upstream,
        &["deepseek-v4-flash", "deepseek-v4-pro"],
        "",
    ) + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "bench",
            KEY_A,
            "ff",
            &["deepseek-v4-flash", "deepseek-v4-pro"],
            "",
        );
    let gw = start_gateway(&toml).await;
    let direct_url = format!("{upstream}/chat/completions");
    let proxy_url = format!("{}/v1/chat/completions", gw.url);
    let body = Bytes::from(
        serde_json::json!({"model": "deepseek-v4-flash", "messages": [
            {"role": "system", "content": "You are a careful code reviewer."},
            {"role": "user", "content": "Review this function for off-by-one errors: fn f(v: &[u8]) -> u8 { v[v.len()] }"}]})
        .to_string(),
    );
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..500 {
        one(&client, &direct_url, KEY_A, &body).await;
        one(&client, &proxy_url, KEY_A, &body).await;
    }

    let (mut direct, mut proxied) = (
        Vec::with_capacity(SEQUENTIAL),
        Vec::with_capacity(SEQUENTIAL),
    );
    let (mut cpu_direct, mut cpu_proxied) = (0.0, 0.0);
    for _ in 0..SEQUENTIAL / BLOCK {
        let c = cpu_seconds();
        for _ in 0..BLOCK {
            let t = Instant::now();
            one(&client, &direct_url, KEY_A, &body).await;
            direct.push(t.elapsed());
        }
        cpu_direct += cpu_seconds() - c;
        let c = cpu_seconds();
        for _ in 0..BLOCK {
            let t = Instant::now();
            one(&client, &proxy_url, KEY_A, &body).await;
            proxied.push(t.elapsed());
        }
        cpu_proxied += cpu_seconds() - c;
    }
    direct.sort();
    proxied.sort();
    let (d50, d99, p50, p99) = (
        pct(&direct, 0.5),
        pct(&direct, 0.99),
        pct(&proxied, 0.5),
        pct(&proxied, 0.99),
    );
    let gateway_cpu_us = (cpu_proxied - cpu_direct) / SEQUENTIAL as f64 * 1e6;

    let rps_direct = throughput(&client, &direct_url, KEY_A, &body).await;
    let rps_proxied = throughput(&client, &proxy_url, KEY_A, &body).await;

    println!(
        "proxy overhead, small chat request ({} B), {SEQUENTIAL} sequential requests each way, same run",
        body.len()
    );
    println!();
    println!("| path | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    println!("| direct to mock | {d50:.3} | {d99:.3} |");
    println!("| through Switchyard | {p50:.3} | {p99:.3} |");
    println!("| added | {:.3} | {:.3} |", p50 - d50, p99 - d99);
    println!();
    println!(
        "latency ratio (through / direct): p50 {:.2}x, p99 {:.2}x",
        p50 / d50,
        p99 / d99
    );
    println!(
        "gateway CPU per request (process CPU with the gateway in the path minus without): {gateway_cpu_us:.0} µs"
    );
    println!(
        "throughput at {CONCURRENCY} connections, client + mock + gateway in one process on this machine: direct {rps_direct:.0} req/s, through Switchyard {rps_proxied:.0} req/s ({:.2}x)",
        rps_proxied / rps_direct
    );
}

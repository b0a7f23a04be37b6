//! Graceful shutdown of the real binary: readiness turns false, nothing new is accepted, no
//! in-flight request is dropped, and streams that outlast the drain deadline end with an error.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";

fn config(dir: &TempDir, upstream: &str, drain_ms: u64) -> std::path::PathBuf {
    let toml = format!(
        "[server]\nwatch = false\ndrain_timeout_ms = {drain_ms}\nartifact_cache_dir = \"{}\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n",
        dir.path("cache").display(),
        key_hash(ADMIN_TOKEN)
    ) + &upstream_toml("main", upstream, &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml("a", KEY_A, "sr", &[FLASH], "");
    let path = dir.path("config.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drops_no_in_flight_request() {
    let slow = MockUpstream::start(|r| {
        Reply::Delayed(
            Duration::from_millis(1200),
            Box::new(Reply::completion(
                r.body["model"].as_str().unwrap(),
                "late but whole",
            )),
        )
    })
    .await;
    let dir = TempDir::new("shutdown");
    let mut p = Process::serve(
        &[
            "--config",
            config(&dir, &slow.url(), 10_000).to_str().unwrap(),
        ],
        &[],
    );
    let admin = p.admin_addr().expect("admin listener address in the log");
    let url = format!("{}/v1/chat/completions", p.url());
    assert_eq!(
        request("GET", &format!("http://{admin}/readyz"), None, &[], "")
            .await
            .status,
        200
    );

    let mut in_flight = Vec::new();
    for i in 0..8 {
        let url = url.clone();
        in_flight.push(tokio::spawn(async move {
            request(
                "POST",
                &url,
                Some(KEY_A),
                &[],
                user_says("auto", &format!("q{i}")).to_string(),
            )
            .await
        }));
    }
    eventually(
        "all eight to reach the upstream",
        Duration::from_secs(10),
        || async { slow.count() == 8 },
    )
    .await;
    assert_eq!(slow.count(), 8, "all eight are in flight");
    p.signal("TERM");
    // The drain has begun once readiness turns false (the API listener is closed just before).
    let readyz = format!("http://{admin}/readyz");
    eventually(
        "readiness to turn false",
        Duration::from_secs(10),
        || async { request("GET", &readyz, None, &[], "").await.status == 503 },
    )
    .await;

    // Draining: not ready, and new connections are refused.
    let ready = request("GET", &format!("http://{admin}/readyz"), None, &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "the API listener no longer accepts"
    );

    for t in in_flight {
        let r = t.await.unwrap();
        assert_eq!(
            r.status,
            200,
            "an in-flight request was dropped: {}",
            r.text()
        );
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "late but whole"
        );
    }
    assert!(
        p.wait_exit(Duration::from_secs(10)),
        "the process exits once drained"
    );
    assert!(p.logs().contains("all connections closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_drain_deadline_end_with_an_error_event() {
    let endless = MockUpstream::start(|_| {
        let mut steps = vec![SseStep::Data(
            chunk(FLASH, json!({"role": "assistant", "content": "tick"}), None).to_string(),
        )];
        for _ in 0..100 {
            steps.push(SseStep::Pause(Duration::from_millis(100)));
            steps.push(SseStep::Data(
                chunk(FLASH, json!({"content": " tick"}), None).to_string(),
            ));
        }
        Reply::Sse(steps)
    })
    .await;
    let dir = TempDir::new("shutdown-stream");
    let mut p = Process::serve(
        &[
            "--config",
            config(&dir, &endless.url(), 600).to_str().unwrap(),
        ],
        &[],
    );
    let url = format!("{}/v1/chat/completions", p.url());
    let stream = tokio::spawn(async move {
        request("POST", &url, Some(KEY_A), &[], json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "go"}]}).to_string()).await
    });
    // The stream is under way once its upstream call is out (the mock then streams at once).
    eventually(
        "the stream to reach the upstream",
        Duration::from_secs(10),
        || async { endless.count() == 1 },
    )
    .await;
    p.signal("TERM");
    let r = stream.await.unwrap();
    assert_eq!(r.status, 200);
    let frames = sse_data(&r.body);
    assert!(frames.len() > 3, "the stream kept flowing during the drain");
    let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "server_shutting_down");
    assert!(!frames.iter().any(|f| f == "[DONE]"));
    assert!(p.wait_exit(Duration::from_secs(10)));
}

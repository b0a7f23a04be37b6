//! Streams are relayed event by event as the upstream produces them; the commit point is the
//! first substantive event; a stream that breaks after it ends with an SSE error, never a retry.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::json;
use switchyard_tests::*;
use tokio::sync::Notify;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

fn stream_body(text: &str) -> serde_json::Value {
    json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// Two upstreams: `primary` serves Flash, `backup` serves Pro; flash-first falls back Flash → Pro.
async fn two_upstreams(
    primary: MockUpstream,
    backup: MockUpstream,
    upstream_extra: &str,
) -> (MockUpstream, MockUpstream, TestGateway) {
    let toml = upstream_toml("primary", &primary.url(), &[FLASH], upstream_extra)
        + &upstream_toml("backup", &backup.url(), &[PRO], upstream_extra)
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;
    (primary, backup, gw)
}

/// A gateway with one upstream, `main`, serving Flash, and a streamed chat request to it; the
/// response's head, its body still arriving.
async fn stream_through(
    mock: &MockUpstream,
    said: &str,
) -> (TestGateway, hyper::Response<hyper::body::Incoming>) {
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH], "");
    let gw = start_gateway(&toml).await;
    let response = send(
        "POST",
        &format!("{}/v1/chat/completions", gw.url),
        Some(KEY_A),
        &[],
        stream_body(said).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    (gw, response)
}

fn contents(frames: &[String]) -> String {
    frames
        .iter()
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn chunks_reach_the_client_while_the_upstream_is_still_streaming() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let mock = MockUpstream::start(move |_| {
        Reply::Sse(vec![
            SseStep::Data(
                chunk(FLASH, json!({"role": "assistant", "content": ""}), None).to_string(),
            ),
            SseStep::Data(chunk(FLASH, json!({"content": "first"}), None).to_string()),
            SseStep::WaitFor(g.clone()),
            SseStep::Data(chunk(FLASH, json!({"content": " last"}), Some("stop")).to_string()),
            SseStep::Raw("data: [DONE]\n\n".into()),
        ])
    })
    .await;
    let (_gw, response) = stream_through(&mock, "hi").await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-switchyard-model"], FLASH);
    let mut body = response.into_body();
    let mut seen = String::new();
    // The upstream holds "last" back until we release it: if the gateway buffered the stream,
    // "first" would never arrive and this times out.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("first") {
            let frame = body.frame().await.expect("stream open").expect("no error");
            seen.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
        }
    })
    .await
    .expect("the first chunk arrived before the upstream sent the last one");
    assert!(!seen.contains("last"));
    gate.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    seen.push_str(&String::from_utf8_lossy(&rest));
    let frames = sse_data(seen.as_bytes());
    assert_eq!(contents(&frames), "first last");
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn events_the_upstream_sent_together_reach_the_client_together() {
    // Forty events with no pause between them: the mock writes them out in a few writes, as a
    // provider's stream does when its tokens come faster than the network takes them.
    let words: Vec<String> = (0..40).map(|i| format!(" w{i}")).collect();
    let said = words.concat();
    let mock = MockUpstream::start(move |_| {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        Reply::stream(FLASH, &refs)
    })
    .await;
    let (_gw, response) = stream_through(&mock, "go").await;
    // Each write of the gateway's is one chunk of the chunked body the client reads.
    let mut body = response.into_body();
    let (mut chunks, mut bytes) = (0, Vec::new());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the stream is whole").into_data() {
            chunks += 1;
            bytes.extend_from_slice(&data);
        }
    }
    let frames = sse_data(&bytes);
    assert_eq!(contents(&frames), said, "every event, in order");
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    // One chunk per event was 44; gathering what arrived together makes it a handful.
    assert!(
        chunks <= frames.len() / 4,
        "{chunks} chunks for {} events",
        frames.len()
    );
}

#[tokio::test]
async fn a_stream_cut_after_the_first_byte_ends_with_an_error_event_and_no_fallback() {
    let primary = MockUpstream::start(|_| {
        Reply::Sse(vec![
            SseStep::Data(chunk(FLASH, json!({"role": "assistant"}), None).to_string()),
            SseStep::Data(chunk(FLASH, json!({"content": "partial answer"}), None).to_string()),
            SseStep::Pause(Duration::from_millis(50)),
            SseStep::Cut,
        ])
    })
    .await;
    let (primary, backup, gw) = two_upstreams(
        primary,
        MockUpstream::start(|_| Reply::stream(PRO, &["never"])).await,
        "",
    )
    .await;
    let r = chat(&gw, KEY_A, &stream_body("hi")).await;
    assert_eq!(r.status, 200);
    let frames = sse_data(&r.body);
    assert_eq!(
        contents(&frames),
        "partial answer",
        "the content sent once, never repeated"
    );
    let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(
        !frames.iter().any(|f| f == "[DONE]"),
        "a cut stream must not look finished"
    );
    assert_eq!(primary.count(), 1);
    assert_eq!(backup.count(), 0, "no fallback after the commit point");
}

#[tokio::test]
async fn errors_before_the_first_content_fall_back_without_leaking_anything() {
    // The primary sends a role chunk and keep-alives, then an in-band error: nothing substantive.
    let primary = MockUpstream::start(|_| {
        Reply::Sse(vec![
            SseStep::Data(
                chunk(FLASH, json!({"role": "assistant", "content": ""}), None).to_string(),
            ),
            SseStep::Raw(": keep-alive\n\n".into()),
            SseStep::Data(
                json!({"error": {"message": "Overloaded", "type": "overloaded_error"}}).to_string(),
            ),
        ])
    })
    .await;
    let (_p, backup, gw) = two_upstreams(
        primary,
        MockUpstream::start(|_| Reply::stream(PRO, &["from", " backup"])).await,
        "",
    )
    .await;
    let r = chat(&gw, KEY_A, &stream_body("hi")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-switchyard-model"), Some(PRO));
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    let frames = sse_data(&r.body);
    assert_eq!(contents(&frames), "from backup");
    let roles = frames.iter().filter(|f| f.contains("\"role\"")).count();
    assert_eq!(roles, 1, "only the backup's role chunk reaches the client");
    assert!(frames.iter().all(|f| !f.contains("Overloaded")));
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(backup.count(), 1);
}

#[tokio::test]
async fn keep_alives_alone_do_not_count_as_a_first_byte() {
    let primary = MockUpstream::start(|_| {
        let mut steps = Vec::new();
        for _ in 0..50 {
            steps.push(SseStep::Raw(": keep-alive\n\n".into()));
            steps.push(SseStep::Pause(Duration::from_millis(20)));
        }
        Reply::Sse(steps)
    })
    .await;
    let (_p, backup, gw) = two_upstreams(
        primary,
        MockUpstream::start(|_| Reply::stream(PRO, &["ok"])).await,
        "first_byte_timeout_ms = 300",
    )
    .await;
    let r = chat(&gw, KEY_A, &stream_body("hi")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-switchyard-model"),
        Some(PRO),
        "the keep-alive-only stream timed out and fell back"
    );
    assert_eq!(backup.count(), 1);
}

#[tokio::test]
async fn an_idle_stream_is_ended_with_an_error_event_even_with_keep_alives() {
    let primary = MockUpstream::start(|_| {
        let mut steps = vec![SseStep::Data(
            chunk(FLASH, json!({"content": "hello"}), None).to_string(),
        )];
        for _ in 0..40 {
            steps.push(SseStep::Raw(": keep-alive\n\n".into()));
            steps.push(SseStep::Pause(Duration::from_millis(25)));
        }
        Reply::Sse(steps)
    })
    .await;
    let (_p, _b, gw) =
        two_upstreams(primary, MockUpstream::echo().await, "idle_timeout_ms = 300").await;
    let started = std::time::Instant::now();
    let r = chat(&gw, KEY_A, &stream_body("hi")).await;
    let frames = sse_data(&r.body);
    assert_eq!(contents(&frames), "hello");
    let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no stream event")
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "keep-alives did not re-arm the idle timer"
    );
}

#[tokio::test]
async fn usage_chunks_reach_only_clients_that_asked_for_them() {
    let mock = MockUpstream::start(|_| Reply::stream(FLASH, &["a", "b"])).await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH], "");
    let gw = start_gateway(&toml).await;

    let r = chat(&gw, KEY_A, &stream_body("hi")).await;
    let frames = sse_data(&r.body);
    assert!(
        frames.iter().all(|f| !f.contains("\"usage\"")),
        "usage was added for accounting only: {frames:?}"
    );
    assert_eq!(
        mock.requests()[0].body["stream_options"]["include_usage"],
        true,
        "the gateway asked the upstream for usage"
    );

    let mut body = stream_body("hi");
    body["stream_options"] = json!({"include_usage": true});
    let r = chat(&gw, KEY_A, &body).await;
    let frames = sse_data(&r.body);
    assert_eq!(frames.iter().filter(|f| f.contains("\"usage\"")).count(), 1);
}

//! The exact response cache: hits and misses, TTL, tenant separation, streams stored and
//! replayed, partial streams never stored, and Redis shared between gateways.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";

async fn setup(
    upstream: MockUpstream,
    cache_toml: &str,
    policy_config: &str,
) -> (MockUpstream, TestGateway) {
    let toml = cache_toml.to_string()
        + &upstream_toml("main", &upstream.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            &format!("policy_config = {policy_config}"),
        )
        + &tenant_toml(
            "b",
            KEY_B,
            "sr",
            &[FLASH],
            &format!("policy_config = {policy_config}"),
        );
    (upstream, start_gateway(&toml).await)
}

fn streaming(text: &str) -> serde_json::Value {
    json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn a_second_identical_request_is_served_from_the_cache_at_no_cost() {
    let (mock, gw) = setup(MockUpstream::echo().await, "", "{ cache = \"read-write\" }").await;
    let body = user_says("auto", "what is 2+2?");
    let first = chat(&gw, KEY_A, &body).await;
    assert_eq!(first.header("x-switchyard-cache"), Some("miss"));
    assert!(
        first
            .header("x-switchyard-cost-usd")
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    gw.wait_until_cached(KEY_A, &body).await;
    let second = chat(&gw, KEY_A, &body).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-switchyard-cache"), Some("hit"));
    assert_eq!(second.header("x-switchyard-model"), Some(FLASH));
    assert_eq!(second.header("x-switchyard-attempts"), Some("0"));
    assert_eq!(
        second
            .header("x-switchyard-cost-usd")
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        0.0
    );
    assert_eq!(
        second.header("x-switchyard-saved-usd"),
        first.header("x-switchyard-cost-usd"),
        "the saving is what the miss cost"
    );
    assert_eq!(second.json(), first.json());
    assert_eq!(mock.count(), 1);
    // A different request is a miss.
    assert_eq!(
        chat(&gw, KEY_A, &user_says("auto", "what is 3+3?"))
            .await
            .header("x-switchyard-cache"),
        Some("miss")
    );
}

#[tokio::test]
async fn entries_never_cross_tenants() {
    let (mock, gw) = setup(MockUpstream::echo().await, "", "{ cache = \"read-write\" }").await;
    let body = user_says("auto", "secret question");
    chat(&gw, KEY_A, &body).await;
    gw.wait_until_cached(KEY_A, &body).await;
    assert_eq!(
        chat(&gw, KEY_B, &body).await.header("x-switchyard-cache"),
        Some("miss")
    );
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (mock, gw) = setup(
        MockUpstream::echo().await,
        "",
        "{ cache = \"read-write\", cache_ttl_seconds = 1 }",
    )
    .await;
    let body = user_says("auto", "hello");
    chat(&gw, KEY_A, &body).await;
    gw.wait_until_cached(KEY_A, &body).await;
    assert_eq!(
        chat(&gw, KEY_A, &body).await.header("x-switchyard-cache"),
        Some("hit")
    );
    tokio::time::sleep(Duration::from_millis(1200)).await; // past the 1 s TTL
    assert_eq!(
        chat(&gw, KEY_A, &body).await.header("x-switchyard-cache"),
        Some("miss")
    );
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn modes_decide_reads_and_writes() {
    let (mock, gw) = setup(MockUpstream::echo().await, "", "{}").await;
    let body = user_says("auto", "modes");
    let with_mode = |mode: &'static str| [("x-switchyard-cache-mode", mode)];
    // off: neither reads nor writes.
    assert_eq!(
        chat_with(&gw, KEY_A, &with_mode("off"), &body)
            .await
            .header("x-switchyard-cache"),
        Some("bypass")
    );
    // read-only finds nothing and stores nothing.
    assert_eq!(
        chat_with(&gw, KEY_A, &with_mode("read-only"), &body)
            .await
            .header("x-switchyard-cache"),
        Some("miss")
    );
    assert_eq!(
        chat_with(&gw, KEY_A, &with_mode("read-only"), &body)
            .await
            .header("x-switchyard-cache"),
        Some("miss")
    );
    // write-only goes upstream and stores; a later reader hits.
    assert_eq!(
        chat_with(&gw, KEY_A, &with_mode("write-only"), &body)
            .await
            .header("x-switchyard-cache"),
        Some("bypass")
    );
    gw.wait_until_cached(KEY_A, &body).await;
    assert_eq!(
        chat_with(&gw, KEY_A, &with_mode("read-only"), &body)
            .await
            .header("x-switchyard-cache"),
        Some("hit")
    );
    assert_eq!(mock.count(), 4);
}

#[tokio::test]
async fn a_completed_stream_is_stored_and_replayed_to_both_kinds_of_client() {
    let mock =
        MockUpstream::start(|_| Reply::stream(FLASH, &["The", " answer", " is", " 4."])).await;
    let (mock, gw) = setup(mock, "", "{ cache = \"read-write\" }").await;
    let first = chat(&gw, KEY_A, &streaming("2+2?")).await;
    assert_eq!(first.header("x-switchyard-cache"), Some("miss"));
    gw.wait_until_cached(KEY_A, &streaming("2+2?")).await;

    // Streaming client: a well-formed SSE replay with the same text, ending in [DONE].
    let mut body = streaming("2+2?");
    body["stream_options"] = json!({"include_usage": true});
    let replay = chat(&gw, KEY_A, &body).await;
    assert_eq!(replay.header("x-switchyard-cache"), Some("hit"));
    assert_eq!(replay.header("content-type"), Some("text/event-stream"));
    let frames = sse_data(&replay.body);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let text: String = frames
        .iter()
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "The answer is 4.");
    assert!(
        frames.iter().any(|f| f.contains("\"usage\"")),
        "usage replayed to a client that asked for it"
    );

    // Non-streaming client: the same entry as JSON (`stream` is not part of the key).
    let json_hit = chat(&gw, KEY_A, &user_says("auto", "2+2?")).await;
    assert_eq!(json_hit.header("x-switchyard-cache"), Some("hit"));
    let v = json_hit.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "The answer is 4.");
    assert_eq!(v["usage"]["prompt_cache_hit_tokens"], 60);
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn a_json_response_is_replayed_to_a_streaming_client() {
    let (mock, gw) = setup(MockUpstream::echo().await, "", "{ cache = \"read-write\" }").await;
    chat(&gw, KEY_A, &user_says("auto", "json first")).await;
    gw.wait_until_cached(KEY_A, &user_says("auto", "json first"))
        .await;
    let r = chat(&gw, KEY_A, &streaming("json first")).await;
    assert_eq!(r.header("x-switchyard-cache"), Some("hit"));
    let frames = sse_data(&r.body);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    assert!(
        frames
            .iter()
            .all(|f| f == "[DONE]" || serde_json::from_str::<serde_json::Value>(f).is_ok())
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn a_cut_stream_is_never_stored() {
    let mock = MockUpstream::start(|_| {
        Reply::Sse(vec![
            SseStep::Data(
                chunk(
                    FLASH,
                    json!({"role": "assistant", "content": "partial"}),
                    None,
                )
                .to_string(),
            ),
            SseStep::Pause(Duration::from_millis(50)),
            SseStep::Cut,
        ])
    })
    .await;
    let (mock, gw) = setup(mock, "", "{ cache = \"read-write\" }").await;
    let r = chat(&gw, KEY_A, &streaming("cut")).await;
    assert!(r.text().contains("stream_interrupted"));
    // Time for a write to land, were one made: there is no effect to wait for when the point is
    // that nothing is stored.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = chat(&gw, KEY_A, &streaming("cut")).await;
    assert_eq!(again.header("x-switchyard-cache"), Some("miss"));
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn two_gateways_share_one_redis_cache() {
    let redis = RedisServer::start();
    let cache = format!("[cache]\nredis_url = \"{}\"\n", redis.url());
    let (mock_a, gw_a) = setup(
        MockUpstream::echo().await,
        &cache,
        "{ cache = \"read-write\" }",
    )
    .await;
    let (mock_b, gw_b) = setup(
        MockUpstream::echo().await,
        &cache,
        "{ cache = \"read-write\" }",
    )
    .await;
    let body = user_says("auto", "shared across replicas");
    assert_eq!(
        chat(&gw_a, KEY_A, &body).await.header("x-switchyard-cache"),
        Some("miss")
    );
    // The entry is written off the response's path: wait until it is in Redis.
    eventually(
        "the entry to be stored in Redis",
        Duration::from_secs(10),
        || async { !redis.keys("switchyard:cache:*").is_empty() },
    )
    .await;
    let r = chat(&gw_b, KEY_A, &body).await;
    assert_eq!(
        r.header("x-switchyard-cache"),
        Some("hit"),
        "written by one gateway, served by the other"
    );
    assert_eq!((mock_a.count(), mock_b.count()), (1, 0));
    // Another tenant on the other gateway still misses.
    assert_eq!(
        chat(&gw_b, KEY_B, &body).await.header("x-switchyard-cache"),
        Some("miss")
    );
}

#[tokio::test]
async fn an_unavailable_redis_means_bypass_never_failure() {
    let mut redis = RedisServer::start();
    let cache = format!(
        "[cache]\nredis_url = \"{}\"\nredis_timeout_ms = 200\n",
        redis.url()
    );
    let (mock, gw) = setup(
        MockUpstream::echo().await,
        &cache,
        "{ cache = \"read-write\" }",
    )
    .await;
    let body = user_says("auto", "redis goes away");
    assert_eq!(
        chat(&gw, KEY_A, &body).await.header("x-switchyard-cache"),
        Some("miss")
    );
    redis.stop();
    for _ in 0..3 {
        let r = chat(&gw, KEY_A, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-switchyard-cache"), Some("bypass"));
    }
    assert_eq!(mock.count(), 4);
}

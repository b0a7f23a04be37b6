//! Several replicas behind one balancer: two real `switchyard` processes sharing a real
//! `redis-server` enforce one budget and share one cache; Redis going away degrades each to its
//! local state, never to failed requests.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_budget_and_a_cache_through_redis() {
    let mut redis = RedisServer::start();
    let mock = MockUpstream::echo().await;
    let dir = TempDir::new("replicas");
    // $1,000 per 1M tokens: each mock response (120 tokens) costs $0.12.
    let toml = format!(
        "[server]\nwatch = false\nartifact_cache_dir = \"{}\"\n[shared_state]\nredis_url = \"{url}\"\n[cache]\nredis_url = \"{url}\"\n\
         [models.\"{FLASH}\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 1000.0\n",
        dir.path("cache").display(),
        url = redis.url()
    ) + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "daily_budget_usd = 1.0\npolicy_config = { cache = \"read-write\" }",
        )
        + &tenant_toml("b", KEY_B, "sr", &[FLASH], "requests_per_minute = 3");
    let config = dir.path("config.toml");
    std::fs::write(&config, toml).unwrap();
    let a = Process::serve(&["--config", config.to_str().unwrap()], &[]);
    let b = Process::serve(&["--config", config.to_str().unwrap()], &[]);
    let send = |p: &Process, text: String| {
        let url = format!("{}/v1/chat/completions", p.url());
        async move {
            request("POST", &url, Some(KEY_A), &[], json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": text}]}).to_string()).await
        }
    };

    // One budget: alternate replicas with distinct requests until it is spent.
    let mut served = 0;
    for i in 0..20 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let r = send(replica, format!("question {i}")).await;
        match r.status {
            200 => served += 1,
            429 => assert_eq!(r.json()["error"]["code"], "budget_exceeded"),
            s => panic!("status {s}: {}", r.text()),
        }
        // Let the settlement land: it leaves the tenant with no reservation open in Redis.
        eventually(
            "the settlement to land",
            Duration::from_secs(10),
            || async { redis.hlen("switchyard:{a}:reserved") == 0 },
        )
        .await;
    }
    // $1.00 at $0.12 a request: 9 fit (the 9th reserves against $0.96). Two local budgets would
    // have let 18 through.
    assert_eq!(served, 9, "both replicas enforced one budget");
    assert_eq!(mock.count(), 9);

    // One rate limit: 3 requests a minute for tenant b, whichever replica they reach.
    let mut statuses = Vec::new();
    for (i, replica) in [&a, &b, &a, &b].into_iter().enumerate() {
        let url = format!("{}/v1/chat/completions", replica.url());
        statuses.push(
            request(
                "POST",
                &url,
                Some(KEY_B),
                &[],
                user_says("auto", &format!("b{i}")).to_string(),
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429]);

    // One cache: written through one replica, served by the other (once the writes, made off
    // the responses' path, are in: one entry per request served).
    eventually(
        "the cache entries to land",
        Duration::from_secs(10),
        || async { redis.keys("switchyard:cache:*").len() >= served },
    )
    .await;
    let r = send(&b, "question 0".into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-switchyard-cache"),
        Some("hit"),
        "written by replica a, read by replica b"
    );
    assert_eq!(mock.count(), 9 + 3, "the hit reached no upstream");

    // Redis goes away: each replica falls back to its own state, requests keep working.
    redis.stop();
    let r = send(&a, "after redis".into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-cache"), Some("bypass"));
    eventually(
        "the warning to be logged",
        Duration::from_secs(10),
        || async { a.logs().contains("shared state (redis) unavailable") },
    )
    .await;
    assert!(
        a.logs().contains("shared state (redis) unavailable"),
        "a warning was logged"
    );
}

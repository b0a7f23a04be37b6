//! Budgets hold under concurrent bursts (reservations), rate limits answer 429 with Retry-After,
//! and policies see the spend.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

/// Prices of $1,000 per 1M tokens make each mock response (100 prompt + 20 completion tokens)
/// cost $0.12.
const PRICEY: &str = "[models.\"deepseek-v4-flash\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 1000.0\n\
                      [models.\"deepseek-v4-pro\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 1000.0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_burst_cannot_overshoot_the_budget() {
    // A slow upstream, so the whole burst is in flight at once.
    let mock = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?").to_owned();
        Reply::Sse(vec![
            SseStep::Pause(Duration::from_millis(400)),
            SseStep::Data(
                chunk(
                    &model,
                    json!({"role": "assistant", "content": "ok"}),
                    Some("stop"),
                )
                .to_string(),
            ),
            SseStep::Data(json!({"choices": [], "usage": usage_json()}).to_string()),
            SseStep::Raw("data: [DONE]\n\n".into()),
        ])
    })
    .await;
    let toml = PRICEY.to_string()
        + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml("a", KEY_A, "sr", &[FLASH], "daily_budget_usd = 1.0");
    let gw = std::sync::Arc::new(start_gateway(&toml).await);
    // Each request reserves (estimated prompt + max_tokens 110) x $0.001 = about $0.12.
    let body = json!({"model": "auto", "stream": true, "max_tokens": 110, "messages": [{"role": "user", "content": "hi"}]});
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (gw, body) = (gw.clone(), body.clone());
        tasks.push(tokio::spawn(async move { chat(&gw, KEY_A, &body).await }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            429 => {
                assert_eq!(r.json()["error"]["code"], "budget_exceeded");
                let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=86_400).contains(&wait));
                refused += 1;
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    // $1.00 / $0.12 per request: at most 8 can hold a reservation at once. Without reservations
    // all 40 would have gone through ($4.80 against a $1.00 budget).
    assert!(ok <= 8, "{ok} requests were let through a $1 budget");
    assert!(ok >= 7, "the budget was usable ({ok} served)");
    assert_eq!(ok + refused, 40);
    assert_eq!(mock.count(), ok);
    // Settled, the budget is spent: the next request is refused too.
    assert_eq!(chat(&gw, KEY_A, &body).await.status, 429);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml("a", KEY_A, "sr", &[FLASH], "requests_per_minute = 3")
        + &tenant_toml("b", KEY_B, "sr", &[FLASH], "tokens_per_minute = 5000");
    let gw = start_gateway(&toml).await;
    for _ in 0..3 {
        assert_eq!(chat(&gw, KEY_A, &user_says("auto", "hi")).await.status, 200);
    }
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Tokens per minute: a request estimated above the allowance is refused before any upstream call.
    let before = mock.count();
    let big = json!({"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "x".repeat(40_000)}]});
    assert_eq!(chat(&gw, KEY_B, &big).await.status, 429);
    assert_eq!(
        chat(&gw, KEY_B, &user_says("auto", "small")).await.status,
        200
    );
    assert_eq!(mock.count(), before + 1);
}

#[tokio::test]
async fn policies_see_the_spend_and_downgrade_as_the_budget_runs_out() {
    let mock = MockUpstream::echo().await;
    let toml = PRICEY.to_string()
        + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "daily_budget_usd = 1.0");
    let gw = start_gateway(&toml).await;
    let hard = json!({"model": "auto", "max_tokens": 10, "metadata": {"difficulty": "hard"}, "messages": [{"role": "user", "content": "hi"}]});
    let mut models = Vec::new();
    for _ in 0..9 {
        let r = chat(&gw, KEY_A, &hard).await;
        assert_eq!(r.status, 200, "{}", r.text());
        models.push((
            r.header("x-switchyard-model").unwrap().to_owned(),
            r.header("x-switchyard-tags").unwrap().to_owned(),
        ));
    }
    // $0.12 a request against $1.00: Pro while under 90% spent (8 requests, $0.96), then Flash.
    assert!(models[..8].iter().all(|(m, _)| m == PRO), "{models:?}");
    assert_eq!(
        models[8],
        (FLASH.to_owned(), "reason=budget-guard".to_owned()),
        "{models:?}"
    );
}

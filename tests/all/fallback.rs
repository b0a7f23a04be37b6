//! Retryable failures before the first byte move to the next target; client errors do not.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

/// `primary_url` serves Flash, an echo mock serves Pro; flash-first routes Flash → Pro.
async fn gateway_with_primary(primary_url: &str, extra: &str) -> (MockUpstream, TestGateway) {
    let backup = MockUpstream::echo().await;
    let toml = upstream_toml("primary", primary_url, &[FLASH], extra)
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    (backup, start_gateway(&toml).await)
}

async fn assert_falls_back(primary_url: &str, extra: &str) {
    let (backup, gw) = gateway_with_primary(primary_url, extra).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some(PRO));
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    assert_eq!(backup.count(), 1);
    assert_eq!(backup.requests()[0].body["model"], PRO);
}

#[tokio::test]
async fn falls_back_on_a_500() {
    let primary = MockUpstream::start(|_| Reply::error(500, "internal error")).await;
    assert_falls_back(&primary.url(), "").await;
    assert_eq!(primary.count(), 1);
}

#[tokio::test]
async fn falls_back_on_a_429() {
    let primary = MockUpstream::start(|_| Reply::Json {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached"}}).to_string(),
        headers: vec![("retry-after", "1".into())],
    })
    .await;
    assert_falls_back(&primary.url(), "").await;
}

#[tokio::test]
async fn falls_back_on_a_timeout() {
    let primary = MockUpstream::start(|_| Reply::Hang).await;
    let started = std::time::Instant::now();
    assert_falls_back(&primary.url(), "first_byte_timeout_ms = 300").await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn falls_back_on_a_refused_connection() {
    let addr = refused_addr().await;
    assert_falls_back(&format!("http://{addr}/v1"), "").await;
}

#[tokio::test]
async fn falls_back_on_a_body_that_is_not_json() {
    let primary = MockUpstream::start(|_| Reply::Json {
        status: 200,
        body: "<html>gateway error</html>".into(),
        headers: vec![],
    })
    .await;
    assert_falls_back(&primary.url(), "").await;
}

#[tokio::test]
async fn client_errors_are_not_retried_elsewhere() {
    let primary = MockUpstream::start(|_| Reply::error(400, "temperature must be at most 2")).await;
    let (backup, gw) = gateway_with_primary(&primary.url(), "").await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 400);
    let err = r.json();
    assert_eq!(err["error"]["code"], "upstream_rejected");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature must be at most 2")
    );
    assert_eq!(backup.count(), 0);
}

#[tokio::test]
async fn upstream_auth_failures_are_the_operators_problem_not_the_clients() {
    let primary = MockUpstream::start(|_| Reply::error(401, "Authentication Fails")).await;
    let (backup, gw) = gateway_with_primary(&primary.url(), "").await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(
        r.status, 502,
        "a 401 from the provider must not look like the client's key failed"
    );
    assert_eq!(backup.count(), 0);
}

#[tokio::test]
async fn a_context_length_error_moves_to_a_model_with_a_larger_window() {
    let small = MockUpstream::start(|_| {
        Reply::error(400, "This model's maximum context length is 65536 tokens")
    })
    .await;
    let big = MockUpstream::echo().await;
    let toml = upstream_toml("small", &small.url(), &["small-model"], "")
        + &upstream_toml("big", &big.url(), &["big-model"], "")
        + "[models.small-model]\ninput_usd_per_mtok = 0.1\noutput_usd_per_mtok = 0.2\ncontext_window = 65536\n"
        + "[models.big-model]\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\ncontext_window = 1000000\n"
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &["small-model", "big-model"],
            "policy_config = { model = \"small-model\", fallbacks = [\"small-model\", \"big-model\"] }",
        );
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "a long prompt")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some("big-model"));
    assert_eq!(
        small.count(),
        1,
        "the same small model was skipped, not retried"
    );
    assert_eq!(big.count(), 1);
}

#[tokio::test]
async fn every_failed_attempt_is_listed_in_order() {
    let a = MockUpstream::start(|_| Reply::error(503, "Server overloaded")).await;
    let addr = refused_addr().await;
    let toml = upstream_toml("first", &a.url(), &[FLASH], "")
        + &upstream_toml("second", &format!("http://{addr}/v1"), &[PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 502);
    let err = r.json();
    assert_eq!(err["error"]["code"], "upstream_failed");
    let attempts = err["error"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["model"], FLASH);
    assert_eq!(attempts[0]["upstream"], "first");
    assert!(
        attempts[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("HTTP 503: Server overloaded")
    );
    assert_eq!(attempts[1]["model"], PRO);
    assert!(
        attempts[1]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("connection failed")
    );
}

#[tokio::test]
async fn when_every_attempt_times_out_the_status_is_504() {
    let a = MockUpstream::start(|_| Reply::Hang).await;
    let b = MockUpstream::start(|_| Reply::Hang).await;
    let toml = upstream_toml("first", &a.url(), &[FLASH], "first_byte_timeout_ms = 200")
        + &upstream_toml("second", &b.url(), &[PRO], "first_byte_timeout_ms = 200")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    assert_eq!(r.json()["error"]["attempts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_same_target_is_retried_only_after_its_retry_after() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let upstream = MockUpstream::start(move |r| {
        if c.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            Reply::Json {
                status: 429,
                body: json!({"error": {"message": "slow down"}}).to_string(),
                headers: vec![("retry-after", "1".into())],
            }
        } else {
            Reply::completion(r.body["model"].as_str().unwrap(), "ok")
        }
    })
    .await;
    // The route names Flash twice: the second try is the same upstream and model.
    let toml = upstream_toml("main", &upstream.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            "policy_config = { fallbacks = [\"deepseek-v4-flash\"] }",
        );
    let gw = start_gateway(&toml).await;
    let started = std::time::Instant::now();
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured: {:?}",
        started.elapsed()
    );
}

//! Circuit breakers skip failing targets and recover; the retry budget bounds how much an outage
//! can multiply upstream load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

#[tokio::test]
async fn a_failing_target_opens_its_circuit_is_skipped_and_recovers() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let primary = MockUpstream::start(move |r| {
        if h.load(Ordering::Relaxed) {
            Reply::completion(r.body["model"].as_str().unwrap(), "back")
        } else {
            Reply::error(503, "overloaded")
        }
    })
    .await;
    let backup = MockUpstream::echo().await;
    let toml = "[resilience]\nbreaker_failures = 3\nbreaker_open_ms = 400\n".to_string()
        + &upstream_toml("primary", &primary.url(), &[FLASH], "")
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;

    for _ in 0..3 {
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        assert_eq!(r.header("x-switchyard-model"), Some(PRO));
    }
    assert_eq!(primary.count(), 3);
    // Open: the policy sees Flash as unavailable and leads with Pro; nothing reaches the primary.
    for _ in 0..5 {
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-switchyard-model"), Some(PRO));
        assert_eq!(
            r.header("x-switchyard-attempts"),
            Some("1"),
            "the open target is not even tried"
        );
    }
    assert_eq!(primary.count(), 3, "an open circuit sends nothing");

    // After the open period one probe goes through; it succeeds and closes the circuit.
    healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = chat(&gw, KEY_A, &user_says("deepseek-v4-flash", "hi")).await;
    assert_eq!(
        r.header("x-switchyard-model"),
        Some(FLASH),
        "the probe succeeded"
    );
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(
        r.header("x-switchyard-model"),
        Some(FLASH),
        "closed again: Flash leads"
    );
    assert_eq!(primary.count(), 5);
}

#[tokio::test]
async fn the_retry_budget_bounds_amplification_during_an_outage() {
    // Everything fails. Each request's route has three targets; without a budget, 100 requests
    // would make 300 upstream calls.
    let down = MockUpstream::start(|_| Reply::error(500, "down")).await;
    let toml = "[resilience]\nbreaker_failures = 1000000\nretry_budget_ratio = 0.2\nretry_budget_min_per_second = 0.5\n".to_string()
        + &upstream_toml("main", &down.url(), &[FLASH, PRO, "gpt-5.5"], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO, "gpt-5.5"], "");
    let gw = start_gateway(&toml).await;
    let mut exhausted = 0;
    for _ in 0..100 {
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        assert_eq!(r.status, 502);
        let attempts = r.json()["error"]["attempts"].clone();
        if attempts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "not tried: retry budget exhausted")
        {
            exhausted += 1;
        }
    }
    let calls = down.count();
    // 100 first attempts + 20% of 100 + a floor of 0.5/s over the 10 s window.
    assert!(
        calls <= 100 + 20 + 5,
        "{calls} upstream calls for 100 requests"
    );
    assert!(calls >= 100, "every request still got its first attempt");
    assert!(
        exhausted > 50,
        "most requests were refused extra attempts ({exhausted})"
    );
}

#[tokio::test]
async fn a_model_is_as_healthy_as_its_healthiest_upstream() {
    // Flash on two upstreams; the first (in name order) fails and opens its circuit.
    let broken = MockUpstream::start(|_| Reply::error(503, "overloaded")).await;
    let working = MockUpstream::echo().await;
    let pro = MockUpstream::echo().await;
    let toml = "[resilience]\nbreaker_failures = 1\nbreaker_open_ms = 60000\nbreaker_probe_after_ms = 60000\n[routing]\nupstream_choice = \"first\"\n".to_string()
        + &upstream_toml("a-broken", &broken.url(), &[FLASH], "")
        + &upstream_toml("b-working", &working.url(), &[FLASH], "")
        + &upstream_toml("c-pro", &pro.url(), &[PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
    assert_eq!(r.header("x-switchyard-upstream"), Some("b-working"));
    assert_eq!(broken.count(), 1);
    // Flash's first upstream is open, its second healthy: flash-first still leads with Flash (it
    // would lead with Pro if Flash looked unavailable), and the open upstream is not tried.
    for _ in 0..3 {
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        assert_eq!(
            r.header("x-switchyard-model"),
            Some(FLASH),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("x-switchyard-upstream"), Some("b-working"));
    }
    assert_eq!(broken.count(), 1);
    assert_eq!(pro.count(), 0);
}

//! Operating Switchyard: Prometheus metrics on the admin listener.

use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

#[tokio::test]
async fn metrics_count_requests_tokens_cost_attempts_and_failures() {
    let failing = MockUpstream::start(|_| Reply::error(503, "overloaded")).await;
    let backup = MockUpstream::echo().await;
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n",
        key_hash(ADMIN_TOKEN)
    ) + &upstream_toml("primary", &failing.url(), &[FLASH], "")
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("ff", "flash-first")
        + &policy_toml("hostile", "hostile")
        + &tenant_toml(
            "a",
            KEY_A,
            "ff",
            &[FLASH, PRO],
            "policy_config = { cache = \"read-write\" }",
        )
        + &tenant_toml(
            "b",
            KEY_B,
            "hostile",
            &[FLASH],
            "policy_config = { mode = \"panic\" }",
        );
    let gw = start_gateway(&toml).await;
    for _ in 0..2 {
        assert_eq!(chat(&gw, KEY_A, &user_says("auto", "hi")).await.status, 200);
        // The miss's cache write lands off the response's path. Its only observable effect is a
        // look-up, which would count in the metrics this test checks: a wait, not a poll.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(chat(&gw, KEY_B, &user_says("auto", "hi")).await.status, 503);
    assert_eq!(
        chat(&gw, "sk-nobody", &user_says("auto", "hi"))
            .await
            .status,
        401
    );

    let addr = gw.gateway.admin_addr().unwrap();
    assert_eq!(
        request("GET", &format!("http://{addr}/metrics"), None, &[], "")
            .await
            .status,
        401,
        "metrics need the admin token"
    );
    let text = gw.metrics_text().await;
    let get = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in:\n{text}"))
    };

    assert_eq!(
        get(
            "switchyard_requests_total",
            &[
                ("tenant", "a"),
                ("model", PRO),
                ("status", "200"),
                ("cache", "miss")
            ]
        ),
        1.0
    );
    assert_eq!(
        get(
            "switchyard_requests_total",
            &[
                ("tenant", "a"),
                ("model", PRO),
                ("status", "200"),
                ("cache", "hit")
            ]
        ),
        1.0
    );
    assert_eq!(
        get(
            "switchyard_requests_total",
            &[("tenant", "b"), ("status", "503")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "switchyard_requests_total",
            &[("tenant", "-"), ("status", "401")]
        ),
        1.0
    );
    // The miss went Flash (503) then Pro: one failed attempt, one fallback.
    assert_eq!(
        get(
            "switchyard_upstream_attempts_total",
            &[("upstream", "primary"), ("outcome", "status_5xx")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "switchyard_upstream_attempts_total",
            &[("upstream", "backup"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(get("switchyard_fallbacks_total", &[("tenant", "a")]), 1.0);
    // Usage of the one upstream response: 40 misses, 60 cache hits, 20 output tokens.
    assert_eq!(
        get(
            "switchyard_tokens_total",
            &[("tenant", "a"), ("kind", "input")]
        ),
        40.0
    );
    assert_eq!(
        get(
            "switchyard_tokens_total",
            &[("tenant", "a"), ("kind", "cached_input")]
        ),
        60.0
    );
    assert_eq!(
        get(
            "switchyard_tokens_total",
            &[("tenant", "a"), ("kind", "output")]
        ),
        20.0
    );
    let cost = get(
        "switchyard_cost_usd_total",
        &[("tenant", "a"), ("model", PRO)],
    );
    assert!(
        (cost - (40.0 * 0.435 + 60.0 * 0.003625 + 20.0 * 0.87) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    assert!(
        (get("switchyard_saved_usd_total", &[("tenant", "a")]) - cost).abs() < 1e-12,
        "the hit saved what the miss cost"
    );
    assert_eq!(
        get(
            "switchyard_policy_failures_total",
            &[("tenant", "b"), ("kind", "trap")]
        ),
        1.0
    );
    assert!(
        get(
            "switchyard_policy_decision_seconds_count",
            &[("tenant", "a")]
        ) >= 2.0
    );
    assert!(
        get(
            "switchyard_time_to_first_byte_seconds_count",
            &[("tenant", "a")]
        ) >= 2.0
    );
    assert!(get("switchyard_added_latency_seconds_count", &[("tenant", "a")]) >= 2.0);
    assert_eq!(get("switchyard_in_flight_requests", &[]), 0.0);
    assert_eq!(get("switchyard_open_streams", &[]), 0.0);
    assert_eq!(
        get(
            "switchyard_circuit_state",
            &[("upstream", "primary"), ("model", FLASH)]
        ),
        0.0
    );
}

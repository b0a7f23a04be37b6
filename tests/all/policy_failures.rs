//! Broken policies (test components built from source) get their tenant's configured outcome,
//! while other tenants keep being served.

use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

/// Tenant `bad` runs the hostile policy in `mode` with `outcome`; tenant `good` runs flash-first.
async fn setup(mode: &str, outcome: &str) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("hostile", "hostile")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "bad",
            KEY_B,
            "hostile",
            &[FLASH],
            &format!(
                "policy_config = {{ mode = \"{mode}\", model = \"{PRO}\" }}\non_policy_failure = {outcome}"
            ),
        )
        + &tenant_toml("good", KEY_A, "ff", &[FLASH, PRO], "");
    (mock, start_gateway(&toml).await)
}

async fn assert_other_tenant_unaffected(gw: &TestGateway) {
    let r = chat(gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
}

#[tokio::test]
async fn a_trapping_policy_gets_the_reject_outcome() {
    let (mock, gw) = setup("panic", "\"reject\"").await;
    let r = chat(&gw, KEY_B, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "policy_failed");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trap")
    );
    assert!(
        r.header("x-switchyard-policy")
            .is_some_and(|p| p.starts_with("hostile@"))
    );
    assert_eq!(mock.count(), 0, "a failed policy sends nothing upstream");
    assert_other_tenant_unaffected(&gw).await;
}

#[tokio::test]
async fn a_looping_policy_gets_the_default_route() {
    let (mock, gw) = setup("loop", "{ route = [\"deepseek-v4-flash\"] }").await;
    let r = chat(&gw, KEY_B, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
    assert_eq!(r.header("x-switchyard-policy-failure"), Some("deadline"));
    assert_eq!(mock.count(), 1);
    assert_other_tenant_unaffected(&gw).await;
}

#[tokio::test]
async fn a_decision_naming_a_model_outside_the_tenant_list_is_refused() {
    // The hostile policy routes to Pro, which tenant `bad` may not use.
    let (mock, gw) = setup("bad-model", "\"reject\"").await;
    let r = chat(&gw, KEY_B, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 503);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid-decision")
    );
    assert_eq!(mock.count(), 0, "the disallowed model was never called");
    let (mock, gw) = setup("bad-model", "{ route = [\"deepseek-v4-flash\"] }").await;
    let r = chat(&gw, KEY_B, &user_says("auto", "hi")).await;
    assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
    assert_eq!(
        r.header("x-switchyard-policy-failure"),
        Some("invalid-decision")
    );
    assert!(mock.requests().iter().all(|r| r.body["model"] == FLASH));
}

#[tokio::test]
async fn broken_and_healthy_tenants_served_concurrently() {
    let (_mock, gw) = setup("loop", "\"reject\"").await;
    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let key = if i % 2 == 0 { KEY_A } else { KEY_B };
            (key, chat(&gw, key, &user_says("auto", "hi")).await)
        }));
    }
    for t in tasks {
        let (key, r) = t.await.unwrap();
        let expected = if key == KEY_A { 200 } else { 503 };
        assert_eq!(r.status, expected, "tenant with key {key}: {}", r.text());
    }
}

#[tokio::test]
async fn a_policy_that_refuses_its_config_stops_the_gateway_from_starting() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "a",
            KEY_A,
            "ff",
            &[FLASH],
            "policy_config = { cache = \"sometimes\" }",
        );
    let err = try_start_gateway(&toml).await.err().expect("refused");
    assert!(
        err.contains("tenants.a.policy_config") && err.contains("cache"),
        "{err}"
    );
}

//! Python and JavaScript policies serving real requests through the gateway.

use switchyard_tests::*;

const ALL: &[&str] = &["deepseek-v4-flash", "deepseek-v4-pro", "gpt-5.5"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interpreted_policies_route_requests_like_the_rust_one() {
    let mock = MockUpstream::echo().await;
    // Interpreted components start with ~10-20 MB of memory and take milliseconds per decision.
    let limits = "sandbox = { memory_mib = 128, deadline_ms = 250 }";
    let toml = upstream_toml("main", &mock.url(), ALL, "")
        + &policy_toml("py", "flash-first-py")
        + &policy_toml("js", "flash-first-js")
        + &tenant_toml("python", KEY_A, "py", ALL, limits)
        + &tenant_toml("javascript", KEY_B, "js", ALL, limits);
    let gw = start_gateway(&toml).await;
    for key in [KEY_A, KEY_B] {
        let r = chat(&gw, key, &user_says("auto", "Review this diff")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-switchyard-model"), Some("deepseek-v4-flash"));
        assert_eq!(r.header("x-switchyard-tags"), Some("reason=default"));
        let r = chat(
            &gw,
            key,
            &user_says(
                "auto",
                "Please do a multi-file refactor of the billing code",
            ),
        )
        .await;
        assert_eq!(r.header("x-switchyard-model"), Some("deepseek-v4-pro"));
        assert_eq!(r.header("x-switchyard-tags"), Some("reason=hard-task"));
        let policy = r.header("x-switchyard-policy").unwrap();
        assert!(
            policy.starts_with(if key == KEY_A { "py@" } else { "js@" }),
            "{policy}"
        );
    }
}

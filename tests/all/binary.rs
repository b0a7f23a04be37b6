//! The real binary: the README's first command, and upstream keys kept out of every output.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

#[tokio::test]
async fn the_embedded_default_routes_with_the_builtin_policy_offline() {
    let p = Process::serve(&[], &[]);
    let url = format!("{}/v1/chat/completions", p.url());
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "Do a multi-file refactor of the auth module"}]});
    let r = request(
        "POST",
        &url,
        Some("sk-switchyard-demo"),
        &[],
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-switchyard-model"),
        Some("deepseek-v4-pro"),
        "flash-first sends refactors to Pro"
    );
    assert_eq!(r.header("x-switchyard-simulated"), Some("true"));
    assert!(
        r.header("x-switchyard-policy")
            .is_some_and(|p| p.starts_with("flash-first@"))
    );
    let v = r.json();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("[simulated deepseek-v4-pro]")
    );
    assert_eq!(v["system_fingerprint"], "switchyard-simulated");
    assert!(v["usage"]["prompt_cache_miss_tokens"].as_u64().is_some());

    // The same conversation again: the simulated provider's prefix cache reports hits.
    let long = json!({"model": "auto", "messages": [{"role": "system", "content": "x".repeat(4000)}, {"role": "user", "content": "hello"}]});
    let first = request(
        "POST",
        &url,
        Some("sk-switchyard-demo"),
        &[],
        long.to_string(),
    )
    .await
    .json();
    let second = request(
        "POST",
        &url,
        Some("sk-switchyard-demo"),
        &[],
        long.to_string(),
    )
    .await
    .json();
    assert_eq!(first["usage"]["prompt_cache_hit_tokens"], 0);
    assert!(second["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap() >= 960);

    // Streaming works too, and the access log has one line per request.
    let r = request(
        "POST",
        &url,
        Some("sk-switchyard-demo"),
        &[],
        json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let frames = sse_data(&r.body);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let access = || {
        p.logs()
            .lines()
            .filter(|l| l.contains("\"target\":\"switchyard::access\""))
            .count()
    };
    // A request's line is written when it settles, which may be just after its response ends.
    eventually("four access-log lines", Duration::from_secs(10), || async {
        access() >= 4
    })
    .await;
    assert_eq!(access(), 4);
}

#[tokio::test]
async fn upstream_keys_never_appear_in_responses_or_logs() {
    const SECRET: &str = "sk-live-0123456789abcdefSECRET";
    // The provider echoes the key back in its errors, as some do.
    let mock = MockUpstream::start(|r| {
        let auth = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        match r.body["model"].as_str() {
            Some("deepseek-v4-flash") => {
                Reply::error(500, &format!("upstream exploded handling {auth}"))
            }
            _ => Reply::error(401, &format!("Incorrect API key provided: {auth}")),
        }
    })
    .await;
    let dir = TempDir::new("secret-test");
    let config = dir.path("config.toml");
    let toml = upstream_toml(
        "main",
        &mock.url(),
        &["deepseek-v4-flash", "deepseek-v4-pro"],
        "api_key_env = \"SWITCHYARD_TEST_UPSTREAM_KEY\"",
    ) + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "a",
            KEY_A,
            "ff",
            &["deepseek-v4-flash", "deepseek-v4-pro"],
            "",
        );
    std::fs::write(&config, toml).unwrap();
    let p = Process::serve(
        &["--config", config.to_str().unwrap()],
        &[
            ("SWITCHYARD_TEST_UPSTREAM_KEY", SECRET),
            ("SWITCHYARD_LOG", "debug"),
        ],
    );

    let r = request(
        "POST",
        &format!("{}/v1/chat/completions", p.url()),
        Some(KEY_A),
        &[],
        user_says("auto", "my private question about payroll").to_string(),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        format!("Bearer {SECRET}"),
        "the key does reach the upstream"
    );
    assert!(
        r.text().contains("[redacted]"),
        "the echoed key was redacted: {}",
        r.text()
    );
    // Everything the request logs, up to its access-log line, written when it settles.
    eventually(
        "the failures and the access-log line to be logged",
        Duration::from_secs(10),
        || async {
            let logs = p.logs();
            logs.contains("upstream attempt failed")
                && logs.contains("\"target\":\"switchyard::access\"")
        },
    )
    .await;
    let logs = p.logs();
    assert!(
        logs.contains("upstream attempt failed"),
        "the failures were logged"
    );
    assert!(
        !logs.contains("private question"),
        "prompts are not logged unless log_prompts is on"
    );
    for (what, text) in [
        ("response", r.text()),
        ("headers", format!("{:?}", r.headers)),
        ("logs", logs),
    ] {
        assert!(!text.contains(SECRET), "the key leaked into the {what}");
        assert!(
            !text.contains(&SECRET[..12]) && !text.contains(&SECRET[SECRET.len() - 12..]),
            "part of the key leaked into the {what}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_config() {
    let mock = MockUpstream::echo().await;
    let dir = TempDir::new("sighup");
    let config = dir.path("config.toml");
    let write = |models: &[&str]| {
        let toml = format!(
            "[server]\nwatch = false\nartifact_cache_dir = \"{}\"\n",
            dir.path("cache").display()
        ) + &upstream_toml(
            "main",
            &mock.url(),
            &["deepseek-v4-flash", "deepseek-v4-pro"],
            "",
        ) + &policy_toml("ff", "flash-first")
            + &tenant_toml("a", KEY_A, "ff", models, "");
        replace_file(&config, toml.as_bytes());
    };
    write(&["deepseek-v4-flash", "deepseek-v4-pro"]);
    let p = Process::serve(&["--config", config.to_str().unwrap()], &[]);
    let url = format!("{}/v1/chat/completions", p.url());
    let body = user_says("deepseek-v4-pro", "hi").to_string();
    assert_eq!(
        request("POST", &url, Some(KEY_A), &[], body.clone())
            .await
            .status,
        200
    );

    write(&["deepseek-v4-flash"]);
    // Time in which a watcher would have reloaded, were one on: there is no effect to wait for
    // when the point is that nothing happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        request("POST", &url, Some(KEY_A), &[], body.clone())
            .await
            .status,
        200,
        "watching is off: nothing changes yet"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if request("POST", &url, Some(KEY_A), &[], body.clone())
            .await
            .status
            == 403
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload; log:\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p.logs().contains("SIGHUP reload"));
}

//! The real `flash-first` component routes each kind of request to the right model, and the
//! upstream receives the rewritten request.

use serde_json::json;
use switchyard_tests::*;

const ALL: &[&str] = &["deepseek-v4-flash", "deepseek-v4-pro", "gpt-5.5"];

async fn setup(policy_config: &str) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), ALL, "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml(
            "a",
            KEY_A,
            "ff",
            ALL,
            &format!("policy_config = {policy_config}"),
        );
    let gw = start_gateway(&toml).await;
    (mock, gw)
}

#[tokio::test]
async fn each_branch_of_flash_first_picks_its_model() {
    let (mock, gw) = setup("{}").await;
    let big = "x".repeat(900_000); // about 225k tokens
    let tool_calls: Vec<_> = (0..11).map(|i| json!({"id": format!("c{i}"), "type": "function", "function": {"name": "read", "arguments": "{}"}})).collect();
    struct Case(
        &'static str,
        serde_json::Value,
        Vec<(&'static str, &'static str)>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        Case(
            "default",
            user_says("auto", "Review this diff for bugs."),
            vec![],
            "deepseek-v4-flash",
            "default",
        ),
        Case(
            "agent depth",
            json!({"model": "auto", "messages": [
                {"role": "user", "content": "fix the build"},
                {"role": "assistant", "content": null, "tool_calls": tool_calls},
                {"role": "tool", "tool_call_id": "c0", "content": "ok"}]}),
            vec![],
            "deepseek-v4-pro",
            "agent-depth",
        ),
        Case(
            "large input",
            user_says("auto", &big),
            vec![],
            "deepseek-v4-pro",
            "large-input",
        ),
        Case(
            "xhigh reasoning",
            json!({"model": "auto", "reasoning_effort": "xhigh", "messages": [{"role": "user", "content": "prove it"}]}),
            vec![],
            "deepseek-v4-pro",
            "reasoning-effort",
        ),
        Case(
            "hard hint header",
            user_says("auto", "hello"),
            vec![("x-switchyard-difficulty", "hard")],
            "deepseek-v4-pro",
            "pro-hint",
        ),
        Case(
            "hard hint metadata",
            json!({"model": "auto", "metadata": {"tier": "pro"}, "messages": [{"role": "user", "content": "hello"}]}),
            vec![],
            "deepseek-v4-pro",
            "pro-hint",
        ),
        Case(
            "refactor",
            user_says(
                "auto",
                "Please do a multi-file refactor of the billing code",
            ),
            vec![],
            "deepseek-v4-pro",
            "hard-task",
        ),
        Case(
            "images",
            json!({"model": "auto", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}),
            vec![],
            "gpt-5.5",
            "images",
        ),
        Case(
            "pinned model",
            user_says("deepseek-v4-pro", "hi"),
            vec![],
            "deepseek-v4-pro",
            "requested",
        ),
    ];
    for (i, Case(name, body, headers, expected, reason)) in cases.iter().enumerate() {
        let r = chat_with(&gw, KEY_A, headers, body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.header("x-switchyard-model"), Some(*expected), "{name}");
        assert_eq!(r.header("x-switchyard-attempts"), Some("1"), "{name}");
        assert_eq!(
            r.header("x-switchyard-tags"),
            Some(format!("reason={reason}").as_str()),
            "{name}"
        );
        assert!(
            r.header("x-switchyard-policy")
                .is_some_and(|p| p.starts_with("ff@")),
            "{name}"
        );
        // The upstream got the chosen model, and everything else byte-for-byte as the client sent it.
        let sent = &mock.requests()[i].body;
        assert_eq!(sent["model"], *expected, "{name}");
        assert_eq!(sent["messages"], body["messages"], "{name}");
        assert_eq!(r.json()["model"], *expected, "{name}");
    }
}

#[tokio::test]
async fn thresholds_come_from_the_tenant_config() {
    let (_mock, gw) = setup("{ agent_depth_threshold = 1 }").await;
    let body = json!({"model": "auto", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "1"}, {"id": "2"}]}]});
    let r = chat(&gw, KEY_A, &body).await;
    assert_eq!(r.header("x-switchyard-model"), Some("deepseek-v4-pro"));
}

#[tokio::test]
async fn the_upstream_gets_the_configured_key_and_provider_model_name() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml(
        "main",
        &mock.url(),
        &["deepseek-v4-flash=deepseek-flash"],
        "",
    ) + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &["deepseek-v4-flash"], "");
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some("deepseek-v4-flash"));
    let req = &mock.requests()[0];
    assert_eq!(
        req.body["model"], "deepseek-flash",
        "the provider's own name for the model"
    );
    assert!(
        req.headers.get("authorization").is_none(),
        "no key configured, none sent"
    );
    assert_eq!(
        req.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        r.header("x-request-id")
    );
}

#[tokio::test]
async fn models_are_listed_per_tenant() {
    let (_mock, gw) = setup("{}").await;
    let r = request(
        "GET",
        &format!("{}/v1/models", gw.url),
        Some(KEY_A),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["deepseek-v4-flash", "deepseek-v4-pro", "gpt-5.5", "auto"]
    );
    let r = request("GET", &format!("{}/v1/models", gw.url), None, &[], "").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn cost_is_computed_with_cache_hits_at_the_cache_price() {
    let (_mock, gw) = setup("{}").await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    // Mock usage: 40 cache misses at $0.14/M, 60 hits at $0.0028/M, 20 output at $0.28/M.
    let expected = (40.0 * 0.14 + 60.0 * 0.0028 + 20.0 * 0.28) / 1e6;
    let cost: f64 = r.header("x-switchyard-cost-usd").unwrap().parse().unwrap();
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
}

#[tokio::test]
async fn an_old_model_name_is_an_alias_and_prices_follow_the_time_of_day() {
    let mock = MockUpstream::echo().await;
    // A window covering the whole day halves Flash's prices.
    let toml = "[[models.\"deepseek-v4-flash\".price_windows]]\nstart_utc = \"00:00\"\nend_utc = \"00:00\"\n\
                input_usd_per_mtok = 0.07\ncached_input_usd_per_mtok = 0.0014\noutput_usd_per_mtok = 0.14\n"
        .to_string()
        + &upstream_toml("main", &mock.url(), &["deepseek-v4-flash"], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &["deepseek-v4-flash"], "");
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("deepseek-flash", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-model"), Some("deepseek-v4-flash"));
    assert_eq!(
        r.header("x-switchyard-tags"),
        Some("reason=requested"),
        "the alias counts as asking for Flash"
    );
    let expected = (40.0 * 0.07 + 60.0 * 0.0014 + 20.0 * 0.14) / 1e6;
    let cost: f64 = r.header("x-switchyard-cost-usd").unwrap().parse().unwrap();
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
}

/// Cache-hit share of 10 four-turn conversations over two simulated upstreams serving Flash,
/// each with its own prompt cache.
async fn cache_hit_share(choice: &str) -> f64 {
    let toml = format!("[routing]\nupstream_choice = \"{choice}\"\n")
        + "[upstreams.sim-a]\nsimulated = true\nmodels = [\"deepseek-v4-flash\"]\n"
        + "[upstreams.sim-b]\nsimulated = true\nmodels = [\"deepseek-v4-flash\"]\n"
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &["deepseek-v4-flash"], "");
    let gw = start_gateway(&toml).await;
    let (mut hit, mut total) = (0u64, 0u64);
    let mut upstreams = std::collections::BTreeSet::new();
    for conversation in 0..10 {
        // Each conversation has its own long context (a different repository, say).
        let mut messages = vec![
            json!({"role": "system", "content": format!("Project {conversation}: {}", "context ".repeat(400))}),
        ];
        for turn in 0..4 {
            messages.push(json!({"role": "user", "content": format!("question {turn} about project {conversation}")}));
            let r = chat(&gw, KEY_A, &json!({"model": "auto", "messages": messages})).await;
            assert_eq!(r.status, 200, "{}", r.text());
            upstreams.insert(r.header("x-switchyard-upstream").unwrap().to_owned());
            let v = r.json();
            hit += v["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap();
            total += v["usage"]["prompt_tokens"].as_u64().unwrap();
            messages.push(v["choices"][0]["message"].clone());
        }
    }
    assert_eq!(
        upstreams.len(),
        2,
        "both upstreams carried traffic with {choice}"
    );
    hit as f64 / total as f64
}

#[tokio::test]
async fn prefix_affinity_keeps_the_providers_prompt_cache_warm() {
    let affinity = cache_hit_share("prefix-affinity").await;
    let round_robin = cache_hit_share("round-robin").await;
    eprintln!("cache-hit token share: prefix-affinity {affinity:.2}, round-robin {round_robin:.2}");
    assert!(affinity > 0.6, "{affinity}");
    assert!(
        affinity > round_robin + 0.2,
        "affinity {affinity:.2} vs round-robin {round_robin:.2}"
    );
}

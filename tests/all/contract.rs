//! Contract 0.2.0 end to end: a component built against 0.1.0 still loads and decides; a
//! replayed request id replays a policy's seed; outcomes reach `on-outcome` and what it stores
//! feeds later decisions (in one process, and across replicas through Redis); candidates roll out
//! in shadow and as a canary that is rolled back when it fails.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

fn admin_toml() -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n",
        key_hash(ADMIN_TOKEN)
    )
}

/// The 0.1.0 build of flash-first kept as a fixture (see its README).
fn contract_0_1_component() -> std::path::PathBuf {
    repo_root().join("tests/fixtures/contract-0.1.0/flash-first.wasm")
}

#[tokio::test]
async fn a_component_built_against_0_1_0_loads_and_decides_as_before() {
    let mock = MockUpstream::echo().await;
    let toml = admin_toml()
        + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &format!(
            "[policies.old]\npath = \"{}\"\n",
            contract_0_1_component().display()
        )
        + &policy_toml("new", "flash-first")
        + &tenant_toml("a", KEY_A, "old", &[FLASH, PRO], "")
        + &tenant_toml("b", KEY_B, "new", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;

    let report = gw.admin_get("/admin/policies").await;
    let contract = |name: &str| {
        report["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["contract"].clone())
    };
    assert_eq!(contract("old"), Some(Value::from("0.1.0")), "{report}");
    assert_eq!(contract("new"), Some(Value::from("0.2.0")), "{report}");

    // The old component routes exactly as the new build does: Flash by default, Pro past ten
    // tool calls, on every front door (it sees them all as chat).
    for key in [KEY_A, KEY_B] {
        let r = chat(&gw, key, &user_says("auto", "review this diff")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
        assert_eq!(r.header("x-switchyard-tags"), Some("reason=default"));
        let mut messages = vec![serde_json::json!({"role": "user", "content": "fix the build"})];
        for i in 0..12 {
            messages.push(serde_json::json!({"role": "assistant", "content": null,
                "tool_calls": [{"id": format!("c{i}"), "type": "function", "function": {"name": "run", "arguments": "{}"}}]}));
            messages.push(serde_json::json!({"role": "tool", "tool_call_id": format!("c{i}"), "content": "ok"}));
        }
        let deep = serde_json::json!({"model": "auto", "messages": messages});
        let r = chat(&gw, key, &deep).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-switchyard-model"), Some(PRO));
        assert_eq!(r.header("x-switchyard-tags"), Some("reason=agent-depth"));
        let m = request(
            "POST",
            &format!("{}/v1/messages", gw.url),
            Some(key),
            &[],
            serde_json::json!({"model": "auto", "max_tokens": 64,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        )
        .await;
        assert_eq!(m.status, 200, "{}", m.text());
        assert_eq!(m.json()["type"], "message");
    }
}

#[tokio::test]
async fn a_replayed_request_id_replays_the_policys_seed() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("hostile", "hostile")
        + &tenant_toml(
            "a",
            KEY_A,
            "hostile",
            &[FLASH],
            &format!("policy_config = {{ mode = \"seed\", model = \"{FLASH}\" }}"),
        );
    let gw = start_gateway(&toml).await;
    let seed_of = |r: &TestResponse| r.header("x-switchyard-tags").unwrap_or("").to_owned();
    let body = user_says("auto", "hi");
    let first = chat_with(&gw, KEY_A, &[("x-request-id", "replay-me-1")], &body).await;
    let again = chat_with(&gw, KEY_A, &[("x-request-id", "replay-me-1")], &body).await;
    let other = chat_with(&gw, KEY_A, &[("x-request-id", "replay-me-2")], &body).await;
    assert!(seed_of(&first).starts_with("seed="), "{}", seed_of(&first));
    assert_eq!(
        seed_of(&first),
        seed_of(&again),
        "the same id, the same seed"
    );
    assert_ne!(seed_of(&first), seed_of(&other), "another id, another seed");
    let fresh = chat(&gw, KEY_A, &body).await;
    assert_ne!(
        seed_of(&fresh),
        seed_of(&first),
        "without an id each request gets its own"
    );
}

fn learning_tenant(mock: &MockUpstream) -> String {
    upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("hostile", "hostile")
        + &tenant_toml(
            "a",
            KEY_A,
            "hostile",
            &[FLASH],
            &format!("policy_config = {{ mode = \"learn\", model = \"{FLASH}\" }}"),
        )
}

/// The `outcomes=N` tag of a learning decision.
fn outcomes_tag(r: &TestResponse) -> u64 {
    r.header("x-switchyard-tags")
        .and_then(|t| t.strip_prefix("outcomes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no outcomes tag: {:?}", r.header("x-switchyard-tags")))
}

#[tokio::test]
async fn outcomes_reach_the_policy_and_its_state_feeds_later_decisions() {
    let mock = MockUpstream::echo().await;
    let gw = start_gateway(&(admin_toml() + &learning_tenant(&mock))).await;
    let first = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        outcomes_tag(&first),
        0,
        "nothing learned before the first outcome"
    );
    for _ in 0..4 {
        assert_eq!(chat(&gw, KEY_A, &user_says("auto", "hi")).await.status, 200);
    }
    // Outcomes are delivered off the request path: poll until the fifth is counted.
    eventually(
        "five outcomes in the policy's state",
        Duration::from_secs(10),
        || async {
            let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
            outcomes_tag(&r) >= 5
        },
    )
    .await;
    // The worker counts a call once it has returned, after its state write: the state can run
    // a call ahead of the count.
    eventually(
        "five outcome calls counted",
        Duration::from_secs(10),
        || async {
            let learning = gw.admin_get("/admin/learning").await;
            learning["outcome_calls"].as_u64().unwrap() >= 5
        },
    )
    .await;
    let learning = gw.admin_get("/admin/learning").await;
    assert_eq!(learning["outcome_failures"], 0, "{learning}");
    let store = &learning["stores"]["a"];
    assert_eq!(store["keys"], serde_json::json!(["outcomes"]), "{learning}");
    assert!(store["bytes"].as_u64().unwrap() > 0, "{learning}");
}

#[tokio::test]
async fn what_one_replica_learns_the_other_decides_with() {
    let redis = RedisServer::start();
    let mock = MockUpstream::echo().await;
    let shared = format!(
        "[shared_state]\nredis_url = \"{}\"\n\n{}",
        redis.url(),
        learning_tenant(&mock)
    );
    let a = start_gateway(&shared).await;
    let b = start_gateway(&shared).await;
    for _ in 0..3 {
        assert_eq!(chat(&a, KEY_A, &user_says("auto", "hi")).await.status, 200);
    }
    // Replica b never served a request of its own before this; it reads the shared state,
    // refreshed from Redis about every second.
    eventually(
        "replica b sees the outcomes replica a learned",
        Duration::from_secs(15),
        || async { outcomes_tag(&chat(&b, KEY_A, &user_says("auto", "hi")).await) >= 3 },
    )
    .await;
}

#[tokio::test]
async fn a_shadow_candidate_decides_beside_the_live_policy_and_is_only_compared() {
    let mock = MockUpstream::echo().await;
    let toml = admin_toml()
        + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("ff", "flash-first")
        + &policy_toml("static", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "static",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{PRO}\" }}\n\
                 candidate = {{ policy = \"ff\", mode = \"shadow\", policy_config = {{}} }}"
            ),
        );
    let gw = start_gateway(&toml).await;
    for _ in 0..6 {
        let r = chat(&gw, KEY_A, &user_says("auto", "hello")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("x-switchyard-model"),
            Some(PRO),
            "the live policy serves every request"
        );
    }
    eventually(
        "six shadow comparisons",
        Duration::from_secs(10),
        || async {
            let report = gw.admin_get("/admin/rollouts").await;
            report["rollouts"][0]["compared"].as_u64() == Some(6)
        },
    )
    .await;
    let report = gw.admin_get("/admin/rollouts").await;
    let r = &report["rollouts"][0];
    assert_eq!(r["tenant"], "a", "{report}");
    assert_eq!(r["mode"], "shadow", "{report}");
    assert_eq!(
        r["agreed"], 0,
        "flash-first picks Flash where the live policy picks Pro: {report}"
    );
    let (live, candidate) = (
        r["projected_live_cost_usd"].as_f64().unwrap(),
        r["projected_candidate_cost_usd"].as_f64().unwrap(),
    );
    assert!(
        candidate > 0.0 && candidate < live,
        "Flash's projected cost is below Pro's: {report}"
    );
    assert_eq!(r["served"], 0, "a shadow serves nothing: {report}");
    assert!(
        mock.requests().iter().all(|q| q.body["model"] == PRO),
        "only the live decisions reached the upstream"
    );
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_and_the_live_policy_serves_again() {
    // The candidate routes everything to Pro, which fails on this upstream.
    let mock = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        if model == PRO {
            Reply::error(500, "pro is down")
        } else {
            Reply::completion(model, "ok")
        }
    })
    .await;
    let toml = admin_toml()
        + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("ff", "flash-first")
        + &policy_toml("static", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "ff",
            &[FLASH, PRO],
            &format!(
                "candidate = {{ policy = \"static\", mode = \"canary\", share = 0.5, max_error_rate = 0.2, min_requests = 4, \
                 policy_config = {{ model = \"{PRO}\" }} }}"
            ),
        );
    let gw = start_gateway(&toml).await;
    let live_header = gw.policy_header("ff").await;
    let candidate_header = gw.policy_header("static").await;
    let mut by_candidate = 0;
    for i in 0..40 {
        let r = chat_with(
            &gw,
            KEY_A,
            &[("x-request-id", &format!("canary-{i}"))],
            &user_says("auto", "hello"),
        )
        .await;
        if r.header("x-switchyard-policy") == Some(candidate_header.as_str()) {
            by_candidate += 1;
            assert_eq!(r.status, 502, "the candidate's route fails: {}", r.text());
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.header("x-switchyard-policy"), Some(live_header.as_str()));
        }
    }
    assert!(
        (4..20).contains(&by_candidate),
        "the canary decided its share until it was rolled back: {by_candidate} of 40"
    );
    let report = gw.admin_get("/admin/rollouts").await;
    let r = &report["rollouts"][0];
    assert_eq!(r["mode"], "canary", "{report}");
    assert!(r["rolled_back"].is_string(), "{report}");
    // Rolled back: the live policy decides everything again.
    for i in 0..10 {
        let r = chat_with(
            &gw,
            KEY_A,
            &[("x-request-id", &format!("after-{i}"))],
            &user_says("auto", "hello"),
        )
        .await;
        assert_eq!(r.header("x-switchyard-policy"), Some(live_header.as_str()));
        assert_eq!(r.header("x-switchyard-model"), Some(FLASH));
    }
}

/// Two upstreams serving Flash: `slow` holds every response `delay` before answering, `fast`
/// answers at once.
async fn two_flash_upstreams(delay: Duration) -> (MockUpstream, MockUpstream, String) {
    fn answer(r: &Recorded, text: &str) -> Reply {
        let model = r.body["model"].as_str().unwrap_or("?");
        if r.body["stream"] == true {
            Reply::stream(model, &[text])
        } else {
            Reply::completion(model, text)
        }
    }
    let slow =
        MockUpstream::start(move |r| Reply::Delayed(delay, Box::new(answer(r, "slow")))).await;
    let fast = MockUpstream::start(|r| answer(r, "fast")).await;
    let toml = upstream_toml("slow", &slow.url(), &[FLASH], "")
        + &upstream_toml("fast", &fast.url(), &[FLASH], "")
        + &policy_toml("static", "static-route");
    (slow, fast, toml)
}

#[tokio::test]
async fn a_first_token_deadline_moves_a_stalled_request_to_the_next_upstream() {
    let (slow, fast, toml) = two_flash_upstreams(Duration::from_secs(20)).await;
    let toml = toml
        + &tenant_toml(
            "a",
            KEY_A,
            "static",
            &[FLASH],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", upstream = \"slow\", first_token_deadline_ms = 300, fallbacks = [\"{FLASH}\"] }}"
            ),
        );
    let gw = start_gateway(&toml).await;
    let mut body = user_says("auto", "hi");
    body["stream"] = true.into();
    let started = std::time::Instant::now();
    let r = chat(&gw, KEY_A, &body).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-upstream"), Some("fast"));
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    assert!(r.text().contains("fast"), "{}", r.text());
    assert_eq!((slow.count(), fast.count()), (1, 1));
    // Without the deadline it would have waited for the slow upstream's 20 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn keep_conversation_holds_a_conversation_on_its_last_upstream() {
    let (_a, _b, toml) = two_flash_upstreams(Duration::ZERO).await;
    // Round-robin alternates upstreams request by request, unless the decision keeps the
    // conversation where its last turn went.
    let toml = "[routing]\nupstream_choice = \"round-robin\"\n\n".to_owned()
        + &toml
        + &tenant_toml(
            "kept",
            KEY_A,
            "static",
            &[FLASH],
            &format!("policy_config = {{ model = \"{FLASH}\", keep_conversation = true }}"),
        )
        + &tenant_toml(
            "free",
            KEY_B,
            "static",
            &[FLASH],
            &format!("policy_config = {{ model = \"{FLASH}\" }}"),
        );
    let gw = start_gateway(&toml).await;
    let turn = |n: usize| {
        let mut messages = vec![
            serde_json::json!({"role": "system", "content": "You are a coding agent."}),
            serde_json::json!({"role": "user", "content": "fix the failing test"}),
        ];
        for i in 0..n {
            messages.push(serde_json::json!({"role": "assistant", "content": format!("step {i}")}));
            messages.push(serde_json::json!({"role": "user", "content": "go on"}));
        }
        serde_json::json!({"model": "auto", "messages": messages})
    };
    for (key, kept) in [(KEY_A, true), (KEY_B, false)] {
        let mut upstreams = Vec::new();
        for n in 0..6 {
            let r = chat(&gw, key, &turn(n)).await;
            assert_eq!(r.status, 200, "{}", r.text());
            upstreams.push(r.header("x-switchyard-upstream").unwrap().to_owned());
        }
        let distinct = upstreams
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if kept {
            assert_eq!(
                distinct, 1,
                "every turn on the first one's upstream: {upstreams:?}"
            );
        } else {
            assert_eq!(distinct, 2, "round-robin without keeping: {upstreams:?}");
        }
    }
}

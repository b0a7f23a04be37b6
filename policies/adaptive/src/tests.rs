use super::*;
use switchyard_sdk::testing::{
    self, OutcomeBuilder, RECEIVED_AT_UNIX_MS, RequestBuilder, candidate, clear_state, decide,
    outcome, outcome_of, request, signals, validate,
};
use switchyard_sdk::types::Candidate;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";
const FRONTIER: &str = "gpt-5.5";
const T0: u64 = RECEIVED_AT_UNIX_MS;
/// No exploration: the order follows the posterior means.
const EXPLOIT: &str = r#"{"explore": false}"#;

/// Flash on two upstreams, Pro and the frontier model on a third, at the example prices.
fn catalog() -> Vec<Candidate> {
    vec![
        candidate(FLASH)
            .prices(0.14, 0.0028, 0.28)
            .upstream("flash-a")
            .signals(signals("flash-a"))
            .signals(signals("flash-b"))
            .build(),
        candidate(PRO)
            .prices(0.435, 0.003625, 0.87)
            .upstream("pro")
            .build(),
        candidate(FRONTIER)
            .prices(5.0, 0.5, 30.0)
            .context_window(400_000)
            .images()
            .upstream("pro")
            .build(),
    ]
}

fn req(at: u64, seed: u64) -> RequestBuilder {
    request("auto")
        .candidates(catalog())
        .received_at(at)
        .seed(seed)
}

/// `(model, upstream, first-token deadline)` of every target, in order.
fn targets(d: &Decision) -> Vec<(String, String, Option<u32>)> {
    let route = d.as_route().expect("a route");
    std::iter::once(&route.primary)
        .chain(&route.fallbacks)
        .map(|t| {
            (
                t.model.clone(),
                t.upstream.clone().unwrap_or_default(),
                t.first_token_deadline_ms,
            )
        })
        .collect()
}

fn first_upstream(d: &Decision) -> String {
    targets(d)[0].1.clone()
}

/// Flash on `upstream` served it on the first attempt, `ttft` ms after arriving at `at`.
fn served(upstream: &str, ttft: u32, at: u64) -> OutcomeBuilder {
    outcome(FLASH)
        .upstream(upstream)
        .ttft_ms(ttft)
        .tokens(1_000, 0, 100)
        .attempt(FLASH, upstream, "")
        .received_at(at)
}

/// Flash on `bad` failed with `failure`, then `good` served it.
fn failed_over(bad: &str, failure: &str, good: &str, at: u64) -> OutcomeBuilder {
    outcome(FLASH)
        .upstream(good)
        .ttft_ms(1_400)
        .tokens(1_000, 0, 100)
        .fallbacks(1)
        .attempt(FLASH, bad, failure)
        .attempt(FLASH, good, "")
        .received_at(at)
}

fn learn(config: &str, outcomes: impl IntoIterator<Item = OutcomeBuilder>) {
    for o in outcomes {
        testing::on_outcome::<Adaptive>(config, o);
    }
}

/// How many of 200 seeds put `upstream` first.
fn share_first(config: &str, upstream: &str, at: u64) -> usize {
    (0..200)
        .filter(|seed| first_upstream(&decide::<Adaptive>(config, req(at, *seed))) == upstream)
        .count()
}

#[test]
fn every_model_of_flash_firsts_chain_becomes_one_target_per_upstream() {
    clear_state();
    let d = decide::<Adaptive>("", req(T0, 7));
    let t = targets(&d);
    let models: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(models, [FLASH, FLASH, PRO, FRONTIER]);
    let mut flash: Vec<&str> = t[..2].iter().map(|t| t.1.as_str()).collect();
    flash.sort();
    assert_eq!(flash, ["flash-a", "flash-b"]);
    assert_eq!((t[2].1.as_str(), t[3].1.as_str()), ("pro", "pro"));
    // A deadline only where the next target is another upstream of the same model.
    let deadline = t[0].2.expect("a deadline on the first Flash upstream");
    assert!((1_000..=10_000).contains(&deadline), "{deadline}");
    assert_eq!((t[1].2, t[2].2, t[3].2), (None, None, None));
    assert!(d.as_route().unwrap().report_outcome);
    assert_eq!(d.tag_value("reason"), Some("default"));
    // Hard requests start on Pro, as in flash-first.
    let d = decide::<Adaptive>("", req(T0, 7).tool_calls(20));
    let models: Vec<String> = targets(&d).into_iter().map(|t| t.0).collect();
    assert_eq!(models, [PRO, FRONTIER]);
    assert_eq!(d.tag_value("reason"), Some("agent-depth"));
    assert!(
        decide::<Adaptive>("", req(T0, 7).input_tokens(2_000_000)).is_reject(),
        "nothing fits"
    );
}

#[test]
fn with_nothing_learned_both_upstreams_are_explored() {
    clear_state();
    let a = share_first("", "flash-a", T0);
    assert!(
        (40..=160).contains(&a),
        "flash-a first for {a} of 200 seeds"
    );
}

#[test]
fn decisions_are_a_function_of_input_seed_and_state() {
    clear_state();
    learn(
        "",
        (0..5u32).map(|i| served("flash-a", 300 + i * 40, T0 + u64::from(i))),
    );
    learn(
        "",
        (0..5u32).map(|i| served("flash-b", 500, T0 + u64::from(i))),
    );
    for seed in [0, 1, 42, u64::MAX] {
        let once = decide::<Adaptive>("", req(T0 + 10, seed));
        let again = decide::<Adaptive>("", req(T0 + 10, seed));
        assert_eq!(once, again, "seed {seed}");
    }
    let before = testing::state();
    let _ = decide::<Adaptive>("", req(T0 + 10, 3));
    assert_eq!(testing::state(), before, "deciding writes nothing");
    // Different seeds explore differently.
    let orders: std::collections::BTreeSet<String> = (0..50)
        .map(|seed| first_upstream(&decide::<Adaptive>("", req(T0 + 10, seed))))
        .collect();
    assert_eq!(orders.len(), 2, "{orders:?}");
}

#[test]
fn failures_are_charged_to_the_upstream_that_failed_and_move_traffic_off_it() {
    clear_state();
    learn(
        "",
        (0..20).map(|i| {
            failed_over(
                "flash-a",
                "timed out: no first token within 1200 ms (the target's first-token deadline)",
                "flash-b",
                T0 + i * 100,
            )
        }),
    );
    let a = Arm::load(FLASH, "flash-a");
    let b = Arm::load(FLASH, "flash-b");
    assert!(a.f > 19.0 && a.n > 19.0 && a.w == 0.0, "{a:?}");
    // flash-b served them, but after flash-a's deadline: no latency sample for it.
    assert!(b.f == 0.0 && b.n > 19.0 && b.w == 0.0, "{b:?}");
    let now = T0 + 2_000;
    assert_eq!(
        first_upstream(&decide::<Adaptive>(EXPLOIT, req(now, 0))),
        "flash-b"
    );
    let a_first = share_first("", "flash-a", now);
    assert!(a_first < 10, "flash-a first for {a_first} of 200 seeds");
}

#[test]
fn a_slow_upstream_loses_its_traffic_and_deadlines_follow_the_fast_one() {
    clear_state();
    learn(
        "",
        (0..20).flat_map(|i| {
            [
                served("flash-a", 8_000, T0 + i * 100),
                served("flash-b", 300, T0 + i * 100),
            ]
        }),
    );
    let now = T0 + 2_000;
    let d = decide::<Adaptive>(EXPLOIT, req(now, 0));
    let t = targets(&d);
    assert_eq!((t[0].1.as_str(), t[1].1.as_str()), ("flash-b", "flash-a"));
    // Three times flash-b's p95 (about 300 ms: the 1 s floor), plus the prefill allowance.
    let deadline = t[0].2.unwrap();
    assert!((1_000..1_300).contains(&deadline), "{deadline}");
    let a_first = share_first("", "flash-a", now);
    assert!(a_first < 10, "flash-a first for {a_first} of 200 seeds");
    // When exploration tries flash-a first, its deadline is the fast upstream's, not its own.
    let explored = (0..2_000)
        .map(|seed| decide::<Adaptive>("", req(now, seed)))
        .find(|d| first_upstream(d) == "flash-a");
    if let Some(d) = explored {
        let deadline = targets(&d)[0].2.unwrap();
        assert!(deadline < 1_300, "{deadline}");
    }
}

#[test]
fn old_observations_fade() {
    clear_state();
    learn(
        "",
        (0..20).map(|i| failed_over("flash-a", "HTTP 503: overloaded", "flash-b", T0 + i)),
    );
    let fresh = Arm::load(FLASH, "flash-a").at(T0 + 20, 60_000);
    let old = Arm::load(FLASH, "flash-a").at(T0 + 20 + 10 * 60_000, 60_000);
    assert!(fresh.f > 19.0);
    assert!(
        (old.f - fresh.f / 1024.0).abs() < 1e-6,
        "ten half-lives: {old:?}"
    );
    // Ten minutes later flash-a is tried again about as often as flash-b.
    let a = share_first("", "flash-a", T0 + 10 * 60_000);
    assert!(a > 40, "flash-a first for {a} of 200 seeds");
    // A new success is weighed against the faded failures only.
    learn("", [served("flash-a", 300, T0 + 10 * 60_000)]);
    let arm = Arm::load(FLASH, "flash-a");
    assert!(
        arm.n < 2.1 && arm.f < 0.1 && arm.t == (T0 + 10 * 60_000) as f64,
        "{arm:?}"
    );
}

#[test]
fn skips_and_client_errors_are_not_charged() {
    clear_state();
    let o = outcome(FLASH)
        .upstream("flash-b")
        .ttft_ms(350)
        .tokens(2_000, 1_000, 10)
        .attempt(FLASH, "flash-a", "skipped: circuit open")
        .attempt(PRO, "pro", "HTTP 400: bad request")
        .attempt(FLASH, "flash-b", "");
    learn("", [o]);
    assert!(testing::state().contains_key("arm/deepseek-v4-flash/flash-b"));
    assert_eq!(testing::state().len(), 1, "{:?}", testing::state());
    // flash-b served after a sent attempt: counted, but no latency sample.
    let b = Arm::load(FLASH, "flash-b");
    assert_eq!((b.n, b.f, b.w), (1.0, 0.0, 0.0));
    for (failure, charged_) in [
        ("timed out: no first byte within 30000 ms", true),
        ("connection failed: refused", true),
        ("HTTP 429: slow down", true),
        ("HTTP 502: bad gateway", true),
        ("HTTP 404: no such model", false),
        ("context length exceeded: too long", false),
        ("not tried: retry budget exhausted", false),
        ("failed", true),
    ] {
        assert_eq!(charged(failure), charged_, "{failure}");
    }
    // A host that lists no attempts: the upstream that served it.
    clear_state();
    learn("", [outcome(FLASH).upstream("flash-a").ttft_ms(250)]);
    let a = Arm::load(FLASH, "flash-a");
    assert_eq!((a.n, a.w, a.sy), (1.0, 1.0, 250.0));
    // Nothing served and nothing listed: nothing to learn.
    clear_state();
    learn("", [outcome(FLASH).failed(502)]);
    assert!(testing::state().is_empty());
}

#[test]
fn latency_is_fitted_against_uncached_tokens() {
    clear_state();
    // 200 ms plus 100 ms per thousand uncached tokens.
    learn(
        "",
        (0..30u32).map(|i| {
            let input = 1_000 + i * 3_000;
            outcome(FLASH)
                .upstream("flash-a")
                .tokens(input as _, 500, 10)
                .ttft_ms(200 + (input - 500) / 10)
                .attempt(FLASH, "flash-a", "")
        }),
    );
    let (a, b, var) = Arm::load(FLASH, "flash-a").fit(50.0).unwrap();
    assert!(
        (a - 200.0).abs() < 5.0 && (b - 100.0).abs() < 1.0,
        "{a} {b}"
    );
    assert!(var < 10.0, "{var}");
    // With no spread in the inputs, the slope stays near its prior.
    clear_state();
    learn("", (0..30).map(|i| served("flash-b", 400, T0 + i)));
    let (a, b, _) = Arm::load(FLASH, "flash-b").fit(50.0).unwrap();
    assert!(
        (b - 50.0).abs() < 1e-6 && (a - 350.0).abs() < 1e-6,
        "{a} {b}"
    );
}

/// flash-a served warm turns of a conversation, `hit` of each from its prompt cache, in
/// 600 ms plus prefill; flash-b served new conversations in 300 ms.
fn learn_warm_turns(hit: f64) {
    learn(
        "",
        (0..20).flat_map(|i| {
            let cached = (60_000.0 * hit) as u32;
            [
                outcome(FLASH)
                    .upstream("flash-a")
                    .tokens(60_000, cached as _, 100)
                    .ttft_ms(600 + (60_000 - cached) / 20)
                    .attempt(FLASH, "flash-a", "")
                    .tag("warm", "deepseek-v4-flash@flash-a")
                    .received_at(T0 + i * 100),
                served("flash-b", 300, T0 + i * 100),
            ]
        }),
    );
}

#[test]
fn a_warm_conversation_stays_on_the_upstream_that_holds_its_prompt() {
    clear_state();
    learn_warm_turns(0.95);
    let now = T0 + 2_000;
    let turn = |seed| {
        req(now, seed)
            .input_tokens(61_000)
            .last_turn(9, FLASH, "flash-a", 3_000)
    };
    for seed in 0..50 {
        let d = decide::<Adaptive>("", turn(seed));
        assert_eq!(first_upstream(&d), "flash-a", "seed {seed}");
        assert_eq!(d.tag_value("warm"), Some("deepseek-v4-flash@flash-a"));
    }
    let a = Arm::load(FLASH, "flash-a");
    assert!(a.hw > 19.0 && (a.h - 0.95).abs() < 1e-3, "{a:?}");
    // The deadline allows for a warm turn's new tokens (the expected 3K and 8K more).
    let t = targets(&decide::<Adaptive>("", turn(0)));
    assert!(t[0].2.unwrap() > 1_500, "{t:?}");
    // Once the conversation is cold, the cache is not counted on: the faster upstream.
    let d = decide::<Adaptive>(
        EXPLOIT,
        req(now, 0)
            .input_tokens(61_000)
            .last_turn(9, FLASH, "flash-a", 3_600_000),
    );
    assert_eq!(first_upstream(&d), "flash-b");
    assert_eq!(d.tag_value("warm"), None);
}

#[test]
fn an_upstream_whose_cache_never_hits_holds_no_conversation() {
    clear_state();
    learn_warm_turns(0.0);
    let a = Arm::load(FLASH, "flash-a");
    assert!(a.hw > 19.0 && a.h == 0.0, "{a:?}");
    let d = decide::<Adaptive>(
        EXPLOIT,
        req(T0 + 2_000, 0)
            .input_tokens(61_000)
            .last_turn(9, FLASH, "flash-a", 3_000),
    );
    assert_eq!(first_upstream(&d), "flash-b");
}

#[test]
fn warm_turns_teach_the_cache_hit_share() {
    clear_state();
    let d = decide::<Adaptive>("", req(T0, 1).last_turn(2, FLASH, "flash-a", 1_000));
    let o = outcome_of(&d)
        .upstream("flash-a")
        .tokens(10_000, 9_000, 50)
        .attempt(FLASH, "flash-a", "");
    learn("", [o]);
    let a = Arm::load(FLASH, "flash-a");
    assert_eq!((a.hw, a.h), (1.0, 0.9));
    let b = Belief::of(&Learn::default(), &a, &signals_of("flash-a"));
    assert!((b.warm_hit - 0.9).abs() < 1e-9);
}

fn signals_of(upstream: &str) -> UpstreamSignals {
    candidate(FLASH)
        .signals(signals(upstream))
        .build()
        .upstreams[0]
        .clone()
}

#[test]
fn the_hosts_live_signals_and_circuits_count() {
    clear_state();
    let with = |a: switchyard_sdk::testing::SignalsBuilder,
                b: switchyard_sdk::testing::SignalsBuilder| {
        let mut c = catalog();
        c[0] = candidate(FLASH)
            .prices(0.14, 0.0028, 0.28)
            .signals(a)
            .signals(b)
            .build();
        request("auto").candidates(c).received_at(T0)
    };
    // The host saw flash-a fail half its attempts in the last minute.
    let d = decide::<Adaptive>(
        EXPLOIT,
        with(
            signals("flash-a").ttft_ms(300, 400).error_rate(0.5),
            signals("flash-b").ttft_ms(300, 400).error_rate(0.0),
        ),
    );
    assert_eq!(first_upstream(&d), "flash-b");
    // Its p50 is slow.
    let d = decide::<Adaptive>(
        EXPLOIT,
        with(
            signals("flash-a").ttft_ms(300, 400),
            signals("flash-b").ttft_ms(5_000, 9_000),
        ),
    );
    assert_eq!(first_upstream(&d), "flash-a");
    // An open circuit goes last whatever was learned; a half-open one counts as failing.
    learn("", (0..10).map(|i| served("flash-a", 200, T0 + i)));
    for health in [Health::Unavailable, Health::Degraded] {
        let d = decide::<Adaptive>(
            EXPLOIT,
            with(signals("flash-a").health(health), signals("flash-b")),
        );
        assert_eq!(first_upstream(&d), "flash-b", "{health:?}");
    }
    // No rate-limit headroom left.
    let d = decide::<Adaptive>(
        EXPLOIT,
        with(signals("flash-a").remaining(0, 0), signals("flash-b")),
    );
    assert_eq!(first_upstream(&d), "flash-b");
}

#[test]
fn at_most_max_targets_with_every_model_kept() {
    clear_state();
    let d = decide::<Adaptive>(r#"{"max_targets": 3}"#, req(T0, 0));
    let models: Vec<String> = targets(&d).into_iter().map(|t| t.0).collect();
    assert_eq!(models, [FLASH, PRO, FRONTIER]);
    // One Flash upstream left: no deadline on it, nothing of the same model follows.
    assert_eq!(targets(&d)[0].2, None);
    let d = decide::<Adaptive>(r#"{"max_targets": 1}"#, req(T0, 0));
    assert_eq!(targets(&d).len(), 1);
    // A candidate listing no upstreams becomes one target the host places.
    let mut c = catalog();
    c[1].upstreams.clear();
    let d = decide::<Adaptive>("", request("auto").candidates(c).tool_calls(20));
    assert_eq!(targets(&d)[0], (PRO.to_owned(), String::new(), None));
}

#[test]
fn state_stays_compact() {
    clear_state();
    learn(
        "",
        (0..500).map(|i| failed_over("flash-a", "failed", "flash-b", T0 + i * 1_000)),
    );
    let state = testing::state();
    assert_eq!(state.len(), 2);
    for (key, value) in &state {
        assert!(value.len() < 300, "{key}: {} bytes", value.len());
    }
    // The binary form, 88 bytes per arm.
    assert!(state.values().all(|v| v.len() == 88));
    let arm = Arm::load(FLASH, "flash-b");
    assert!(arm.n > 10.0, "{arm:?}");
    // The JSON array an earlier build wrote is still read.
    let json = serde_json::to_vec(&arm.fields()).unwrap();
    testing::set_state("arm/deepseek-v4-flash/flash-a", &json);
    assert_eq!(Arm::load(FLASH, "flash-a"), arm);
    // An entry another version wrote, or garbage, is read as nothing learned.
    testing::set_state("arm/deepseek-v4-flash/flash-a", b"{\"v\": 2}");
    assert_eq!(Arm::load(FLASH, "flash-a"), Arm::default());
    testing::set_state("arm/deepseek-v4-flash/flash-a", [0xff; 88]);
    assert_eq!(Arm::load(FLASH, "flash-a"), Arm::default(), "NaNs");
    let _ = decide::<Adaptive>("", req(T0, 0));
}

#[test]
fn config_is_flash_firsts_plus_its_own() {
    assert_eq!(validate::<Adaptive>(""), Ok(()));
    assert_eq!(
        validate::<Adaptive>(
            r#"{"half_life_ms": 120000, "min_deadline_ms": 500, "agent_depth_threshold": 4}"#
        ),
        Ok(())
    );
    for (config, needle) in [
        (r#"{"half_life_ms": 10}"#, "half_life_ms"),
        (r#"{"deadline_factor": 0.5}"#, "deadline_factor"),
        (
            r#"{"min_deadline_ms": 5000, "max_deadline_ms": 1000}"#,
            "min_deadline_ms",
        ),
        (r#"{"usd_per_second": 0}"#, "usd_per_second"),
        (r#"{"max_targets": 0}"#, "max_targets"),
        (r#"{"prefill_ms_per_1k_tokens": -1}"#, "prefill"),
        (r#"{"budget_guard": 3}"#, "budget_guard"),
        (r#"{"explor": true}"#, "unknown field `explor`"),
    ] {
        let verdict = validate::<Adaptive>(config);
        assert!(
            verdict.as_ref().is_err_and(|e| e.contains(needle)),
            "{config}: {verdict:?}"
        );
    }
    let fields = serde_json::to_value(Learn::default()).unwrap();
    let mut names: Vec<&str> = fields
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    let mut expected = Learn::FIELDS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
}

//! The sandbox against real components built from source by `scripts/build-policies.sh`:
//! contract checks at load time, every failure kind, and isolation between decisions.

mod common;

use std::time::{Duration, Instant};

use common::{component, ctx, engine, summary};
use switchyard_policy::types::Decision;
use switchyard_policy::{CompiledPolicy, EngineSettings, FailureKind, LoadError, PolicyEngine};

fn hostile(engine: &PolicyEngine) -> CompiledPolicy {
    engine
        .compile("hostile", &component("hostile"))
        .expect("hostile compiles")
}

fn fail_kind(policy: &CompiledPolicy, config: &str) -> FailureKind {
    let config = if config.starts_with('{') {
        config.to_owned()
    } else {
        format!(r#"{{"mode":"{config}"}}"#)
    };
    let mut ctx = ctx("t");
    ctx.limits.deadline = Duration::from_millis(200);
    match policy.decide(&ctx, &summary("t", &config)) {
        Ok(d) => panic!("{config} unexpectedly decided {:?}", d.value),
        Err(f) => f.kind,
    }
}

#[test]
fn flash_first_routes_and_validates_config() {
    let engine = engine();
    let policy = engine
        .compile("flash-first", &component("flash-first"))
        .expect("compiles");
    assert_eq!(
        policy.imports(),
        [
            "switchyard:policy/log@0.2.0",
            "switchyard:policy/types@0.2.0"
        ],
        "imports only the contract"
    );
    let d = policy
        .decide(&ctx("t"), &summary("t", ""))
        .expect("decides")
        .value;
    let Decision::Route(route) = d else {
        panic!("expected a route")
    };
    assert_eq!(route.primary.model, "deepseek-v4-flash");
    assert_eq!(
        route
            .fallbacks
            .iter()
            .map(|t| t.model.as_str())
            .collect::<Vec<_>>(),
        ["deepseek-v4-pro", "gpt-5.5"]
    );
    assert_eq!(
        policy.validate_config(&ctx("t"), "{}").unwrap().value,
        Ok(())
    );
    let refused = policy
        .validate_config(&ctx("t"), r#"{"cache":"sometimes"}"#)
        .unwrap()
        .value;
    assert!(refused.unwrap_err().contains("cache"));
}

#[test]
fn files_that_are_not_policy_components_are_refused_with_a_reason() {
    let engine = engine();
    let good = component("flash-first");
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("text", b"definitely not wasm".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
    ];
    for (what, bytes) in cases {
        let err = engine.compile("x", &bytes).expect_err(what);
        assert!(matches!(err, LoadError::NotAComponent(_)), "{what}: {err}");
    }
    // A valid component of another world: no `decide` export.
    let other = wat_component();
    let err = engine.compile("x", &other).expect_err("wrong world");
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err}");
}

/// The smallest valid component: it exports nothing, so it cannot be a policy.
fn wat_component() -> Vec<u8> {
    // `(component)` in the binary format: magic, component version 0x0d, layer 1.
    b"\0asm\x0d\0\x01\0".to_vec()
}

#[test]
fn every_failure_kind_is_classified() {
    let engine = engine();
    let policy = hostile(&engine);
    assert_eq!(fail_kind(&policy, "panic"), FailureKind::Trap);
    assert_eq!(fail_kind(&policy, "loop"), FailureKind::Deadline);
    assert_eq!(fail_kind(&policy, "memory-bomb"), FailureKind::OutOfMemory);
    assert_eq!(fail_kind(&policy, "recursion"), FailureKind::StackOverflow);
    assert_eq!(fail_kind(&policy, "log-spam"), FailureKind::HostCallLimit);
    // A million fallbacks do not fit in 2 MiB; five thousand do, but exceed the decision size cap.
    assert_eq!(
        fail_kind(&policy, "many-fallbacks"),
        FailureKind::OutOfMemory
    );
    assert_eq!(
        fail_kind(&policy, r#"{"mode":"many-fallbacks","count":5000}"#),
        FailureKind::OversizedDecision
    );
    // A 100 MB string cannot even be built under the 2 MiB memory cap.
    assert_eq!(fail_kind(&policy, "huge-string"), FailureKind::OutOfMemory);
}

#[test]
fn the_deadline_stops_a_loop_within_a_few_ticks() {
    let engine = engine();
    let policy = hostile(&engine);
    let mut ctx = ctx("t");
    ctx.limits.deadline = Duration::from_millis(20);
    let started = Instant::now();
    let err = policy
        .decide(&ctx, &summary("t", r#"{"mode":"loop"}"#))
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, FailureKind::Deadline);
    assert_eq!(
        err.detail, "used its CPU budget of 20ms",
        "says which limit stopped it"
    );
    assert!(
        took >= Duration::from_millis(20),
        "stopped before its deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(500),
        "deadline not enforced promptly: {took:?}"
    );
}

#[test]
fn a_slow_policy_within_budget_succeeds() {
    let engine = engine();
    let policy = hostile(&engine);
    let d = policy
        .decide(&ctx("t"), &summary("t", r#"{"mode":"slow","spin":100000}"#))
        .expect("within budget");
    assert!(matches!(d.value, Decision::Route(_)));
}

#[test]
fn no_memory_survives_from_one_decision_to_the_next() {
    let engine = engine();
    let policy = hostile(&engine);
    for tenant in ["alice", "bob", "alice", "carol"] {
        let d = policy
            .decide(&ctx(tenant), &summary(tenant, r#"{"mode":"snoop"}"#))
            .expect("decides")
            .value;
        let Decision::Route(route) = d else {
            panic!("expected a route")
        };
        let leak = route
            .tags
            .iter()
            .find(|p| p.key == "leak")
            .map(|p| p.value.as_str());
        assert_eq!(
            leak,
            Some("no"),
            "{tenant} saw memory written by an earlier decision"
        );
    }
}

#[test]
fn log_lines_are_captured_and_capped_in_length() {
    let engine = engine();
    let policy = engine
        .compile("flash-first", &component("flash-first"))
        .unwrap();
    let mut s = summary("t", "");
    s.estimated_input_tokens = 5_000_000; // nothing fits: the policy logs a warning and rejects
    let out = policy.decide(&ctx("t"), &s).unwrap();
    assert!(matches!(out.value, Decision::Reject(_)));
    assert_eq!(out.logs.len(), 1);
}

#[test]
fn compiled_artifacts_are_reused_and_tampered_ones_are_not() {
    use switchyard_policy::ArtifactCache;
    let dir = std::env::temp_dir().join(format!("switchyard-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = component("flash-first");
    let settings = EngineSettings {
        concurrent_instances: 4,
        ..EngineSettings::default()
    };

    let cold = PolicyEngine::with_cache(settings.clone(), Some(ArtifactCache::open(&dir).unwrap()))
        .unwrap();
    let first = cold.compile("flash-first", &bytes).unwrap();
    assert!(!first.from_cache());
    drop(cold);

    // A restart: a new engine with the same settings loads the artifact instead of compiling.
    let warm = PolicyEngine::with_cache(settings.clone(), Some(ArtifactCache::open(&dir).unwrap()))
        .unwrap();
    let started = Instant::now();
    let second = warm.compile("flash-first", &bytes).unwrap();
    let load_time = started.elapsed();
    assert!(second.from_cache());
    assert_eq!(second.hash(), first.hash());
    assert!(matches!(
        second.decide(&ctx("t"), &summary("t", "")).unwrap().value,
        Decision::Route(_)
    ));
    eprintln!("warm load took {load_time:?}");

    // Tampering with the artifact (same length, one byte flipped) makes it ignored: recompiled.
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    let mut artifact = std::fs::read(&entry).unwrap();
    let last = artifact.len() - 1;
    artifact[last] ^= 0xff;
    std::fs::write(&entry, &artifact).unwrap();
    let third = warm.compile("flash-first", &bytes).unwrap();
    assert!(
        !third.from_cache(),
        "a tampered artifact must not be loaded"
    );
    // The recompile rewrote a good entry.
    let fourth = warm.compile("flash-first", &bytes).unwrap();
    assert!(fourth.from_cache());

    // An artifact moved under another component's name is refused too: the MAC covers the name.
    let other_bytes = component("static-route");
    let other_hash = switchyard_policy::PolicyHash::of(&other_bytes).to_string();
    let file_name = entry.file_name().unwrap().to_str().unwrap().to_owned();
    let (hash, rest) = file_name.split_once('-').unwrap();
    assert_eq!(hash, first.hash().to_string());
    std::fs::copy(&entry, dir.join(format!("{other_hash}-{rest}"))).unwrap();
    let substituted = warm.compile("static-route", &other_bytes).unwrap();
    assert!(
        !substituted.from_cache(),
        "an artifact filed under another hash must not be loaded"
    );
    assert_eq!(substituted.hash().to_string(), other_hash);
    let _ = std::fs::remove_dir_all(&dir);
}

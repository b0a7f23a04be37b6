//! Instances made ahead of a decision (`CompiledPolicy::prepare`): each serves one decision, as
//! fresh as one made in the decision, under that decision's own limits, deadline and context.

mod common;

use std::time::Duration;

use common::{component, ctx, engine, summary};
use switchyard_policy::types::Decision;
use switchyard_policy::{CompiledPolicy, FailureKind, PolicyEngine};

fn compile(engine: &PolicyEngine, name: &str) -> CompiledPolicy {
    engine.compile(name, &component(name)).expect("compiles")
}

fn tag(decision: &Decision, key: &str) -> Option<String> {
    let Decision::Route(route) = decision else {
        panic!("expected a route, got {decision:?}")
    };
    route
        .tags
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.clone())
}

#[test]
fn one_instance_waits_and_serves_one_decision_with_that_decisions_context() {
    let engine = engine();
    let policy = compile(&engine, "flash-first");
    let quiet = switchyard_policy::CallContext {
        capture_logs: false,
        ..ctx("someone-else")
    };
    assert!(policy.prepare(&quiet).made, "made one");
    assert!(!policy.prepare(&quiet).made, "one already waits");

    // Nothing fits: the policy logs a warning and rejects. The call captures its log lines
    // although the instance was made without capturing.
    let mut s = summary("t", "");
    s.estimated_input_tokens = 5_000_000;
    let out = policy.decide(&ctx("t"), &s).expect("decides");
    assert!(matches!(out.value, Decision::Reject(_)));
    assert_eq!(out.logs.len(), 1, "the decision's log line was captured");
    assert_eq!(policy.decisions_on_prepared_instances(), 1, "it ran on it");
    drop(out);

    assert!(
        policy.prepare(&quiet).made,
        "the decision used the waiting instance, so another is made"
    );
}

#[test]
fn an_instance_made_under_looser_limits_does_not_serve_a_tighter_call() {
    let engine = engine();
    let policy = compile(&engine, "flash-first");
    assert!(policy.prepare(&ctx("t")).made);
    // The reference policy starts with 1.3 MiB of linear memory: under a 1 MiB cap it cannot
    // even be instantiated, which the waiting instance (made under 2 MiB) would have hidden.
    let mut tight = ctx("t");
    tight.limits.memory_bytes = 1 << 20;
    let err = policy
        .decide(&tight, &summary("t", ""))
        .expect_err("instantiated under the call's own memory cap");
    assert!(
        matches!(
            err.kind,
            FailureKind::OutOfMemory | FailureKind::Instantiation
        ),
        "{err:?}"
    );
    assert_eq!(policy.decisions_on_prepared_instances(), 0);
    // The waiting instance stays for a call it fits.
    policy
        .decide(&ctx("t"), &summary("t", ""))
        .expect("decides");
    assert_eq!(policy.decisions_on_prepared_instances(), 1);
}

#[test]
fn a_waiting_instance_holds_nothing_of_earlier_decisions() {
    let engine = engine();
    let policy = compile(&engine, "hostile");
    for tenant in ["alice", "bob", "alice", "carol"] {
        let out = policy
            .decide(&ctx(tenant), &summary(tenant, r#"{"mode":"snoop"}"#))
            .expect("decides");
        assert_eq!(
            tag(&out.value, "leak").as_deref(),
            Some("no"),
            "{tenant} saw memory written by an earlier decision"
        );
        // As the gateway does: tear down, then make the next instance.
        out.instance.tear_down();
        assert!(policy.prepare(&ctx(tenant)).made);
    }
    assert_eq!(
        policy.decisions_on_prepared_instances(),
        3,
        "every decision after the first ran on an instance made ahead"
    );
}

#[test]
fn a_waiting_instance_gets_its_deadline_from_the_call_not_from_when_it_was_made() {
    let engine = engine();
    let policy = compile(&engine, "hostile");
    // Made, then left waiting past the wall-clock cap (200 ms at the default 5 ms budget) that
    // instantiation ran under.
    assert!(policy.prepare(&ctx("t")).made);
    std::thread::sleep(Duration::from_millis(250));
    let out = policy
        .decide(&ctx("t"), &summary("t", r#"{"mode":"slow","spin":100000}"#))
        .expect("a slow call within budget succeeds on a long-waiting instance");
    assert!(matches!(out.value, Decision::Route(_)));
    drop(out);

    assert!(policy.prepare(&ctx("t")).made);
    std::thread::sleep(Duration::from_millis(250));
    let err = policy
        .decide(&ctx("t"), &summary("t", r#"{"mode":"loop"}"#))
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Deadline);
    assert_eq!(err.detail, "used its CPU budget of 5ms");
    assert_eq!(
        policy.decisions_on_prepared_instances(),
        2,
        "both ran on them"
    );
}

#[test]
fn waiting_instances_are_bounded_over_all_policies() {
    // 16 pool slots: a quarter may hold waiting instances.
    let engine = engine();
    let policies: Vec<_> = (0..5).map(|_| compile(&engine, "flash-first")).collect();
    let made: Vec<bool> = policies.iter().map(|p| p.prepare(&ctx("t")).made).collect();
    assert_eq!(made, [true, true, true, true, false]);
    // A decision takes its policy's instance and gives the place back.
    drop(
        policies[0]
            .decide(&ctx("t"), &summary("t", ""))
            .expect("decides"),
    );
    assert!(policies[4].prepare(&ctx("t")).made);
    // Dropping a policy with a waiting instance (a reload) gives its place back too.
    let another = compile(&engine, "flash-first");
    assert!(!another.prepare(&ctx("t")).made, "all places held");
    let mut policies = policies;
    drop(policies.remove(1));
    assert!(another.prepare(&ctx("t")).made);
}

//! Warm instances (`InstanceReuse::Warm`): one per tenant, reused by that tenant's decisions
//! only, replaced after any failure or under new limits, and never shared with another tenant or
//! another version of the policy.

mod common;

use common::{component, ctx, engine, summary};
use switchyard_policy::types::{Decision, Pair};
use switchyard_policy::{CallContext, CompiledPolicy, FailureKind, InstanceReuse, PolicyEngine};

const COUNTING: &str = r#"{"count_calls": true}"#;

fn compile(engine: &PolicyEngine) -> CompiledPolicy {
    engine
        .compile("static-route", &component("static-route"))
        .expect("compiles")
}

fn warm(tenant: &str) -> CallContext {
    let mut ctx = ctx(tenant);
    ctx.limits.instance = InstanceReuse::Warm;
    ctx
}

/// The `calls` tag: how many decisions the instance that made this one has made. One decision
/// at a time, a warm call's instance is kept and a fresh one's is not.
fn calls(policy: &CompiledPolicy, ctx: &CallContext) -> u32 {
    let (calls, kept) = decide(policy, ctx);
    assert_eq!(kept, ctx.limits.instance == InstanceReuse::Warm);
    calls
}

/// The `calls` tag, and whether the instance was kept for the tenant.
fn decide(policy: &CompiledPolicy, ctx: &CallContext) -> (u32, bool) {
    let out = policy
        .decide(ctx, &summary(&ctx.tenant, COUNTING))
        .expect("decides");
    let Decision::Route(route) = &out.value else {
        panic!("expected a route, got {:?}", out.value)
    };
    let calls = route
        .tags
        .iter()
        .find(|p| p.key == "calls")
        .expect("a calls tag")
        .value
        .parse()
        .unwrap();
    (calls, out.instance.kept_warm())
}

#[test]
fn a_tenants_decisions_share_its_warm_instance_and_nobody_elses() {
    let engine = engine();
    let policy = compile(&engine);
    assert_eq!(
        [calls(&policy, &warm("a")), calls(&policy, &warm("a"))],
        [1, 2]
    );
    assert_eq!(calls(&policy, &warm("b")), 1, "b has its own");
    assert_eq!(calls(&policy, &warm("a")), 3);
    assert_eq!(policy.decisions_on_warm_instances(), 2);
    // The `log` limit (a line per decision here) counts per decision, not per instance.
    let a = warm("a");
    let limit = a.limits.max_log_calls;
    let last = (0..limit + 5).map(|_| calls(&policy, &a)).last().unwrap();
    assert_eq!(last, limit + 8, "one instance all along");
    // The default stays a fresh instance per decision, for the same tenant too.
    assert_eq!(calls(&policy, &ctx("a")), 1);
    assert_eq!(calls(&policy, &ctx("a")), 1);
    // A new version (here: the same bytes compiled again) starts from a fresh instance.
    let next = compile(&engine);
    assert_eq!(calls(&next, &warm("a")), 1);
    assert_eq!(
        calls(&policy, &warm("a")),
        limit + 9,
        "the old version's instance is its own"
    );
}

#[test]
fn a_trap_or_new_limits_replace_the_warm_instance() {
    let engine = engine();
    let policy = compile(&engine);
    let a = warm("a");
    assert_eq!([calls(&policy, &a), calls(&policy, &a)], [1, 2]);
    let mut trapping = summary("a", COUNTING);
    trapping.hints.push(Pair {
        key: "trap".into(),
        value: "1".into(),
    });
    let err = policy.decide(&a, &trapping).expect_err("it panics");
    assert_eq!(err.kind, FailureKind::Trap, "{err:?}");
    assert_eq!(calls(&policy, &a), 1, "the trapped instance was dropped");
    assert_eq!(calls(&policy, &a), 2);
    let mut tighter = warm("a");
    tighter.limits.max_log_calls = 8;
    assert_eq!(
        calls(&policy, &tighter),
        1,
        "other limits, another instance"
    );
    assert_eq!(calls(&policy, &tighter), 2);
}

#[test]
fn concurrent_decisions_of_one_tenant_each_get_an_instance() {
    let engine = engine();
    let policy = std::sync::Arc::new(compile(&engine));
    // Eight threads deciding at once for one tenant: whoever finds the warm instance taken makes
    // its own, and at most one is kept afterwards.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let policy = policy.clone();
            std::thread::spawn(move || (0..50).map(|_| decide(&policy, &warm("a")).0).max())
        })
        .collect();
    let most = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .max()
        .unwrap();
    assert!(most > 1, "instances were reused");
    assert!(policy.decisions_on_warm_instances() > 0);
    // What is kept is one instance that keeps counting.
    let next = calls(&policy, &warm("a"));
    assert_eq!(calls(&policy, &warm("a")), next + 1);
}

#[test]
fn a_refused_decision_or_a_reload_that_drops_the_tenant_discards_its_instance() {
    let engine = engine();
    let policy = compile(&engine);
    let (a, b) = (warm("a"), warm("b"));
    assert_eq!([calls(&policy, &a), calls(&policy, &a)], [1, 2]);
    assert_eq!(calls(&policy, &b), 1);
    // The host refused what a's instance returned.
    policy.discard_warm("a");
    assert_eq!(calls(&policy, &a), 1);
    assert_eq!(calls(&policy, &b), 2, "b's is untouched");
    // After a reload only b is still warm on this policy.
    policy.retain_warm(|tenant| tenant == "b");
    assert_eq!(calls(&policy, &a), 1);
    assert_eq!(calls(&policy, &b), 3);
}

#[test]
fn an_instance_made_ahead_starts_a_tenants_warm_one() {
    let engine = engine();
    let policy = compile(&engine);
    assert!(policy.prepare(&ctx("someone")).made);
    assert_eq!(calls(&policy, &warm("a")), 1);
    assert_eq!(
        policy.decisions_on_prepared_instances(),
        1,
        "made under fresh limits, it serves a warm call: it was never called"
    );
    assert_eq!(calls(&policy, &warm("a")), 2);
}

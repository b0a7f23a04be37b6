//! The epoch ticker sleeps while no policy code runs, ticks at the normal tick during a
//! decision and at the fast yield tick during a decision that yields at every tick. One test in
//! its own process: it counts the wake-ups of the only `policy-epoch` thread in it.

mod common;

use std::time::{Duration, Instant};

use common::{component, ctx, summary};
use switchyard_policy::{EngineSettings, FailureKind, PolicyEngine};

/// Voluntary context switches of the `policy-epoch` thread: one per wake-up while it ticks.
fn ticker_switches() -> u64 {
    let mut total = 0;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "policy-epoch" {
            continue;
        }
        found = true;
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert!(found, "no policy-epoch thread");
    total
}

#[test]
fn the_epoch_ticker_sleeps_while_idle_and_ticks_fast_only_for_yielding_calls() {
    let engine = PolicyEngine::new(EngineSettings {
        concurrent_instances: 4,
        epoch_tick: Duration::from_millis(1),
        yield_tick: Duration::from_micros(100),
        ..EngineSettings::default()
    })
    .expect("engine");
    // It parks after a couple of idle ticks.
    std::thread::sleep(Duration::from_millis(50));
    let before = ticker_switches();
    std::thread::sleep(Duration::from_millis(200));
    let idle = ticker_switches() - before;
    // A free-running 1 ms ticker wakes about 200 times in 200 ms.
    assert!(
        idle <= 3,
        "the ticker woke {idle} times in 200 ms with nothing running"
    );

    // A looping policy with a 50 ms budget, once as a normal call and once yielding at every
    // tick: both are stopped at their deadline; the ticker wakes about 50 times for the first
    // and several hundred times (one per 100 µs, plus sleep overshoot) for the second.
    let policy = engine
        .compile("hostile", &component("hostile"))
        .expect("hostile compiles");
    let mut wakes = Vec::new();
    for yielding in [false, true] {
        let mut ctx = ctx("t");
        ctx.limits.deadline = Duration::from_millis(50);
        ctx.yield_each_tick = yielding;
        let before = ticker_switches();
        let started = Instant::now();
        let err = policy
            .decide(&ctx, &summary("t", r#"{"mode":"loop"}"#))
            .unwrap_err();
        let took = started.elapsed();
        wakes.push(ticker_switches() - before);
        assert_eq!(err.kind, FailureKind::Deadline, "yielding {yielding}");
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_millis(500),
            "yielding {yielding}: stopped after {took:?}, deadline 50 ms"
        );
    }
    eprintln!(
        "ticker wake-ups: normal {}, yielding {}",
        wakes[0], wakes[1]
    );
    assert!(
        wakes[0] <= 80,
        "a normal call: {} ticker wake-ups in 50 ms at a 1 ms tick",
        wakes[0]
    );
    assert!(
        wakes[1] >= 3 * wakes[0],
        "a yielding call should tick at 100 µs: {} wake-ups against {} for a normal one",
        wakes[1],
        wakes[0]
    );
    drop(engine);
}

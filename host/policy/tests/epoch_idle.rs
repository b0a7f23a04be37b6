//! The epoch ticker sleeps while no policy code runs (its own process: the test counts the
//! wake-ups of the only `policy-epoch` thread in it), and wakes for a decision.

use std::time::Duration;

use switchyard_policy::{EngineSettings, PolicyEngine};

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
fn the_epoch_ticker_sleeps_while_no_policy_runs() {
    let engine = PolicyEngine::new(EngineSettings {
        concurrent_instances: 4,
        epoch_tick: Duration::from_millis(1),
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
    drop(engine);
}

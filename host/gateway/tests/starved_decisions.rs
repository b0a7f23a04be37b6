//! Offloaded decisions that the lowest priority starves are raised; busy ones are not. Its own
//! test binary, so that no other test competes for the CPU it pins its threads to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::{CpuSet, sched_setaffinity};
use switchyard_gateway::sandbox_testing::{
    STARVED_AFTER, ThreadPriority, can_raise_priority, current_priority, run_slow,
};

fn pin_to_cpu0() {
    let mut cpu0 = CpuSet::new();
    cpu0.set(0);
    sched_setaffinity(None, &cpu0).expect("pin to CPU 0");
}

fn unpin() {
    let mut all = CpuSet::new();
    for cpu in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
        all.set(cpu);
    }
    let _ = sched_setaffinity(None, &all);
}

/// Burns `cpu` of this thread's CPU time on CPU 0; returns the priority it ended at and the wall
/// time it took.
fn decision_burning(cpu: Duration) -> impl FnOnce() -> (ThreadPriority, Duration) + Send + 'static {
    move || {
        pin_to_cpu0();
        let wall = Instant::now();
        let start = cpu_time::ThreadTime::now();
        while start.elapsed() < cpu {
            std::hint::black_box(0u64);
        }
        let priority = current_priority();
        unpin();
        (priority, wall.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_starved_decision_is_raised_and_a_busy_one_is_not() {
    if !can_raise_priority() {
        eprintln!("skipped: this process may not raise a priority again (no CAP_SYS_NICE)");
        return;
    }
    // Alone on CPU 0, a decision burning four times the starvation window gets the CPU and stays
    // in the idle class to the end. Another process busy on CPU 0 (a build next to the tests)
    // starves it for real and it is raised, rightly: a few tries find a quiet moment.
    let mut runs = Vec::new();
    for _ in 0..10 {
        let (priority, took) = run_slow(decision_burning(STARVED_AFTER * 4)).await.unwrap();
        runs.push((priority, took));
        if priority == ThreadPriority::Idle {
            break;
        }
    }
    assert_eq!(
        runs.last().map(|r| r.0),
        Some(ThreadPriority::Idle),
        "a decision that gets the CPU is not raised: {runs:?}"
    );

    // Next to three normal-priority threads spinning on CPU 0, the idle class gets next to none
    // of it: the waiting request raises the decision to nice 9.
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to_cpu0();
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let result = run_slow(decision_burning(Duration::from_millis(3))).await;
    stop.store(true, Ordering::Relaxed);
    spinners.into_iter().for_each(|s| s.join().unwrap());
    let (priority, took) = result.unwrap();
    eprintln!("the starved decision took {took:?}");
    assert_eq!(
        priority,
        ThreadPriority::Nice(9),
        "the starved decision was raised (took {took:?})"
    );
}

//! The starvation hook of a yielding call (`CallContext::on_starved`): called when the call gets
//! almost no CPU, never when it does. Linux only: it pins threads to one CPU and sets nice values.
//! Its own test binary, so that no other test competes for the CPU it pins.
#![cfg(target_os = "linux")]
// Pinning and nice values are libc calls; nothing else here is unsafe.
#![allow(unsafe_code)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{component, ctx, summary};
use switchyard_policy::{EngineSettings, FailureKind, PolicyEngine};

static STARVED_CALLS: AtomicUsize = AtomicUsize::new(0);

fn set_nice(nice: i32) -> bool {
    // SAFETY: plain system calls on this thread's own id.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) == 0 }
}

fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity(0 = this thread)
    // only touch it and this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0,
            "pin to CPU 0"
        );
    }
}

/// What a gateway does when its low-priority decision is starved: raise the priority (here to
/// nice 0, so that the decision finishes quickly next to three spinning threads).
fn raise_priority() {
    STARVED_CALLS.fetch_add(1, Ordering::SeqCst);
    set_nice(0);
}

#[test]
fn a_starved_yielding_call_gets_its_hook_and_a_busy_one_does_not() {
    let engine = PolicyEngine::new(EngineSettings::default()).expect("engine");
    let policy = engine
        .compile("hostile", &component("hostile"))
        .expect("hostile compiles");
    pin_to_cpu0();
    if !set_nice(19) || !set_nice(0) {
        eprintln!("skipped: this process may not raise its priority again (no CAP_SYS_NICE)");
        return;
    }
    let mut call = ctx("t");
    call.limits.deadline = Duration::from_millis(40);
    call.yield_each_tick = true;
    call.on_starved = Some(raise_priority);

    // Alone on its CPU, a looping call at nice 19 gets the CPU: it is stopped at its deadline and
    // never counts as starved.
    assert!(set_nice(19));
    let err = policy
        .decide(&call, &summary("t", r#"{"mode":"loop"}"#))
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Deadline);
    assert_eq!(STARVED_CALLS.load(Ordering::SeqCst), 0, "not starved");

    // Next to three normal-priority threads spinning on the same CPU, the same priority gets
    // about a two-hundredth of it: the hook raises the priority and the slow-but-valid decision
    // finishes.
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
    std::thread::sleep(Duration::from_millis(20));
    assert!(set_nice(19));
    let slow = summary(
        "t",
        r#"{"mode":"slow","spin":8000000,"model":"deepseek-v4-flash"}"#,
    );
    let started = std::time::Instant::now();
    let result = policy.decide(&call, &slow);
    eprintln!("the starved decision took {:?}", started.elapsed());
    stop.store(true, Ordering::Relaxed);
    spinners.into_iter().for_each(|s| s.join().unwrap());
    set_nice(0);
    assert_eq!(
        STARVED_CALLS.load(Ordering::SeqCst),
        1,
        "the starved call called its hook once"
    );
    result.expect("with its priority back the slow decision finishes within its budget");
}

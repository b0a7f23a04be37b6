//! Where slow policy decisions run: off the async workers, at the lowest CPU priority.
//!
//! A tenant whose decisions are slow on average (an interpreted policy, or a hostile one that
//! burns its whole deadline) must not take CPU from the async workers that serve every other
//! tenant. Its decisions run on tokio's blocking pool at nice 19, and they give up the CPU at every
//! epoch tick (100 µs while they run, see `yield_each_tick` in the policy crate). Both are
//! needed, as measured with the isolation bench (a well-behaved tenant's p99 next to four
//! concurrent deadline-burning decisions on two cores): the lowest priority alone (`SCHED_IDLE`)
//! left it at 2.8x its latency alone, because the kernel let a running low-priority thread finish
//! its time slice (up to a scheduler tick, 4 ms here) while a woken request waited; yielding at
//! 1 ms ticks gave 2.0x, at 100 µs ticks 1.1x (1.3x at nice 19, about 2x at nice 9).
//!
//! The lowest priority starves, though: on a machine saturated by normal-priority work (the test
//! suite on two cores) a decision sent here that is merely slow got almost no CPU and failed at
//! its wall-clock cap. So a decision that has had less than a twentieth of its first 4 ms as CPU
//! time is raised to nice 9 ([`raise_starved`], the policy crate's `on_starved` hook; nice 0
//! would hold the CPU for whole time slices again), while one that does get the CPU, such as a
//! hostile loop next to a lightly loaded gateway, stays at nice 19 until its deadline stops it.
//! Raising a priority needs CAP_SYS_NICE (or a permissive RLIMIT_NICE); without it decisions run
//! at nice 9 throughout, which has never starved them in the test suite, and nothing is raised.
//!
//! How many decisions run here at once is bounded as well: see
//! [`crate::scheduler::OffloadCapacity`].

use std::sync::OnceLock;

/// Runs `f` on tokio's blocking pool at a lower priority and waits for its result without
/// blocking the caller's async worker. A panic in `f` is reported as an error. The blocking pool
/// grows as needed, so one tenant's deadline-burning decisions never queue another's behind them
/// (a fixed pool of one thread per core did, and a healthy tenant was throttled).
pub async fn run_slow<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffloadError> {
    tokio::task::spawn_blocking(move || at_low_priority(f))
        .await
        .map_err(|e| {
            if e.is_panic() {
                OffloadError::Panicked
            } else {
                OffloadError::Lost
            }
        })
}

/// Why an offloaded decision produced no result.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    #[error("the offloaded decision panicked")]
    Panicked,
    #[error("the offloaded decision's thread went away")]
    Lost,
}

/// Raises the calling pool thread from nice 19 to nice 9: the starvation hook
/// (`CallContext::on_starved`) of offloaded decisions. Does nothing where priorities cannot be
/// raised (then they were only lowered to nice 9).
pub fn raise_starved() {
    if can_raise_priority() {
        set_priority(LOW_PRIORITY);
    }
}

/// Runs `f` at the low priority, then restores normal priority.
fn at_low_priority<T>(f: impl FnOnce() -> T) -> T {
    let raisable = can_raise_priority();
    set_priority(if raisable {
        LOWEST_PRIORITY
    } else {
        LOW_PRIORITY
    });
    let result = f();
    if raisable {
        set_priority(NORMAL_PRIORITY);
    }
    result
}

/// Whether this process may raise a thread's priority again after lowering it, tried once on a
/// throwaway thread. Without it a pool thread lowered to nice 9 stays there, which costs only the
/// other blocking work it may run later (policy compiles, file reads).
fn can_raise_priority() -> bool {
    static RAISABLE: OnceLock<bool> = OnceLock::new();
    *RAISABLE.get_or_init(|| {
        std::thread::spawn(|| set_priority(LOWEST_PRIORITY) && set_priority(NORMAL_PRIORITY))
            .join()
            .unwrap_or(false)
    })
}

fn set_priority(value: u8) -> bool {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    ThreadPriorityValue::try_from(value)
        .is_ok_and(|p| set_current_thread_priority(ThreadPriority::Crossplatform(p)).is_ok())
}

/// Nice 19, nice 9 and nice 0 on the portable 0-99 scale.
const LOWEST_PRIORITY: u8 = 0;
const LOW_PRIORITY: u8 = 23;
const NORMAL_PRIORITY: u8 = 47;

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's nice value, from `/proc/thread-self/stat` (field 19).
    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit(')').next().unwrap();
        after_name
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn slow_decisions_run_at_a_lower_priority_and_the_thread_is_restored() {
        let lowered = if can_raise_priority() { 19 } else { 9 };
        assert_eq!(run_slow(nice).await.unwrap(), lowered);
        assert_eq!(nice(), 0, "the caller's own thread is left alone");
        // Blocking-pool threads are reused: the next plain blocking task runs at nice 0 again.
        let after = tokio::task::spawn_blocking(nice).await.unwrap();
        assert_eq!(after, 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_starved_decision_is_raised_to_nice_9() {
        let (before, after) = run_slow(|| {
            let before = nice();
            raise_starved();
            (before, nice())
        })
        .await
        .unwrap();
        if can_raise_priority() {
            assert_eq!((before, after), (19, 9));
        } else {
            assert_eq!(
                (before, after),
                (9, 9),
                "nothing is raised without CAP_SYS_NICE"
            );
        }
    }

    #[tokio::test]
    async fn a_panicking_decision_is_an_error_not_a_crash() {
        let r = run_slow(|| -> u32 { panic!("hostile") }).await;
        assert!(matches!(r, Err(OffloadError::Panicked)));
        assert_eq!(run_slow(|| 7).await.unwrap(), 7, "the pool still works");
    }
}

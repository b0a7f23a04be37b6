//! Where slow policy decisions run: off the async workers, at a lower CPU priority.
//!
//! A tenant whose decisions are slow on average (an interpreted policy, or a hostile one that
//! burns its whole deadline) must not take CPU from the async workers that serve every other
//! tenant. Its decisions run on tokio's blocking pool at nice 9, and they give up the CPU at every
//! epoch tick (100 µs while they run, see `yield_each_tick` in the policy crate). Both are
//! needed, as measured with the isolation bench (a well-behaved tenant's p99 next to four
//! concurrent deadline-burning decisions on two cores): the lowest priority alone (`SCHED_IDLE`)
//! left it at 2.8x its latency alone, because the kernel let a running low-priority thread finish
//! its time slice (up to a scheduler tick, 4 ms here) while a woken request waited; yielding at
//! 1 ms ticks gave 2.0x, at 100 µs ticks 1.1x (1.3x at nice 19, about 2x at nice 9).
//!
//! `SCHED_IDLE` and nice 19 isolated better but starved: on a saturated machine (the test suite
//! on two cores) decisions sent here failed at their wall-clock cap. A decision also stops
//! yielding after a bounded time, so that it still finishes.

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

/// Runs `f` at nice 9, then restores nice 0. Without CAP_SYS_NICE (or a permissive RLIMIT_NICE)
/// the kernel refuses to raise a priority again; the pool thread then stays at nice 9, which
/// costs only the other blocking work it may run later (policy compiles, file reads).
fn at_low_priority<T>(f: impl FnOnce() -> T) -> T {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    let set = |value: u8| {
        ThreadPriorityValue::try_from(value)
            .is_ok_and(|p| set_current_thread_priority(ThreadPriority::Crossplatform(p)).is_ok())
    };
    let lowered = set(LOW_PRIORITY);
    let result = f();
    if lowered {
        set(NORMAL_PRIORITY);
    }
    result
}

/// Nice 9 and nice 0 on the portable 0-99 scale (why not lower: see the module doc).
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
        assert_eq!(run_slow(nice).await.unwrap(), 9);
        assert_eq!(nice(), 0, "the caller's own thread is left alone");
        // Blocking-pool threads are reused: the next plain blocking task runs at nice 0 again.
        let after = tokio::task::spawn_blocking(nice).await.unwrap();
        assert_eq!(after, 0);
    }

    #[tokio::test]
    async fn a_panicking_decision_is_an_error_not_a_crash() {
        let r = run_slow(|| -> u32 { panic!("hostile") }).await;
        assert!(matches!(r, Err(OffloadError::Panicked)));
        assert_eq!(run_slow(|| 7).await.unwrap(), 7, "the pool still works");
    }
}

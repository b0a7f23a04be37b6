//! The thread pool that runs slow policy decisions, at a lower CPU priority.
//!
//! A tenant whose decisions are slow on average (an interpreted policy, or a hostile one that
//! burns its whole deadline) must not take CPU from the async workers that serve every other
//! tenant. Its decisions run here, on threads at nice 9, and they give up the CPU at every epoch
//! tick (100 µs while they run, see `yield_each_tick` in the policy crate). Both are needed, as
//! measured with the isolation bench (a well-behaved tenant's p99 next to four concurrent
//! deadline-burning decisions on two cores): the lowest priority alone (`SCHED_IDLE`) left it at
//! 2.8x its latency alone, because the kernel let a running low-priority thread finish its time
//! slice (up to a scheduler tick, 4 ms here) while a woken request waited; yielding at 1 ms ticks
//! gave 2.0x, at 100 µs ticks 1.1x (1.3x at nice 19, about 2x at nice 9).
//!
//! `SCHED_IDLE` and nice 19 isolated better but starved: on a saturated machine (the test suite
//! on two cores) decisions sent here failed at their wall-clock cap. A decision also stops
//! yielding after a bounded time, so that it still finishes.

use std::sync::OnceLock;

use rayon::{ThreadPool, ThreadPoolBuilder};

/// Runs `f` on the slow-decision pool and waits for its result without blocking the caller's
/// async worker. A panic in `f` is reported as an error rather than unwinding into the caller.
pub async fn run_slow<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffloadError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool().spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result);
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(OffloadError::Panicked),
        Err(_) => Err(OffloadError::Lost),
    }
}

/// Why an offloaded decision produced no result.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    #[error("the offloaded decision panicked")]
    Panicked,
    #[error("the offloaded decision's thread went away")]
    Lost,
}

/// One pool for the process, started on first use: as many threads as cores, so slow tenants
/// together can still use an otherwise idle machine.
fn pool() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name(|i| format!("slow-decision-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("starting the slow-decision thread pool")
    })
}

/// Lowers the calling thread's priority (nice 9 on Linux). Any user may lower its own threads'
/// priority; if the OS still refuses, the thread keeps normal priority and the yields and the
/// scheduler's per-tenant limits remain the protection, so it is logged.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    let result = ThreadPriorityValue::try_from(LOW_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            set_current_thread_priority(ThreadPriority::Crossplatform(p)).map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not lower the slow-decision thread's priority");
    }
}

/// The pool's priority on the portable 0-99 scale: nice 9 on Linux. Nice 19 isolated a little
/// better (a loop's neighbour at 1.3x instead of 2.1x its p99 alone) but starved: in the
/// saturated test suite, decisions sent here failed at their wall-clock cap.
const LOW_PRIORITY: u8 = 23;

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
    async fn slow_decisions_run_at_the_lowest_priority() {
        assert_eq!(run_slow(nice).await.unwrap(), 9);
        assert_eq!(nice(), 0, "the caller's own thread is left alone");
    }

    #[tokio::test]
    async fn a_panicking_decision_is_an_error_not_a_crash() {
        let r = run_slow(|| -> u32 { panic!("hostile") }).await;
        assert!(matches!(r, Err(OffloadError::Panicked)));
        assert_eq!(run_slow(|| 7).await.unwrap(), 7, "the pool still works");
    }
}

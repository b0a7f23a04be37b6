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
//! suite on two cores) a decision sent here that is merely slow got no CPU at all for 200 ms and
//! failed at its wall-clock cap. It cannot notice that itself, since it does not run; so the
//! request that waits for it looks: a decision that has had less than a twentieth of a
//! [`STARVED_AFTER`] window as CPU time is raised to nice 9, which has never starved a
//! decision in the test suite, while one that does get the CPU, such as a hostile loop next to a
//! lightly loaded gateway, stays at nice 19 until its deadline stops it. Raising a priority needs
//! CAP_SYS_NICE (or a permissive RLIMIT_NICE); without it decisions run at nice 9 throughout.
//!
//! How many decisions of deadline-burning tenants run here at once is bounded as well: see
//! [`crate::scheduler::OffloadCapacity`].

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::process::{Pid, getpriority_process, setpriority_process};

/// How long an offloaded decision runs before it can count as starved.
pub const STARVED_AFTER: Duration = Duration::from_millis(4);
/// A starved decision has had less than one part in this many of [`STARVED_AFTER`] as CPU time.
const STARVED_SHARE: u32 = 20;

/// Runs `f` on tokio's blocking pool at a lower priority and waits for its result without
/// blocking the caller's async worker, raising the priority if the machine starves it. A panic in
/// `f` is reported as an error. The blocking pool grows as needed, so one tenant's
/// deadline-burning decisions never queue another's behind them (a fixed pool of one thread per
/// core did, and a healthy tenant was throttled).
pub async fn run_slow<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffloadError> {
    let worker = Arc::new(OnceLock::new());
    let mut task = tokio::task::spawn_blocking({
        let worker = worker.clone();
        move || {
            let _ = worker.set(PoolThread::current());
            at_low_priority(f)
        }
    });
    // Every STARVED_AFTER while it runs: has it had its share of the CPU in that window?
    let mut cpu_before = None;
    let joined = loop {
        match tokio::time::timeout(STARVED_AFTER, &mut task).await {
            Ok(joined) => break joined,
            Err(_still_running) => {
                let Some(thread) = worker.get() else { continue };
                let cpu_now = cpu_time_of(thread.tid);
                let before = cpu_before.or(thread.cpu_at_start);
                if let (Some(before), Some(now)) = (before, cpu_now)
                    && now.saturating_sub(before) * STARVED_SHARE < STARVED_AFTER
                {
                    thread.raise();
                    break task.await;
                }
                cpu_before = cpu_now;
            }
        }
    };
    joined.map_err(|e| {
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

/// The pool thread running an offloaded decision, and its CPU clock when the decision started.
struct PoolThread {
    tid: Pid,
    cpu_at_start: Option<Duration>,
}

impl PoolThread {
    fn current() -> Self {
        let tid = rustix::thread::gettid();
        PoolThread {
            tid,
            cpu_at_start: cpu_time_of(tid),
        }
    }

    /// Raises the thread to nice 9 if it is at nice 19, which [`at_low_priority`] sets only where
    /// priorities can be raised again. Should the decision end meanwhile, the thread is back at
    /// nice 0 and left alone (or, in a narrow race, raised to nice 9 and lowered again by the
    /// next offloaded decision).
    fn raise(&self) {
        if getpriority_process(Some(self.tid)).ok() == Some(LOWEST) {
            let _ = setpriority_process(Some(self.tid), LOW);
            tracing::debug!(
                tid = self.tid.as_raw_nonzero().get(),
                "raised a starved offloaded decision to nice 9"
            );
        }
    }
}

/// CPU time a thread of this process has run, from `/proc` (its first `schedstat` field, in ns).
/// The kernel brings that figure up to date at scheduler ticks and context switches, so a thread
/// that ran through a whole window without either can look starved and be raised: it then runs at
/// nice 9, which is what every offloaded decision did before nice 19. Reading it costs an open and
/// a read (a few µs), once at the start of an offloaded decision and once per window after.
fn cpu_time_of(tid: Pid) -> Option<Duration> {
    let path = format!("/proc/self/task/{}/schedstat", tid.as_raw_nonzero());
    let stat = std::fs::read_to_string(path).ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` at the low priority, then restores normal priority.
fn at_low_priority<T>(f: impl FnOnce() -> T) -> T {
    let raisable = can_raise_priority();
    set_own_nice(if raisable { LOWEST } else { LOW });
    let result = f();
    if raisable {
        set_own_nice(NORMAL);
    }
    result
}

/// Whether this process may raise a thread's priority again after lowering it, tried once on a
/// throwaway thread. Without it a pool thread lowered to nice 9 stays there, which costs only the
/// other blocking work it may run later (policy compiles, file reads).
pub fn can_raise_priority() -> bool {
    static RAISABLE: OnceLock<bool> = OnceLock::new();
    *RAISABLE.get_or_init(|| {
        std::thread::spawn(|| set_own_nice(LOWEST) && set_own_nice(NORMAL))
            .join()
            .unwrap_or(false)
    })
}

/// Sets the calling thread's nice value (on Linux, `PRIO_PROCESS` with no id is the thread).
fn set_own_nice(nice: i32) -> bool {
    setpriority_process(None, nice).is_ok()
}

const LOWEST: i32 = 19;
const LOW: i32 = 9;
const NORMAL: i32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    fn nice() -> i32 {
        getpriority_process(None).unwrap()
    }

    #[tokio::test]
    async fn slow_decisions_run_at_a_lower_priority_and_the_thread_is_restored() {
        let lowered = if can_raise_priority() { 19 } else { 9 };
        assert_eq!(run_slow(nice).await.unwrap(), lowered);
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

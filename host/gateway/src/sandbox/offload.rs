//! Where slow policy decisions run: off the async workers, in the kernel's idle scheduling class
//! (`SCHED_IDLE`), giving up the CPU at every epoch tick, so that they take little CPU that other
//! tenants' requests wait for. Both halves are needed: see `README.md` in this folder.
//!
//! The idle class starves on a machine saturated by normal work, and a starved decision cannot
//! notice, since it does not run: the request waiting for it checks its thread's CPU time every
//! [`STARVED_AFTER`] and raises a decision that had under a twentieth of it to nice 9 in the
//! normal class. Leaving the idle class needs CAP_SYS_NICE (or a permissive RLIMIT_NICE); without
//! it decisions run at nice 9 throughout. How many decisions of deadline-burning tenants run here
//! at once is bounded too: see [`super::scheduler::OffloadCapacity`].

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::process::{Pid, getpriority_process, setpriority_process};

/// How long an offloaded decision runs before it can count as starved.
pub const STARVED_AFTER: Duration = Duration::from_millis(4);
/// A starved decision has had less than one part in this many of [`STARVED_AFTER`] as CPU time.
const STARVED_SHARE: u32 = 20;

/// Runs `f` on tokio's blocking pool at the lowest priority and waits for its result without
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

/// Runs `f` like [`run_slow`], but hands back what `f` gives its [`EarlyAnswer`] as soon as it is
/// given, while `f` goes on with work its caller need not wait for (an offloaded decision tears
/// its instance down and makes the policy's next one, which for an interpreted policy takes longer
/// than the call: see `README.md` in this folder). `finished` gets `f`'s own result when it ends,
/// on a task of its own, so whatever it holds (the tenant's turn, its place on the pool) is held
/// until then, even when the caller has gone away meanwhile; the starvation watch of [`run_slow`]
/// covers that work too.
///
/// If `f` panics or ends before answering, the caller gets the error; after answering, only
/// `finished` sees it.
pub async fn answer_early<A, T>(
    f: impl FnOnce(EarlyAnswer<A>) -> T + Send + 'static,
    finished: impl FnOnce(Result<T, OffloadError>) + Send + 'static,
) -> Result<A, OffloadError>
where
    A: Send + 'static,
    T: Send + 'static,
{
    let (answer, answered) = tokio::sync::oneshot::channel();
    let done = tokio::spawn(async move {
        let result = run_slow(move || f(EarlyAnswer(answer))).await;
        let error = result.as_ref().err().copied();
        finished(result);
        error
    });
    match answered.await {
        Ok(answer) => Ok(answer),
        // `f` dropped its answer: it panicked (the task reports how), or ended without one.
        Err(_) => Err(done.await.ok().flatten().unwrap_or(OffloadError::Lost)),
    }
}

/// Where an offloaded function puts the answer its caller waits for (see [`answer_early`]).
pub struct EarlyAnswer<A>(tokio::sync::oneshot::Sender<A>);

impl<A> EarlyAnswer<A> {
    /// Hands `answer` to the caller, which may have gone away (then it is dropped here).
    pub fn send(self, answer: A) {
        let _ = self.0.send(answer);
    }
}

/// Why an offloaded decision produced no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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

    /// Raises the thread to nice 9 in the normal class if it is in the idle class, where only
    /// [`at_low_priority`] puts it, and only where it can leave again. Should the decision end
    /// meanwhile, the thread is back at normal priority and left alone (or, in a narrow race,
    /// raised to nice 9 and restored to nice 0 by the end of the next offloaded decision).
    fn raise(&self) {
        if scheduling_class(Some(self.tid)) == Some(libc::SCHED_IDLE) {
            let _ = setpriority_process(Some(self.tid), LOW);
            set_scheduling_class(Some(self.tid), libc::SCHED_OTHER);
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
/// nice 9, which is what every offloaded decision did before the idle class. Reading it costs an
/// open and a read, once at the start of an offloaded decision and once per window after.
fn cpu_time_of(tid: Pid) -> Option<Duration> {
    let path = format!("/proc/self/task/{}/schedstat", tid.as_raw_nonzero());
    let stat = std::fs::read_to_string(path).ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` at the low priority, then restores normal priority, also when `f` panics: the pool
/// thread goes on to run other blocking work.
fn at_low_priority<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the calling thread's normal priority when dropped.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            set_scheduling_class(None, libc::SCHED_OTHER);
            set_own_nice(NORMAL);
        }
    }
    let _restore = if can_raise_priority() {
        set_scheduling_class(None, libc::SCHED_IDLE);
        Some(Restore)
    } else {
        set_own_nice(LOW);
        None
    };
    f()
}

/// Whether this process may bring a thread back to normal priority after putting it in the idle
/// class, tried once on a throwaway thread. Without it a pool thread lowered to nice 9 stays
/// there, which costs only the other blocking work it may run later (policy compiles, file reads).
pub fn can_raise_priority() -> bool {
    static RAISABLE: OnceLock<bool> = OnceLock::new();
    *RAISABLE.get_or_init(|| {
        std::thread::spawn(|| {
            set_scheduling_class(None, libc::SCHED_IDLE)
                && set_scheduling_class(None, libc::SCHED_OTHER)
        })
        .join()
        .unwrap_or(false)
    })
}

/// The calling thread's priority: in the idle class, or its nice value in the normal class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadPriority {
    Idle,
    Nice(i32),
}

/// The calling thread's [`ThreadPriority`].
pub fn current_priority() -> ThreadPriority {
    if scheduling_class(None) == Some(libc::SCHED_IDLE) {
        ThreadPriority::Idle
    } else {
        ThreadPriority::Nice(getpriority_process(None).unwrap_or(NORMAL))
    }
}

/// Sets the calling thread's nice value (on Linux, `PRIO_PROCESS` with no id is the thread).
fn set_own_nice(nice: i32) -> bool {
    setpriority_process(None, nice).is_ok()
}

/// Moves a thread of this process (`None`: the calling one) to a scheduling class (`SCHED_IDLE`
/// or `SCHED_OTHER`, both with static priority 0); its nice value is kept. Rustix does not wrap
/// this call.
#[expect(unsafe_code, reason = "sched_setscheduler, which rustix does not wrap")]
fn set_scheduling_class(tid: Option<Pid>, class: libc::c_int) -> bool {
    let tid = tid.map_or(0, |t| t.as_raw_nonzero().get());
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call, which only reads it.
    unsafe { libc::sched_setscheduler(tid, class, &param) == 0 }
}

/// A thread's scheduling class (`None` for the calling thread); `None` if it cannot be read.
#[expect(unsafe_code, reason = "sched_getscheduler, which rustix does not wrap")]
fn scheduling_class(tid: Option<Pid>) -> Option<libc::c_int> {
    let tid = tid.map_or(0, |t| t.as_raw_nonzero().get());
    // SAFETY: takes a thread id by value and touches no memory of ours.
    let class = unsafe { libc::sched_getscheduler(tid) };
    (class >= 0).then_some(class)
}

const LOW: i32 = 9;
const NORMAL: i32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_decisions_run_at_a_lower_priority_and_the_thread_is_restored() {
        let lowered = if can_raise_priority() {
            ThreadPriority::Idle
        } else {
            ThreadPriority::Nice(LOW)
        };
        assert_eq!(run_slow(current_priority).await.unwrap(), lowered);
        assert_eq!(
            current_priority(),
            ThreadPriority::Nice(NORMAL),
            "the caller's own thread is left alone"
        );
        // Blocking-pool threads are reused: the next plain blocking task runs at nice 0 again.
        let after = tokio::task::spawn_blocking(current_priority).await.unwrap();
        assert_eq!(after, ThreadPriority::Nice(NORMAL));
    }

    /// The answer arrives while the function is still running: here it cannot end before the
    /// test has the answer in hand, so an implementation that answered at the end would hang.
    #[tokio::test]
    async fn an_early_answer_arrives_before_the_work_after_it_ends() {
        let (go_on, may_go_on) = std::sync::mpsc::channel::<()>();
        let (ended, has_ended) = tokio::sync::oneshot::channel();
        let answer = answer_early(
            move |answer| {
                answer.send("routed");
                may_go_on.recv().expect("the test lets it go on");
                current_priority()
            },
            move |result| {
                let _ = ended.send(result);
            },
        );
        let answer = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("answered before the work after the answer ended");
        assert_eq!(answer, Ok("routed"));
        go_on.send(()).unwrap();
        let lowered = if can_raise_priority() {
            ThreadPriority::Idle
        } else {
            ThreadPriority::Nice(LOW)
        };
        assert_eq!(
            has_ended.await.unwrap(),
            Ok(lowered),
            "the work after the answer ends, at low priority, and `finished` gets its result"
        );
    }

    #[tokio::test]
    async fn a_function_that_panics_or_never_answers_is_an_error() {
        let panicked = answer_early(|_answer: EarlyAnswer<u32>| panic!("hostile"), |_| {});
        assert_eq!(panicked.await, Err(OffloadError::Panicked));
        let (ended, has_ended) = tokio::sync::oneshot::channel();
        let silent = answer_early(
            |answer: EarlyAnswer<u32>| drop(answer),
            move |result| {
                let _ = ended.send(result);
            },
        );
        assert_eq!(silent.await, Err(OffloadError::Lost));
        assert_eq!(has_ended.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_panicking_decision_is_an_error_not_a_crash() {
        let r = run_slow(|| -> u32 { panic!("hostile") }).await;
        assert!(matches!(r, Err(OffloadError::Panicked)));
        if can_raise_priority() {
            // This runtime's pool has the one thread the panic ran on, now idle: it runs this.
            let after = tokio::task::spawn_blocking(current_priority).await.unwrap();
            assert_eq!(
                after,
                ThreadPriority::Nice(NORMAL),
                "restored after the panic"
            );
        }
        assert_eq!(run_slow(|| 7).await.unwrap(), 7, "the pool still works");
    }
}

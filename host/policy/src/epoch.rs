//! The epoch ticker that enforces decision deadlines, awake only while policy code runs.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::Engine;

/// Increments the engine's epoch on a dedicated thread until dropped, but only around policy
/// code: deadlines are only checked while it runs, and a ticker that woke every millisecond
/// regardless kept an idle gateway awake and, at low request rates, cost much of the CPU per
/// request (figures: `BENCHMARKS.md`). It parks after [`IDLE_TICKS_BEFORE_PARKING`] ticks with
/// nothing running; [`EpochActivity::enter`] wakes it.
pub(crate) struct EpochTicker {
    pub(crate) activity: Arc<EpochActivity>,
}

/// How many calls into policy code are running, and the ticker's parking place.
#[derive(Debug, Default)]
pub(crate) struct EpochActivity {
    running: AtomicUsize,
    /// Of those, calls that yield at every tick (the ticker then ticks at the yield tick).
    yielding: AtomicUsize,
    /// The ticker is waiting on `wake` (so a caller must notify it).
    parked: AtomicBool,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// Ticks without any policy code running before the ticker parks. Waking it costs the next
/// decision one futex wake; a tick costs a thread wake-up too, so parking soon is cheapest at
/// every rate: at 20 requests/s it saves about 50 wake-ups per request, and under heavy load
/// decisions overlap the ticks and it rarely parks.
const IDLE_TICKS_BEFORE_PARKING: u32 = 2;

impl EpochActivity {
    /// Marks policy code as running until the guard drops. The first entrant wakes the ticker;
    /// its first tick then comes one tick later, as it would with a free-running ticker.
    pub(crate) fn enter(self: &Arc<Self>, yielding: bool) -> EpochGuard {
        if yielding {
            self.yielding.fetch_add(1, Ordering::SeqCst);
        }
        // `running` is raised before `parked` is read, and the ticker raises `parked` before it
        // reads `running` (all sequentially consistent): either the ticker sees this call and
        // keeps ticking, or this call sees it parked and wakes it, under the lock it waits with.
        if self.running.fetch_add(1, Ordering::SeqCst) == 0 && self.parked.load(Ordering::SeqCst) {
            let _held = self.lock.lock();
            self.wake.notify_one();
        }
        EpochGuard {
            activity: self.clone(),
            yielding,
        }
    }
}

/// Policy code is running while this lives.
pub(crate) struct EpochGuard {
    activity: Arc<EpochActivity>,
    yielding: bool,
}

impl Drop for EpochGuard {
    fn drop(&mut self) {
        if self.yielding {
            self.activity.yielding.fetch_sub(1, Ordering::SeqCst);
        }
        self.activity.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EpochTicker {
    pub(crate) fn start(
        engine: Engine,
        tick: Duration,
        yield_tick: Duration,
    ) -> std::io::Result<Self> {
        let activity = Arc::new(EpochActivity::default());
        let shared = activity.clone();
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                let mut idle_ticks = 0;
                while !shared.stop.load(Ordering::SeqCst) {
                    if shared.running.load(Ordering::SeqCst) > 0 {
                        idle_ticks = 0;
                    } else if idle_ticks < IDLE_TICKS_BEFORE_PARKING {
                        idle_ticks += 1;
                    } else {
                        let mut held = shared.lock.lock();
                        shared.parked.store(true, Ordering::SeqCst);
                        shared.wake.wait_while(&mut held, |_| {
                            shared.running.load(Ordering::SeqCst) == 0
                                && !shared.stop.load(Ordering::SeqCst)
                        });
                        shared.parked.store(false, Ordering::SeqCst);
                        idle_ticks = 0;
                        continue;
                    }
                    if shared.yielding.load(Ordering::SeqCst) > 0 {
                        std::thread::sleep(yield_tick);
                    } else {
                        std::thread::sleep(tick);
                    }
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { activity })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.activity.stop.store(true, Ordering::SeqCst);
        let _held = self.activity.lock.lock();
        self.activity.wake.notify_one();
    }
}

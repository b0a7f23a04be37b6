//! Fair scheduling of policy decisions between tenants.
//!
//! A decision is CPU work inside the request path. So that one tenant's policy (hostile, or just
//! expensive, like an interpreted one) cannot take the CPU other tenants need:
//! - each tenant runs at most `max_concurrent` decisions at once; more wait their turn;
//! - each tenant has a budget of decision time per second (a token bucket; decisions run
//!   synchronously, so their wall time is their CPU time unless the OS preempts the thread, and
//!   wall time costs no system call to read); a tenant that spent
//!   it waits for the refill, and one that would wait too long is refused as `throttled` (its
//!   failure outcome applies);
//! - a tenant whose decisions are slow on average (above `offload_above`) runs them on the
//!   lowest-priority pool in [`super::offload`], so they never hold up the async workers serving
//!   everyone else and take little CPU that others wait for; fast decisions (a few microseconds
//!   for a compiled policy) stay inline, where they are cheapest;
//! - decisions of a tenant that was recently stopped at its deadline (a burner) leave a core
//!   to the async workers: at most one fewer than the cores run at once, and one tenant takes at
//!   most half of those places (see [`OffloadCapacity`]).
//!
//! The measurements behind each of these: `README.md` in this folder.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Per-tenant scheduling limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// Decisions a tenant may run at once.
    pub max_concurrent: u32,
    /// Decision time a tenant may use per second.
    pub cpu_per_second: Duration,
    /// Longest a decision may wait for a slot or for CPU budget before it is refused.
    pub max_wait: Duration,
    /// Average decision time above which a tenant's decisions run off the async workers.
    pub offload_above: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            max_concurrent: 4,
            // A whole core per tenant; multi-tenant deployments lower it per tenant.
            cpu_per_second: Duration::from_millis(1000),
            max_wait: Duration::from_millis(250),
            // Where holding an async worker starts to show in other requests' tails (see
            // `README.md` in this folder). Cold decisions of a fast policy at low rates can
            // average over it: see `Turn::offload`.
            offload_above: Duration::from_micros(150),
        }
    }
}

/// How many offloaded decisions of burners (tenants whose decisions recently ran into their CPU
/// deadline) may run at once. Other offloaded decisions run as they come: a tenant that is slow
/// but within its budget must not wait in line behind one whose every decision burns its whole
/// budget. Once every core holds a low-priority thread, a woken request waits for one of them to
/// reach the end of its time slice; with a core left, it runs at once (see `README.md` in this
/// folder). The places are taken in order of arrival, and a tenant waits for one of its own
/// first, so that tenants that need the pool take turns in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffloadCapacity {
    /// Offloaded decisions running at once, over all tenants.
    pub total: usize,
    /// Of those, one tenant's.
    pub per_tenant: usize,
}

impl OffloadCapacity {
    /// `cores - 1` places (at least one), at most half of them (at least one) per tenant.
    pub fn for_cores(cores: usize) -> Self {
        let total = cores.saturating_sub(1).max(1);
        OffloadCapacity {
            total,
            per_tenant: (total / 2).max(1),
        }
    }
}

struct TenantState {
    settings: SchedulerSettings,
    slots: Arc<Semaphore>,
    /// This tenant's places among the offloaded decisions.
    offload_slots: Arc<Semaphore>,
    /// CPU budget in nanoseconds; negative when overdrawn.
    tokens: f64,
    refilled: Instant,
    /// Exponentially weighted average decision time (each sample capped), nanoseconds.
    average_ns: f64,
    /// When one of its decisions was last stopped at its deadline (CPU budget or wall-clock cap).
    burned_at: Option<Instant>,
}

impl TenantState {
    fn new(settings: SchedulerSettings, offload_places: usize) -> Self {
        TenantState {
            settings,
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1) as usize)),
            offload_slots: Arc::new(Semaphore::new(offload_places)),
            tokens: settings.cpu_per_second.as_nanos() as f64,
            refilled: Instant::now(),
            average_ns: 0.0,
            burned_at: None,
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let capacity = self.settings.cpu_per_second.as_nanos() as f64;
        let rate = capacity; // per second
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(capacity);
        self.refilled = now;
    }
}

/// How long a tenant stays a burner after a decision ran into its CPU deadline.
pub(crate) const BURNER_MEMORY: Duration = Duration::from_secs(10);

/// A reserved turn to run one decision. Dropping it frees the slot.
pub(crate) struct Turn {
    _permit: OwnedSemaphorePermit,
    pace: Pace,
    /// When waiting for this turn, and for a place on the pool, turns into `throttled`.
    deadline: Instant,
    /// Whether the tenant is a burner, whose offloaded decisions need a place.
    burner: bool,
    tenant_offload_slots: Arc<Semaphore>,
    offload_slots: Arc<Semaphore>,
}

/// Leave to run one decision on the low-priority pool: a place among the bounded ones for a
/// burner (see [`OffloadCapacity`]), nothing for anyone else. Dropping it frees the place.
pub(crate) struct OffloadSlot {
    _place: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

/// How slow a tenant's decisions are on average, against `offload_above`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    Fast,
    /// Between one and twice the line: a fast policy running with cold caches (a request now and
    /// then) lands here as well as a moderately slow one.
    Slow,
    /// Over twice the line: an interpreted policy, or one that burns its deadline.
    VerySlow,
}

impl Turn {
    /// Whether to run the decision on the low-priority pool. Offloading protects the other
    /// requests in flight; with none (`others_in_flight` false) it would only add a thread hop
    /// (a sleeping pool thread's wake-up) to this one, so a merely slow tenant then runs inline.
    /// A very slow one is always offloaded: inline, it would hold a worker, and the requests
    /// that arrive meanwhile, for up to its deadline.
    pub fn offload(&self, others_in_flight: bool) -> bool {
        match self.pace {
            Pace::Fast => false,
            Pace::Slow => others_in_flight,
            Pace::VerySlow => true,
        }
    }

    /// Waits for leave to run on the low-priority pool: a burner waits for a place, first among
    /// its own, then among all; `None` means the turn's wait limit passed first (throttled).
    pub async fn offload_slot(&self) -> Option<OffloadSlot> {
        if !self.burner {
            return Some(OffloadSlot { _place: None });
        }
        let wait = |slots: &Arc<Semaphore>| {
            tokio::time::timeout_at(self.deadline, slots.clone().acquire_owned())
        };
        let tenant = wait(&self.tenant_offload_slots).await.ok()?.ok()?;
        let total = wait(&self.offload_slots).await.ok()?.ok()?;
        Some(OffloadSlot {
            _place: Some((tenant, total)),
        })
    }
}

/// The scheduler: one state per tenant, kept across reloads while the settings are unchanged.
pub(crate) struct DecisionScheduler {
    tenants: Mutex<HashMap<String, TenantState>>,
    offload_capacity: OffloadCapacity,
    offload_slots: Arc<Semaphore>,
}

impl Default for DecisionScheduler {
    /// Offload capacity from this machine's cores.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        DecisionScheduler::new(OffloadCapacity::for_cores(cores))
    }
}

impl DecisionScheduler {
    pub fn new(offload_capacity: OffloadCapacity) -> Self {
        DecisionScheduler {
            tenants: Mutex::default(),
            offload_capacity,
            offload_slots: Arc::new(Semaphore::new(offload_capacity.total.max(1))),
        }
    }

    /// Waits for a turn for `tenant`; `None` means throttled (no slot or no CPU budget in time).
    pub async fn turn(&self, tenant: &str, settings: SchedulerSettings) -> Option<Turn> {
        let deadline = Instant::now() + settings.max_wait;
        let per_tenant = self.offload_capacity.per_tenant.max(1);
        let (slots, tenant_offload_slots, wait, pace, burner) = {
            let mut tenants = self.tenants.lock();
            let state = tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| TenantState::new(settings, per_tenant));
            if state.settings != settings {
                *state = TenantState::new(settings, per_tenant);
            }
            state.refill();
            let rate = settings.cpu_per_second.as_nanos() as f64;
            let wait = if state.tokens > 0.0 || rate == 0.0 {
                Duration::ZERO
            } else {
                // An overdraft of any size (a decision charged absurdly long) is a wait past any
                // deadline, never a panic.
                Duration::try_from_secs_f64(-state.tokens / rate).unwrap_or(Duration::MAX)
            };
            let line = settings.offload_above.as_nanos() as f64;
            let pace = if state.average_ns > 2.0 * line {
                Pace::VerySlow
            } else if state.average_ns > line {
                Pace::Slow
            } else {
                Pace::Fast
            };
            let burner = state
                .burned_at
                .is_some_and(|at| at.elapsed() < BURNER_MEMORY);
            (
                state.slots.clone(),
                state.offload_slots.clone(),
                wait,
                pace,
                burner,
            )
        };
        if wait > settings.max_wait || Instant::now() + wait > deadline {
            return None;
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let permit = tokio::time::timeout_at(deadline, slots.acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Turn {
            _permit: permit,
            pace,
            deadline,
            burner,
            tenant_offload_slots,
            offload_slots: self.offload_slots.clone(),
        })
    }

    /// Charges a finished decision's time to `tenant`. The whole time comes off the CPU budget;
    /// the average that decides offloading sees at most four times `offload_above` per decision,
    /// so one decision the OS happened to preempt for milliseconds cannot push a fast policy onto
    /// the (slower) low-priority pool, while a policy that is really slow still crosses the lines.
    /// `hit_deadline` says the decision was stopped at its deadline, which makes the tenant a
    /// burner for [`BURNER_MEMORY`]. That includes the wall-clock cap, which only a decision the
    /// machine starved reaches (the failure kind does not tell the two apart).
    pub fn charge(&self, tenant: &str, time: Duration, hit_deadline: bool) {
        let mut tenants = self.tenants.lock();
        if let Some(state) = tenants.get_mut(tenant) {
            if hit_deadline {
                state.burned_at = Some(Instant::now());
            }
            let ns = time.as_nanos() as f64;
            state.tokens -= ns;
            let sample = ns.min(4.0 * state.settings.offload_above.as_nanos() as f64);
            state.average_ns = if state.average_ns == 0.0 {
                sample
            } else {
                state.average_ns * 0.9 + sample * 0.1
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tenant_over_its_cpu_share_waits_then_is_throttled() {
        let s = SchedulerSettings {
            max_concurrent: 2,
            cpu_per_second: Duration::from_millis(100),
            max_wait: Duration::from_millis(50),
            offload_above: Duration::from_millis(1),
        };
        let sched = DecisionScheduler::default();
        let t = sched.turn("t", s).await.unwrap();
        assert!(!t.offload(true));
        drop(t);
        sched.charge("t", Duration::from_millis(120), false); // 20 ms overdrawn: a 200 ms wait
        assert!(
            sched.turn("t", s).await.is_none(),
            "would wait past max_wait"
        );
        assert!(
            sched.turn("other", s).await.is_some(),
            "other tenants are unaffected"
        );
        tokio::time::advance(Duration::from_millis(190)).await;
        let t = sched
            .turn("t", s)
            .await
            .expect("refilled enough to wait it out");
        assert!(
            t.offload(false),
            "its decisions are very slow on average: run them off the async workers"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_charge_throttles_and_does_not_panic() {
        let s = SchedulerSettings {
            cpu_per_second: Duration::from_millis(1),
            ..SchedulerSettings::default()
        };
        let sched = DecisionScheduler::default();
        drop(sched.turn("t", s).await.unwrap());
        sched.charge("t", Duration::MAX, true);
        assert!(sched.turn("t", s).await.is_none(), "throttled");
    }

    #[tokio::test(start_paused = true)]
    async fn one_preempted_decision_does_not_offload_a_fast_policy() {
        let s = SchedulerSettings {
            offload_above: Duration::from_micros(300),
            ..SchedulerSettings::default()
        };
        let sched = DecisionScheduler::default();
        drop(sched.turn("t", s).await.unwrap());
        for _ in 0..50 {
            sched.charge("t", Duration::from_micros(20), false);
        }
        // The OS took the thread away for 5 ms in the middle of one decision.
        sched.charge("t", Duration::from_millis(5), false);
        assert!(!sched.turn("t", s).await.unwrap().offload(true));
        // A policy that is slow every time still moves off the async workers.
        for _ in 0..50 {
            sched.charge("t", Duration::from_millis(2), false);
        }
        let turn = sched.turn("t", s).await.unwrap();
        assert!(turn.offload(true) && turn.offload(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_moderately_slow_policy_is_offloaded_only_when_others_are_in_flight() {
        let s = SchedulerSettings {
            offload_above: Duration::from_micros(150),
            ..SchedulerSettings::default()
        };
        let sched = DecisionScheduler::default();
        drop(sched.turn("t", s).await.unwrap());
        // Cold-cache decisions of a fast policy at a low request rate.
        for _ in 0..50 {
            sched.charge("t", Duration::from_micros(220), false);
        }
        let turn = sched.turn("t", s).await.unwrap();
        assert!(turn.offload(true), "others in flight: protect them");
        assert!(!turn.offload(false), "alone: no thread hop");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_decisions_per_tenant_are_bounded() {
        let s = SchedulerSettings {
            max_concurrent: 1,
            max_wait: Duration::from_millis(10),
            ..SchedulerSettings::default()
        };
        let sched = DecisionScheduler::default();
        let held = sched.turn("t", s).await.unwrap();
        assert!(sched.turn("t", s).await.is_none(), "the one slot is taken");
        assert!(sched.turn("u", s).await.is_some());
        drop(held);
        assert!(sched.turn("t", s).await.is_some());
    }

    #[test]
    fn offload_capacity_leaves_a_core_and_halves_per_tenant() {
        let cap = |cores| {
            let c = OffloadCapacity::for_cores(cores);
            (c.total, c.per_tenant)
        };
        assert_eq!(cap(1), (1, 1));
        assert_eq!(cap(2), (1, 1));
        assert_eq!(cap(4), (3, 1));
        assert_eq!(cap(8), (7, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn burners_take_turns_on_a_bounded_pool() {
        let s = SchedulerSettings {
            max_wait: Duration::from_millis(10),
            ..SchedulerSettings::default()
        };
        let sched = DecisionScheduler::new(OffloadCapacity {
            total: 2,
            per_tenant: 1,
        });
        for burner in ["t", "u", "v"] {
            drop(sched.turn(burner, s).await.unwrap());
            sched.charge(burner, Duration::from_millis(5), true);
        }
        let t1 = sched.turn("t", s).await.unwrap();
        let held = t1.offload_slot().await.expect("a free place");
        let t2 = sched.turn("t", s).await.unwrap();
        assert!(
            t2.offload_slot().await.is_none(),
            "the tenant's one place is taken: throttled after max_wait"
        );
        let u = sched.turn("u", s).await.unwrap();
        let u_place = u.offload_slot().await.expect("another tenant's place");
        let v = sched.turn("v", s).await.unwrap();
        assert!(v.offload_slot().await.is_none(), "both places are taken");
        let w = sched.turn("w", s).await.unwrap();
        assert!(
            w.offload_slot().await.is_some(),
            "a tenant that is no burner needs no place"
        );
        drop(held);
        let v = sched.turn("v", s).await.unwrap();
        assert!(v.offload_slot().await.is_some(), "a freed place is reused");
        drop(u_place);
    }
}

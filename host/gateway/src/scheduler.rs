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
//!   idle-priority pool in [`crate::offload`], so they never hold up the async workers serving
//!   everyone else and get only CPU no one else wants; fast
//!   decisions (a compiled policy takes tens of microseconds) stay inline, where they are cheapest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
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
            // A whole core per tenant: a compiled policy (~40 us a decision) then serves ~25k
            // requests per second per tenant; multi-tenant deployments lower it per tenant.
            cpu_per_second: Duration::from_millis(1000),
            max_wait: Duration::from_millis(250),
            offload_above: Duration::from_micros(150),
        }
    }
}

struct TenantState {
    settings: SchedulerSettings,
    slots: Arc<Semaphore>,
    /// CPU budget in nanoseconds; negative when overdrawn.
    tokens: f64,
    refilled: Instant,
    /// Exponentially weighted average decision time (each sample capped), nanoseconds.
    average_ns: f64,
}

impl TenantState {
    fn new(settings: SchedulerSettings) -> Self {
        TenantState {
            settings,
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1) as usize)),
            tokens: settings.cpu_per_second.as_nanos() as f64,
            refilled: Instant::now(),
            average_ns: 0.0,
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

/// A reserved turn to run one decision. Dropping it frees the slot.
pub struct Turn {
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Run the decision on the idle-priority pool.
    pub offload: bool,
}

/// The scheduler: one state per tenant, kept across reloads while the settings are unchanged.
#[derive(Default)]
pub struct DecisionScheduler {
    tenants: Mutex<HashMap<String, TenantState>>,
}

impl DecisionScheduler {
    /// Waits for a turn for `tenant`; `None` means throttled (no slot or no CPU budget in time).
    pub async fn turn(&self, tenant: &str, settings: SchedulerSettings) -> Option<Turn> {
        let deadline = Instant::now() + settings.max_wait;
        let (slots, wait, offload) = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            let state = tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| TenantState::new(settings));
            if state.settings != settings {
                *state = TenantState::new(settings);
            }
            state.refill();
            let rate = settings.cpu_per_second.as_nanos() as f64;
            let wait = if state.tokens > 0.0 || rate == 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-state.tokens / rate)
            };
            let offload = state.average_ns > settings.offload_above.as_nanos() as f64;
            (state.slots.clone(), wait, offload)
        };
        if Instant::now() + wait > deadline {
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
            offload,
        })
    }

    /// Charges a finished decision's time to `tenant`. The whole time comes off the CPU budget;
    /// the average that decides offloading sees at most twice `offload_above` per decision, so one
    /// decision the OS happened to preempt for milliseconds cannot push a fast policy onto the
    /// (slower) idle-priority pool, while a policy that is really slow still crosses the line.
    pub fn charge(&self, tenant: &str, time: Duration) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = tenants.get_mut(tenant) {
            let ns = time.as_nanos() as f64;
            state.tokens -= ns;
            let sample = ns.min(2.0 * state.settings.offload_above.as_nanos() as f64);
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
        assert!(!t.offload);
        drop(t);
        sched.charge("t", Duration::from_millis(120)); // 20 ms overdrawn: a 200 ms wait
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
            t.offload,
            "its decisions are slow on average: run them off the async workers"
        );
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
            sched.charge("t", Duration::from_micros(20));
        }
        // The OS took the thread away for 5 ms in the middle of one decision.
        sched.charge("t", Duration::from_millis(5));
        assert!(!sched.turn("t", s).await.unwrap().offload);
        // A policy that is slow every time still moves off the async workers.
        for _ in 0..50 {
            sched.charge("t", Duration::from_millis(2));
        }
        assert!(sched.turn("t", s).await.unwrap().offload);
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
}

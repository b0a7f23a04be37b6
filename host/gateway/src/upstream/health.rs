//! Circuit breakers per upstream and model, and the retry budget that keeps an outage from
//! multiplying load.
//!
//! A breaker opens after `failures` consecutive retryable failures of one model on one upstream,
//! stays open for `open_for` (the fallback loop skips it, and policies see it as `unavailable`),
//! then lets one probe through (half-open, `degraded` to policies): a success closes it, a failure
//! opens it again. Breakers outlive config reloads: health is about the provider, not the config.
//!
//! The retry budget caps extra attempts (fallbacks and retries beyond each request's first) at a
//! share of recent requests plus a small floor per second, over a sliding ten-second window, like
//! linkerd's and Finagle's retry budgets.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_policy::types::Health;
use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Whether the fallback loop may send to a target now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: send.
    Allowed,
    /// Half-open: send, as the one probe.
    Probe,
    /// Open (or a probe is already out): skip.
    Rejected,
}

/// All breakers of the process.
#[derive(Debug)]
pub struct Breakers {
    settings: Mutex<BreakerSettings>,
    states: Mutex<HashMap<(String, String), State>>,
}

impl Breakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Breakers {
            settings: Mutex::new(settings),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Applies new settings (on reload); states are kept.
    pub fn configure(&self, settings: BreakerSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn settings(&self) -> BreakerSettings {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The health a policy sees for `model` on `upstream`.
    pub fn health(&self, upstream: &str, model: &str) -> Health {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match states.get(&(upstream.to_owned(), model.to_owned())) {
            None | Some(State::Closed { .. }) => Health::Healthy,
            Some(State::Open { until }) if Instant::now() < *until => Health::Unavailable,
            Some(_) => Health::Degraded,
        }
    }

    /// Asks to send to `model` on `upstream`.
    pub fn admit(&self, upstream: &str, model: &str) -> Admission {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = states.get_mut(&(upstream.to_owned(), model.to_owned())) else {
            return Admission::Allowed;
        };
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if Instant::now() < until => Admission::Rejected,
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::HalfOpen { probing: true } => Admission::Rejected,
        }
    }

    /// Records an attempt's result. `failed` counts only failures that say something about the
    /// provider (connection, timeout, 429, 5xx, broken streams), not the client's own errors.
    pub fn record(&self, upstream: &str, model: &str, failed: bool) {
        let settings = self.settings();
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let key = (upstream.to_owned(), model.to_owned());
        let state = states.entry(key).or_insert(State::Closed { failures: 0 });
        let next = match (*state, failed) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 >= settings.failures => {
                tracing::warn!(upstream, model, failures = failures + 1, open_for = ?settings.open_for, "circuit opened");
                State::Open {
                    until: Instant::now() + settings.open_for,
                }
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen { .. } | State::Open { .. }, true) => {
                tracing::warn!(upstream, model, "probe failed; circuit open again");
                State::Open {
                    until: Instant::now() + settings.open_for,
                }
            }
        };
        if matches!(*state, State::HalfOpen { .. } | State::Open { .. })
            && matches!(next, State::Closed { .. })
        {
            tracing::info!(upstream, model, "circuit closed");
        }
        *state = next;
    }

    /// Every breaker's state, for the admin API: `(upstream, model, state)`.
    pub fn states(&self) -> Vec<(String, String, &'static str)> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut out: Vec<_> = states
            .iter()
            .map(|((u, m), s)| {
                let label = match s {
                    State::Closed { .. } => "closed",
                    State::Open { until } if now < *until => "open",
                    _ => "half-open",
                };
                (u.clone(), m.clone(), label)
            })
            .collect();
        out.sort();
        out
    }
}

/// Retry budget settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetSettings {
    /// Extra attempts allowed per request, on average over the window (0.2 = 20%).
    pub ratio: f64,
    /// Extra attempts always allowed per second, so quiet periods can still fail over.
    pub min_per_second: f64,
}

const WINDOW_SECONDS: u64 = 10;

/// A sliding-window retry budget shared by all requests.
#[derive(Debug)]
pub struct RetryBudget {
    settings: Mutex<RetryBudgetSettings>,
    /// (second, requests, extra attempts) for the last `WINDOW_SECONDS` seconds.
    window: Mutex<VecDeque<(u64, u64, u64)>>,
    origin: Instant,
}

impl RetryBudget {
    pub fn new(settings: RetryBudgetSettings) -> Self {
        RetryBudget {
            settings: Mutex::new(settings),
            window: Mutex::new(VecDeque::new()),
            origin: Instant::now(),
        }
    }

    /// Applies new settings (on reload).
    pub fn configure(&self, settings: RetryBudgetSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn bucket<'a>(&self, window: &'a mut VecDeque<(u64, u64, u64)>) -> &'a mut (u64, u64, u64) {
        let now = self.origin.elapsed().as_secs();
        while window
            .front()
            .is_some_and(|(s, _, _)| *s + WINDOW_SECONDS <= now)
        {
            window.pop_front();
        }
        if window.back().is_none_or(|(s, _, _)| *s != now) {
            window.push_back((now, 0, 0));
        }
        window.back_mut().expect("just pushed")
    }

    /// Counts a request's first attempt.
    pub fn record_request(&self) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.bucket(&mut window).1 += 1;
    }

    /// Takes one extra attempt from the budget, if there is one left.
    pub fn try_extra_attempt(&self) -> bool {
        let settings = *self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.bucket(&mut window);
        let (requests, extras) = window
            .iter()
            .fold((0, 0), |(r, e), (_, br, be)| (r + br, e + be));
        let allowed =
            settings.ratio * requests as f64 + settings.min_per_second * WINDOW_SECONDS as f64;
        if (extras as f64) < allowed {
            self.bucket(&mut window).2 += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_breaker_opens_probes_and_closes() {
        let b = Breakers::new(BreakerSettings {
            failures: 3,
            open_for: Duration::from_secs(10),
        });
        for _ in 0..2 {
            b.record("u", "m", true);
        }
        assert_eq!(b.admit("u", "m"), Admission::Allowed);
        assert_eq!(b.health("u", "m"), Health::Healthy);
        b.record("u", "m", true);
        assert_eq!(b.admit("u", "m"), Admission::Rejected);
        assert_eq!(b.health("u", "m"), Health::Unavailable);
        assert_eq!(b.health("u", "other"), Health::Healthy, "per model");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.health("u", "m"), Health::Degraded);
        assert_eq!(b.admit("u", "m"), Admission::Probe);
        assert_eq!(
            b.admit("u", "m"),
            Admission::Rejected,
            "one probe at a time"
        );
        b.record("u", "m", true);
        assert_eq!(
            b.admit("u", "m"),
            Admission::Rejected,
            "a failed probe reopens"
        );
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.admit("u", "m"), Admission::Probe);
        b.record("u", "m", false);
        assert_eq!(b.admit("u", "m"), Admission::Allowed);
        assert_eq!(b.health("u", "m"), Health::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_budget_caps_extra_attempts_at_a_share_of_traffic() {
        let budget = RetryBudget::new(RetryBudgetSettings {
            ratio: 0.2,
            min_per_second: 0.5,
        });
        for _ in 0..100 {
            budget.record_request();
        }
        // 20% of 100 plus a floor of 0.5/s over 10 s.
        let granted = (0..100).filter(|_| budget.try_extra_attempt()).count();
        assert_eq!(granted, 25);
        // The window slides: old traffic stops counting.
        tokio::time::advance(Duration::from_secs(11)).await;
        let granted = (0..100).filter(|_| budget.try_extra_attempt()).count();
        assert_eq!(granted, 5, "only the floor is left");
    }
}

//! Circuit breakers per upstream and model, and the retry budget that keeps an outage from
//! multiplying load.
//!
//! A breaker opens after `failures` consecutive retryable failures of one model on one upstream
//! and stays open for `probe_after` (the fallback loop skips it; policies see it as
//! `unavailable`), then lets one probe through (half-open, `degraded` to policies): a success
//! closes it, a failure opens it again for twice as long, up to `max_open`, each period with
//! ±20% jitter. A provider that recovers is back in use within about `max_open` of recovering,
//! however long its outage. A probe whose request never reports back (the client left, the
//! deadline passed first) is handed back when it is dropped. Breakers outlive config reloads:
//! health is about the provider, not the config.
//!
//! The retry budget caps extra attempts (fallbacks and retries beyond each request's first) at a
//! share of recent requests plus a small floor per second, over a sliding ten-second window, like
//! linkerd's and Finagle's retry budgets.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How the host judges a model on an upstream right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Health {
    /// The circuit is closed: serving normally.
    Healthy,
    /// Half-open: a probe may go through.
    Degraded,
    /// Open: skipped until its open period ends.
    Unavailable,
}

/// A breaker's state, for the admin API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before the first probe.
    pub probe_after: Duration,
    /// The longest it stays open: each failed probe doubles the open period up to this.
    pub max_open: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, failed_probes: u32 },
    HalfOpen { probing: bool, failed_probes: u32 },
}

/// Whether the fallback loop may send to a target now.
#[derive(Debug)]
pub enum Admission {
    /// Closed: send.
    Allowed,
    /// Half-open: send, as the one probe; report how it went with [`Probe::record`].
    Probe(Probe),
    /// Open (or a probe is already out): skip.
    Rejected,
}

/// The one request allowed through a half-open circuit. Dropped without a result (its client
/// left, its deadline passed before it was sent, the retry budget refused it), it hands the
/// probe back so the next request can probe: a probe can never wedge a circuit.
#[derive(Debug)]
pub struct Probe {
    breakers: Breakers,
    upstream: Arc<str>,
    model: Arc<str>,
    done: bool,
}

impl Probe {
    /// Records the probe's result: a success closes the circuit, a failure opens it again for
    /// longer.
    pub fn record(mut self, failed: bool) {
        self.done = true;
        self.breakers.record(&self.upstream, &self.model, failed);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.done {
            self.breakers.release_probe(&self.upstream, &self.model);
        }
    }
}

#[derive(Debug)]
struct Inner {
    settings: Mutex<BreakerSettings>,
    /// upstream -> model -> state (nested so that look-ups borrow and never allocate).
    states: Mutex<HashMap<String, HashMap<String, State>>>,
}

/// All breakers of the process; a cheap handle.
#[derive(Debug, Clone)]
pub struct Breakers(Arc<Inner>);

/// The open period after `failed_probes` failed probes: `probe_after` doubled for each, at most
/// `max_open`, with ±20% jitter so replicas and models do not probe in lockstep.
fn open_period(settings: &BreakerSettings, failed_probes: u32) -> Duration {
    let base = settings
        .probe_after
        .saturating_mul(2u32.saturating_pow(failed_probes.min(16)))
        .min(settings.max_open);
    base.mul_f64(0.8 + 0.4 * jitter())
}

/// A number in [0, 1) that differs between calls (not for anything secret).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    (xxhash_rust::xxh3::xxh3_64(&x.to_le_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

impl Breakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Breakers(Arc::new(Inner {
            settings: Mutex::new(settings),
            states: Mutex::new(HashMap::new()),
        }))
    }

    /// Applies new settings (on reload); states are kept.
    pub fn configure(&self, settings: BreakerSettings) {
        *self.0.settings.lock() = settings;
    }

    fn settings(&self) -> BreakerSettings {
        *self.0.settings.lock()
    }

    /// The health of `model` on `upstream`.
    pub fn health(&self, upstream: &str, model: &str) -> Health {
        let states = self.0.states.lock();
        match states.get(upstream).and_then(|m| m.get(model)) {
            None | Some(State::Closed { .. }) => Health::Healthy,
            Some(State::Open { until, .. }) if Instant::now() < *until => Health::Unavailable,
            Some(_) => Health::Degraded,
        }
    }

    /// Asks to send to `model` on `upstream`.
    pub fn admit(&self, upstream: &Arc<str>, model: &str) -> Admission {
        let mut states = self.0.states.lock();
        let Some(state) = states.get_mut(&**upstream).and_then(|m| m.get_mut(model)) else {
            return Admission::Allowed;
        };
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until, .. } if Instant::now() < until => Admission::Rejected,
            State::Open { failed_probes, .. }
            | State::HalfOpen {
                probing: false,
                failed_probes,
            } => {
                *state = State::HalfOpen {
                    probing: true,
                    failed_probes,
                };
                Admission::Probe(Probe {
                    breakers: self.clone(),
                    upstream: upstream.clone(),
                    model: model.into(),
                    done: false,
                })
            }
            State::HalfOpen { probing: true, .. } => Admission::Rejected,
        }
    }

    fn release_probe(&self, upstream: &str, model: &str) {
        let mut states = self.0.states.lock();
        if let Some(state) = states.get_mut(upstream).and_then(|m| m.get_mut(model))
            && let State::HalfOpen {
                probing: true,
                failed_probes,
            } = *state
        {
            *state = State::HalfOpen {
                probing: false,
                failed_probes,
            };
        }
    }

    /// Records an attempt's result. `failed` counts only failures that say something about the
    /// provider (connection, timeout, 429, 5xx, broken streams), not the client's own errors.
    pub fn record(&self, upstream: &str, model: &str, failed: bool) {
        let settings = self.settings();
        let mut states = self.0.states.lock();
        if !failed && !states.get(upstream).is_some_and(|m| m.contains_key(model)) {
            return; // closed and never failed: nothing to remember
        }
        let state = states
            .entry(upstream.to_owned())
            .or_default()
            .entry(model.to_owned())
            .or_insert(State::Closed { failures: 0 });
        let next = match (*state, failed) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 >= settings.failures => {
                let open_for = open_period(&settings, 0);
                tracing::warn!(
                    upstream,
                    model,
                    failures = failures + 1,
                    ?open_for,
                    "circuit opened"
                );
                State::Open {
                    until: Instant::now() + open_for,
                    failed_probes: 0,
                }
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen { failed_probes, .. } | State::Open { failed_probes, .. }, true) => {
                let failed_probes = failed_probes.saturating_add(1);
                let open_for = open_period(&settings, failed_probes);
                tracing::warn!(
                    upstream,
                    model,
                    failed_probes,
                    ?open_for,
                    "probe failed; circuit open again"
                );
                State::Open {
                    until: Instant::now() + open_for,
                    failed_probes,
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

    /// Every breaker that has seen a failure: `(upstream, model, state)`.
    pub fn states(&self) -> Vec<(String, String, BreakerState)> {
        let states = self.0.states.lock();
        let now = Instant::now();
        let mut out: Vec<_> = states
            .iter()
            .flat_map(|(u, models)| {
                models.iter().map(move |(m, s)| {
                    let state = match s {
                        State::Closed { .. } => BreakerState::Closed,
                        State::Open { until, .. } if now < *until => BreakerState::Open,
                        _ => BreakerState::HalfOpen,
                    };
                    (u.clone(), m.clone(), state)
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
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
        *self.settings.lock() = settings;
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
        let mut window = self.window.lock();
        self.bucket(&mut window).1 += 1;
    }

    /// Takes one extra attempt from the budget, if there is one left.
    pub fn try_extra_attempt(&self) -> bool {
        let settings = *self.settings.lock();
        let mut window = self.window.lock();
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

    fn breakers(failures: u32) -> Breakers {
        Breakers::new(BreakerSettings {
            failures,
            probe_after: Duration::from_secs(1),
            max_open: Duration::from_secs(8),
        })
    }

    fn probe(admission: Admission) -> Probe {
        match admission {
            Admission::Probe(p) => p,
            other => panic!("expected a probe, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_opens_probes_and_closes() {
        let b = breakers(3);
        let u: Arc<str> = "u".into();
        for _ in 0..2 {
            b.record("u", "m", true);
        }
        assert!(matches!(b.admit(&u, "m"), Admission::Allowed));
        assert_eq!(b.health("u", "m"), Health::Healthy);
        b.record("u", "m", true);
        assert!(matches!(b.admit(&u, "m"), Admission::Rejected));
        assert_eq!(b.health("u", "m"), Health::Unavailable);
        assert_eq!(b.health("u", "other"), Health::Healthy, "per model");
        tokio::time::advance(Duration::from_millis(1250)).await;
        assert_eq!(b.health("u", "m"), Health::Degraded);
        let p = probe(b.admit(&u, "m"));
        assert!(
            matches!(b.admit(&u, "m"), Admission::Rejected),
            "one probe at a time"
        );
        p.record(true);
        assert!(
            matches!(b.admit(&u, "m"), Admission::Rejected),
            "a failed probe reopens"
        );
        tokio::time::advance(Duration::from_millis(2500)).await;
        probe(b.admit(&u, "m")).record(false);
        assert!(matches!(b.admit(&u, "m"), Admission::Allowed));
        assert_eq!(b.health("u", "m"), Health::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_without_a_result_is_handed_back() {
        let b = breakers(1);
        let u: Arc<str> = "u".into();
        b.record("u", "m", true);
        tokio::time::advance(Duration::from_millis(1250)).await;
        let abandoned = probe(b.admit(&u, "m"));
        assert!(matches!(b.admit(&u, "m"), Admission::Rejected));
        drop(abandoned); // its client left before the upstream answered
        let p = probe(b.admit(&u, "m"));
        p.record(false);
        assert_eq!(b.health("u", "m"), Health::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_back_off_up_to_the_cap_with_jitter() {
        let b = breakers(1);
        let u: Arc<str> = "u".into();
        b.record("u", "m", true);
        // Open periods: 1, 2, 4, 8, 8 s (each ±20%). Find when each probe is admitted.
        let mut waits = Vec::new();
        for _ in 0..5 {
            let mut waited = Duration::ZERO;
            loop {
                if let Admission::Probe(p) = b.admit(&u, "m") {
                    p.record(true);
                    break;
                }
                tokio::time::advance(Duration::from_millis(50)).await;
                waited += Duration::from_millis(50);
            }
            waits.push(waited.as_secs_f64());
        }
        for (wait, base) in waits.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0]) {
            assert!(
                (base * 0.8 - 0.05..=base * 1.2 + 0.05).contains(wait),
                "{waits:?}"
            );
        }
    }

    /// The flapping primary: 503 for 60 s, then healthy, with a request every 4 s, on
    /// the default settings (5 failures, first probe after 1 s, open at most 5 s).
    #[tokio::test(start_paused = true)]
    async fn a_recovered_upstream_takes_traffic_again_within_seconds_of_a_long_outage() {
        let b = Breakers::new(BreakerSettings {
            failures: 5,
            probe_after: Duration::from_secs(1),
            max_open: Duration::from_secs(5),
        });
        let u: Arc<str> = "u".into();
        let started = Instant::now();
        let recovered_at = Duration::from_secs(60);
        let mut back = None;
        for _ in 0..40 {
            let now = started.elapsed();
            let healthy = now >= recovered_at;
            match b.admit(&u, "m") {
                Admission::Rejected => {}
                Admission::Allowed => b.record("u", "m", !healthy),
                Admission::Probe(p) => p.record(!healthy),
            }
            if healthy && back.is_none() && b.health("u", "m") == Health::Healthy {
                back = Some(now - recovered_at);
            }
            tokio::time::advance(Duration::from_secs(4)).await;
        }
        let back = back.expect("the upstream was used again");
        assert!(back <= Duration::from_secs(10), "back after {back:?}");
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

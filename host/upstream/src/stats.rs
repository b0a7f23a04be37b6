//! What the host has seen of each model on each upstream lately: time to first token, the share
//! of attempts that failed, requests in flight, and the rate-limit headroom the upstream reports.
//! Policies read it in their summary (contract 0.2); the fallback loop writes it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How far back the figures look.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most attempts remembered per model and upstream.
const MAX_SAMPLES: usize = 256;

/// The figures for one model on one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    pub ttft_p50_ms: Option<u32>,
    pub ttft_p95_ms: Option<u32>,
    pub error_rate: Option<f32>,
    /// Attempts in the window.
    pub samples: u32,
    pub in_flight: u32,
    pub remaining_requests: Option<u32>,
    pub remaining_tokens: Option<u32>,
}

/// The attempts in the window, with their figures kept up to date as attempts come and go, so
/// that reading them (every request's summary does, for each candidate) costs a few loads: sorting
/// the window on every read, after every attempt had changed it, cost as much as parsing the
/// request (`BENCHMARKS.md`).
#[derive(Debug, Default)]
struct Window {
    /// (when, time to first token if it succeeded, failed with a provider error)
    samples: VecDeque<(Instant, Option<u32>, bool)>,
    /// The times to first token of `samples`, in order.
    ttft_sorted: Vec<u32>,
    /// How many of `samples` failed.
    failed: u32,
    remaining_requests: Option<u32>,
    remaining_tokens: Option<u32>,
}

impl Window {
    fn push(&mut self, at: Instant, ttft: Option<u32>, failed: bool) {
        if self.samples.len() == MAX_SAMPLES {
            self.pop_oldest();
        }
        self.samples.push_back((at, ttft, failed));
        if let Some(t) = ttft {
            let i = self.ttft_sorted.partition_point(|&x| x <= t);
            self.ttft_sorted.insert(i, t);
        }
        self.failed += u32::from(failed);
    }

    fn pop_oldest(&mut self) {
        let Some((_, ttft, failed)) = self.samples.pop_front() else {
            return;
        };
        if let Some(t) = ttft
            && let Ok(i) = self.ttft_sorted.binary_search(&t)
        {
            self.ttft_sorted.remove(i);
        }
        self.failed -= u32::from(failed);
    }

    /// Forgets the attempts older than [`WINDOW`].
    fn expire(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > WINDOW)
        {
            self.pop_oldest();
        }
    }

    fn percentile(&self, p: f64) -> Option<u32> {
        let n = self.ttft_sorted.len();
        (n > 0).then(|| self.ttft_sorted[((n - 1) as f64 * p).round() as usize])
    }
}

#[derive(Debug, Default)]
struct Entry {
    window: Mutex<Window>,
    in_flight: AtomicU32,
}

/// upstream -> model -> figures.
type Entries = HashMap<String, HashMap<String, Arc<Entry>>>;

/// The figures of every model on every upstream; a cheap handle.
#[derive(Debug, Clone, Default)]
pub struct UpstreamStats(Arc<Mutex<Entries>>);

/// An attempt in flight; counted until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Entry>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamStats {
    /// The entry of a pair; nested maps, so that a look-up borrows and never allocates (a key is
    /// allocated only the first time a pair is seen).
    fn entry(&self, upstream: &str, model: &str) -> Arc<Entry> {
        let mut map = self.0.lock();
        if let Some(e) = map.get(upstream).and_then(|m| m.get(model)) {
            return e.clone();
        }
        map.entry(upstream.to_owned())
            .or_default()
            .entry(model.to_owned())
            .or_default()
            .clone()
    }

    /// Counts an attempt in flight until the guard drops.
    pub fn start(&self, upstream: &Arc<str>, model: &str) -> InFlight {
        let e = self.entry(upstream, model);
        e.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(e)
    }

    /// Records how an attempt ended: its time to first token when it succeeded, and whether it
    /// failed because of the provider.
    pub fn record(&self, upstream: &Arc<str>, model: &str, ttft: Option<Duration>, failed: bool) {
        let e = self.entry(upstream, model);
        let mut w = e.window.lock();
        let now = Instant::now();
        let ms = ttft.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        w.push(now, ms, failed);
    }

    /// Records the rate-limit headroom an upstream reported with a response.
    pub fn headroom(&self, upstream: &Arc<str>, model: &str, headers: &http::HeaderMap) {
        let read = |name: &str| {
            headers
                .get(name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let (requests, tokens) = (
            read("x-ratelimit-remaining-requests"),
            read("x-ratelimit-remaining-tokens"),
        );
        if requests.is_none() && tokens.is_none() {
            return;
        }
        let e = self.entry(upstream, model);
        let mut w = e.window.lock();
        w.remaining_requests = requests.or(w.remaining_requests);
        w.remaining_tokens = tokens.or(w.remaining_tokens);
    }

    /// The figures for `model` on `upstream` now.
    pub fn signals(&self, upstream: &Arc<str>, model: &str) -> Signals {
        let Some(e) = self
            .0
            .lock()
            .get(&**upstream)
            .and_then(|m| m.get(model))
            .cloned()
        else {
            return Signals::default();
        };
        let in_flight = e.in_flight.load(Ordering::Relaxed);
        let mut w = e.window.lock();
        w.expire(Instant::now());
        let samples = w.samples.len() as u32;
        Signals {
            ttft_p50_ms: w.percentile(0.5),
            ttft_p95_ms: w.percentile(0.95),
            error_rate: (samples > 0).then(|| w.failed as f32 / samples as f32),
            samples,
            in_flight,
            remaining_requests: w.remaining_requests,
            remaining_tokens: w.remaining_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn figures_cover_the_last_minute() {
        let stats = UpstreamStats::default();
        let u: Arc<str> = "u".into();
        for ms in [100, 200, 300, 400, 1000] {
            stats.record(&u, "m", Some(Duration::from_millis(ms)), false);
        }
        stats.record(&u, "m", None, true);
        let s = stats.signals(&u, "m");
        assert_eq!(s.samples, 6);
        assert_eq!(s.ttft_p50_ms, Some(300));
        assert_eq!(s.ttft_p95_ms, Some(1000));
        assert!((s.error_rate.unwrap() - 1.0 / 6.0).abs() < 1e-6);
        let guard = stats.start(&u, "m");
        assert_eq!(stats.signals(&u, "m").in_flight, 1);
        drop(guard);
        assert_eq!(stats.signals(&u, "m").in_flight, 0);
        tokio::time::advance(WINDOW + Duration::from_secs(1)).await;
        assert_eq!(stats.signals(&u, "m").samples, 0, "old attempts age out");
        assert_eq!(stats.signals(&u, "other"), Signals::default());
    }

    proptest::proptest! {
        /// The figures kept up to date attempt by attempt are the ones a sort of the window gives.
        #[test]
        fn kept_figures_are_the_windows_own(
            attempts in proptest::collection::vec(
                (0u64..3_000, proptest::option::of(0u32..500), proptest::bool::ANY),
                0..700,
            ),
        ) {
            let mut w = Window::default();
            let mut now = Instant::now();
            for (gap_ms, ttft, failed) in attempts {
                now += Duration::from_millis(gap_ms);
                w.push(now, ttft, failed);
                w.expire(now);
                let mut sorted: Vec<u32> = w.samples.iter().filter_map(|(_, t, _)| *t).collect();
                sorted.sort_unstable();
                proptest::prop_assert!(w.samples.len() <= MAX_SAMPLES);
                proptest::prop_assert_eq!(&w.ttft_sorted, &sorted);
                let failed = w.samples.iter().filter(|(_, _, f)| *f).count() as u32;
                proptest::prop_assert_eq!(w.failed, failed);
                let pct = |p: f64| (!sorted.is_empty())
                    .then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize]);
                proptest::prop_assert_eq!(w.percentile(0.95), pct(0.95));
            }
        }
    }

    #[test]
    fn rate_limit_headroom_is_read_from_the_headers() {
        let stats = UpstreamStats::default();
        let u: Arc<str> = "u".into();
        let mut h = http::HeaderMap::new();
        h.insert("x-ratelimit-remaining-requests", "42".parse().unwrap());
        h.insert("x-ratelimit-remaining-tokens", "90000".parse().unwrap());
        stats.headroom(&u, "m", &h);
        let s = stats.signals(&u, "m");
        assert_eq!(
            (s.remaining_requests, s.remaining_tokens),
            (Some(42), Some(90000))
        );
    }
}

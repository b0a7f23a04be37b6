//! The ring of recent requests: what the request path hands the console, and what it costs.
//!
//! - Every request, as its context is dropped, leaves a small [`Record`] in a bounded ring. The
//!   record's fields are moved out of the finished context (nothing is copied or allocated); the
//!   cost is one atomic increment, one uncontended slot lock, and the drop of the record it
//!   replaces (the frees the context would have done anyway, later).
//! - Only while a console session watches (an event stream is open) does the decide phase copy
//!   the summary the policy saw and the decision it returned, for the request's detail. With
//!   nobody watching that is one relaxed atomic load.
//!
//! Measured figures are in docs/console.md.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use parking_lot::Mutex;
use serde_json::{Value, json};
use switchyard_policy::PolicyFailure;
use switchyard_policy::types::{Decision, RequestSummary};
use switchyard_upstream::{AttemptSummary, Usage};

use crate::cache::CacheOutcome;

/// Requests kept in the ring (the Requests page's last N, and what the sampler reads).
pub(crate) const RING: usize = 2048;
/// Request details kept (summary and decision, only captured while watched).
pub(crate) const DETAILS: usize = 512;

/// One finished request, as the console shows it. Never holds a key; holds the prompt excerpt
/// only when `server.log_prompts` put it in the request's context.
#[derive(Debug)]
pub(crate) struct Record {
    pub seq: u64,
    pub id: Arc<str>,
    pub received_at: SystemTime,
    pub api: &'static str,
    pub tenant: Option<Arc<str>>,
    pub policy: Option<HeaderValue>,
    pub model: Option<String>,
    pub upstream: Option<Arc<str>>,
    pub attempts: usize,
    pub attempt_list: Vec<AttemptSummary>,
    pub decision: Option<Duration>,
    pub stream: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    pub cost_estimated: bool,
    pub saved_usd: Option<f64>,
    pub cache: CacheOutcome,
    pub tags: Vec<(String, String)>,
    pub error: Option<String>,
    pub prompt: Option<String>,
    /// From arrival to the last byte.
    pub total: Duration,
    pub first_byte: Option<Duration>,
    pub upstream_wait: Duration,
}

impl Record {
    /// When the request finished.
    pub fn finished_at(&self) -> SystemTime {
        self.received_at + self.total
    }

    /// Time to first byte spent in the gateway rather than waiting on upstreams (as the
    /// `added_latency_seconds` metric counts it).
    pub fn added(&self) -> Duration {
        self.first_byte
            .unwrap_or(self.total)
            .saturating_sub(self.upstream_wait)
    }

    /// The value of tag `key`, if the policy set it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The row the Requests page shows.
    pub fn row(&self, has_detail: bool) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        let usage = self.usage.unwrap_or_default();
        json!({
            "seq": self.seq,
            "id": &*self.id,
            "at_ms": unix_ms(self.received_at),
            "api": self.api,
            "tenant": self.tenant.as_deref(),
            "policy": self.policy.as_ref().and_then(|h| h.to_str().ok()),
            "model": self.model,
            "upstream": self.upstream.as_deref(),
            "status": self.status,
            "tags": self.tags,
            "attempts": self.attempts,
            "attempt_list": self.attempt_list.iter().map(|a| json!({
                "model": a.model, "upstream": a.upstream, "outcome": a.outcome,
            })).collect::<Vec<_>>(),
            "stream": self.stream,
            "cost_usd": self.cost_usd,
            "cost_estimated": self.cost_estimated,
            "saved_usd": self.saved_usd,
            "cache": self.cache.as_str(),
            "prompt_tokens": usage.prompt_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "latency_ms": ms(self.total),
            "first_byte_ms": self.first_byte.map(ms),
            "added_ms": ms(self.added()),
            "decision_us": self.decision.map(|d| d.as_micros() as u64),
            "error": self.error,
            "prompt": self.prompt,
            "has_detail": has_detail,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the policy saw and returned for one request, captured while a console watched.
#[derive(Debug, Clone)]
pub(crate) struct Detail {
    pub id: Arc<str>,
    /// The summary, with the prompt excerpt emptied unless `server.log_prompts` is on.
    pub summary: RequestSummary,
    /// The excerpt's length, when it was left out.
    pub excerpt_redacted: Option<usize>,
    /// `name@hash` of the policy that decided.
    pub policy: String,
    pub decision: Result<Decision, PolicyFailure>,
}

impl Detail {
    /// The detail as the Requests page shows it.
    pub fn to_json(&self) -> Value {
        let mut summary = serde_json::to_value(&self.summary).unwrap_or_default();
        if let (Some(bytes), Some(obj)) = (self.excerpt_redacted, summary.as_object_mut()) {
            obj.insert(
                "last_user_excerpt".into(),
                json!(format!(
                    "[{bytes} bytes, not kept: server.log_prompts is off]"
                )),
            );
        }
        let decision = match &self.decision {
            Ok(d) => json!({"ok": d}),
            Err(f) => json!({"failed": {"kind": f.kind.as_str(), "detail": f.detail}}),
        };
        json!({"policy": self.policy, "summary": summary, "decision": decision})
    }
}

/// The ring of recent requests, and the details captured while watched.
pub(crate) struct Recent {
    slots: Box<[Mutex<Option<Record>>]>,
    next: AtomicU64,
    /// Shared with the guards of open event streams, which count down when dropped.
    watchers: Arc<AtomicUsize>,
    details: Mutex<VecDeque<Detail>>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            slots: (0..RING).map(|_| Mutex::new(None)).collect(),
            next: AtomicU64::new(0),
            watchers: Arc::new(AtomicUsize::new(0)),
            details: Mutex::new(VecDeque::with_capacity(DETAILS)),
        }
    }
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent")
            .field("next", &self.next)
            .field("watchers", &self.watchers)
            .finish_non_exhaustive()
    }
}

/// Counts one open console event stream while it lives.
pub(crate) struct WatchGuard(Arc<AtomicUsize>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A summary copied for a request's detail, waiting for the decision.
pub(crate) struct Watched<'a> {
    recent: &'a Recent,
    summary: RequestSummary,
    excerpt_redacted: Option<usize>,
}

impl Watched<'_> {
    /// Keeps the detail with the policy's answer.
    pub fn decided(self, policy: &HeaderValue, result: &Result<Decision, PolicyFailure>) {
        let detail = Detail {
            id: self.summary.request_id.as_str().into(),
            policy: policy.to_str().unwrap_or_default().to_owned(),
            decision: result.clone(),
            excerpt_redacted: self.excerpt_redacted,
            summary: self.summary,
        };
        let mut details = self.recent.details.lock();
        if details.len() >= DETAILS {
            details.pop_front();
        }
        details.push_back(detail);
    }
}

impl Recent {
    /// The request path's one call: keeps a finished request's record (moved out of its
    /// context by `RequestCtx::record`).
    pub fn push(&self, mut record: Record) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        record.seq = seq;
        let replaced = self.slots[(seq % RING as u64) as usize]
            .lock()
            .replace(record);
        drop(replaced);
    }

    /// Whether a console session watches (an event stream is open).
    pub fn watching(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// The decide phase's call: while watched, copies the summary the policy is about to see
    /// (without the prompt excerpt unless `log_prompts`); otherwise nothing.
    pub fn watch(&self, summary: &mut RequestSummary, log_prompts: bool) -> Option<Watched<'_>> {
        if !self.watching() {
            return None;
        }
        let excerpt = std::mem::take(&mut summary.last_user_excerpt);
        let mut copy = summary.clone();
        let excerpt_redacted = if log_prompts {
            copy.last_user_excerpt = excerpt.clone();
            None
        } else {
            Some(excerpt.len())
        };
        summary.last_user_excerpt = excerpt;
        Some(Watched {
            recent: self,
            summary: copy,
            excerpt_redacted,
        })
    }

    /// Starts watching: details are captured until the guard is dropped.
    pub fn subscribe(&self) -> WatchGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.watchers.clone())
    }

    /// Open event streams.
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The sequence number the next request will get.
    pub fn next_seq(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Calls `f` on each record from `from` on, oldest first, until one is not written yet;
    /// returns the sequence number to resume from and how many were overwritten before they
    /// could be read.
    pub fn read_from(&self, from: u64, mut f: impl FnMut(&Record)) -> (u64, u64) {
        let end = self.next_seq();
        let mut seq = from.max(end.saturating_sub(RING as u64));
        let mut missed = seq - from.min(seq);
        while seq < end {
            let slot = self.slots[(seq % RING as u64) as usize].lock();
            match slot.as_ref() {
                Some(r) if r.seq == seq => f(r),
                Some(r) if r.seq > seq => missed += 1,
                // Its writer has its number but has not stored it yet: resume here next time.
                _ => return (seq, missed),
            }
            drop(slot);
            seq += 1;
        }
        (seq, missed)
    }

    /// The last `n` records, newest first, as rows (with whether a detail was captured).
    pub fn rows(&self, n: usize, filter: impl Fn(&Record) -> bool) -> Vec<Value> {
        let details: std::collections::HashSet<Arc<str>> =
            self.details.lock().iter().map(|d| d.id.clone()).collect();
        let end = self.next_seq();
        let mut out = Vec::new();
        let mut seq = end;
        while seq > end.saturating_sub(RING as u64) && out.len() < n {
            seq -= 1;
            let slot = self.slots[(seq % RING as u64) as usize].lock();
            if let Some(r) = slot.as_ref().filter(|r| r.seq == seq && filter(r)) {
                out.push(r.row(details.contains(&r.id)));
            }
        }
        out
    }

    /// Rows from `from` on, oldest first, at most `n` (the newest `n` when there are more).
    pub fn rows_since(&self, from: u64, n: usize) -> (Vec<Value>, u64) {
        let end = self.next_seq();
        let start = from.max(end.saturating_sub(n as u64));
        let details: std::collections::HashSet<Arc<str>> =
            self.details.lock().iter().map(|d| d.id.clone()).collect();
        let mut out = Vec::new();
        let (next, _) = self.read_from(start, |r| out.push(r.row(details.contains(&r.id))));
        (out, next)
    }

    /// The record and the detail of request `id`, if still kept.
    pub fn find(&self, id: &str) -> (Option<Value>, Option<Detail>) {
        let detail = self
            .details
            .lock()
            .iter()
            .rev()
            .find(|d| &*d.id == id)
            .cloned();
        let end = self.next_seq();
        let mut seq = end;
        while seq > end.saturating_sub(RING as u64) {
            seq -= 1;
            let slot = self.slots[(seq % RING as u64) as usize].lock();
            if let Some(r) = slot.as_ref().filter(|r| r.seq == seq && &*r.id == id) {
                return (Some(r.row(detail.is_some())), detail);
            }
        }
        (None, detail)
    }

    /// The captured details of `tenant`, oldest first, with the output tokens and arrival time
    /// of their requests when the ring still has them.
    pub fn details_of(&self, tenant: &str) -> Vec<(Detail, Option<u64>)> {
        let details: Vec<Detail> = self
            .details
            .lock()
            .iter()
            .filter(|d| d.summary.tenant == tenant)
            .cloned()
            .collect();
        let mut outputs = std::collections::HashMap::new();
        self.read_from(0, |r| {
            if let Some(u) = r.usage {
                outputs.insert(r.id.clone(), u.completion_tokens);
            }
        });
        details
            .into_iter()
            .map(|d| {
                let out = outputs.get(&d.id).copied();
                (d, out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            seq: 0,
            id: id.into(),
            received_at: SystemTime::now(),
            api: "chat",
            tenant: Some("a".into()),
            policy: None,
            model: Some("m".into()),
            upstream: None,
            attempts: 1,
            attempt_list: Vec::new(),
            decision: None,
            stream: false,
            status: 200,
            usage: None,
            cost_usd: None,
            cost_estimated: false,
            saved_usd: None,
            cache: CacheOutcome::Bypass,
            tags: vec![("reason".into(), "cheap".into())],
            error: None,
            prompt: None,
            total: Duration::from_millis(3),
            first_byte: None,
            upstream_wait: Duration::ZERO,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_requests_and_says_what_it_missed() {
        let recent = Recent::default();
        for i in 0..(RING + 10) {
            recent.push(record(&format!("r{i}")));
        }
        assert_eq!(recent.next_seq(), RING as u64 + 10);
        let rows = recent.rows(3, |_| true);
        assert_eq!(rows[0]["id"], format!("r{}", RING + 9));
        assert_eq!(rows[0]["tags"][0][1], "cheap");
        let mut seen = 0;
        let (next, missed) = recent.read_from(0, |_| seen += 1);
        assert_eq!((next, missed, seen), (RING as u64 + 10, 10, RING));
        let (rows, next) = recent.rows_since(RING as u64 + 8, 100);
        assert_eq!((rows.len(), next), (2, RING as u64 + 10));
        assert!(recent.find("r5").0.is_none(), "overwritten");
        assert!(recent.find(&format!("r{}", RING + 1)).0.is_some());
    }

    #[test]
    fn details_are_captured_only_while_watched_and_without_the_prompt() {
        let recent = Recent::default();
        let mut summary = switchyard_policy::defaults::summary("r1", "a", "{}");
        summary.last_user_excerpt = "secret plans".into();
        assert!(recent.watch(&mut summary, false).is_none());
        let guard = recent.subscribe();
        let w = recent.watch(&mut summary, false).expect("watched");
        assert_eq!(
            summary.last_user_excerpt, "secret plans",
            "the policy's copy"
        );
        let policy = HeaderValue::from_static("p@123");
        w.decided(
            &policy,
            &Err(PolicyFailure::new(
                switchyard_policy::FailureKind::Trap,
                "boom",
            )),
        );
        let (_, detail) = recent.find("r1");
        let json = detail.expect("kept").to_json();
        assert!(!json.to_string().contains("secret plans"));
        assert_eq!(json["decision"]["failed"]["kind"], "trap");
        drop(guard);
        assert!(!recent.watching());
    }
}

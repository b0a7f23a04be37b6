//! What each request cost, and the one access-log line per request an operator greps for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method};

use crate::cache::CacheOutcome;
use crate::config::ModelInfo;
use crate::metrics::{Metrics, RequestLabels, TenantModelLabels, TokenLabels};
use crate::openai::usage::Usage;
use crate::upstream::relay::{StreamEnd, StreamOutcome};

/// USD for `usage` at `model`'s prices in force now (time-of-day windows included): cache-hit
/// input at the cache-hit price, the rest of the input at the miss price.
pub fn cost_usd(usage: &Usage, model: &ModelInfo) -> f64 {
    let price = model.prices_now();
    (usage.uncached_prompt_tokens() as f64 * price.input_usd_per_mtok
        + usage.cached_prompt_tokens as f64 * price.cached_input_usd_per_mtok
        + usage.completion_tokens as f64 * price.output_usd_per_mtok)
        / 1_000_000.0
}

/// Fields of one access-log line, filled in as the request moves through the pipeline. Emitted
/// once: when the response is sent, or for streams when the stream ends (or the client leaves).
/// Never holds a key or prompt text.
#[derive(Debug, Clone)]
pub struct AccessLog {
    pub request_id: Arc<str>,
    pub method: Method,
    pub path: String,
    pub started: Instant,
    pub tenant: Option<Arc<str>>,
    pub policy_header: Option<HeaderValue>,
    pub model: Option<String>,
    pub upstream: Option<Arc<str>>,
    pub attempts: usize,
    pub decision: Option<Duration>,
    pub stream: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    /// What a cache hit saved: the cost of the stored response at today's prices.
    pub saved_usd: Option<f64>,
    pub cache: CacheOutcome,
    pub tags: Vec<(String, String)>,
    pub error: Option<String>,
    /// The start of the last user message, only when `server.log_prompts` is on.
    pub prompt: Option<String>,
    /// When the response head (or a stream's first event) went out, from `started`.
    pub first_byte: Option<Duration>,
    /// Time spent waiting on upstreams before the first byte.
    pub upstream_wait: Duration,
    metrics: Arc<Metrics>,
    deferred: bool,
}

impl AccessLog {
    pub fn new(
        request_id: Arc<str>,
        method: Method,
        path: String,
        started: Instant,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.in_flight.inc();
        AccessLog {
            metrics,
            first_byte: None,
            upstream_wait: Duration::ZERO,
            request_id,
            method,
            path,
            started,
            tenant: None,
            policy_header: None,
            model: None,
            upstream: None,
            attempts: 0,
            decision: None,
            stream: false,
            status: 0,
            usage: None,
            cost_usd: None,
            saved_usd: None,
            cache: CacheOutcome::Bypass,
            tags: Vec::new(),
            error: None,
            prompt: None,
            deferred: false,
        }
    }

    /// Hands the line over to a stream that will emit it when it ends; this one stays silent.
    pub fn defer(&mut self) -> AccessLog {
        self.deferred = true;
        let mut copy = self.clone();
        copy.deferred = false;
        copy
    }

    /// Records what is known so far on the request's span.
    pub fn record_on(&self, span: &tracing::Span) {
        if let Some(t) = &self.tenant {
            span.record("tenant", &**t);
        }
        if let Some(p) = self.policy_header.as_ref().and_then(|h| h.to_str().ok()) {
            span.record("policy", p);
        }
        if let Some(m) = &self.model {
            span.record("model", m.as_str());
        }
        if let Some(d) = self.decision {
            span.record("decision_us", d.as_micros() as u64);
        }
        span.record("attempts", self.attempts);
        span.record("status", self.status);
        span.record("latency_ms", self.started.elapsed().as_secs_f64() * 1000.0);
    }

    /// Emits the line now unless a stream took it over.
    pub fn emit_unless_deferred(&self) {
        if !self.deferred {
            self.emit(None);
        }
    }

    /// Completes a streamed request's line with how the stream ended, and emits it.
    pub fn finish_stream(mut self, end: StreamEnd, price: Option<&ModelInfo>) {
        self.metrics.open_streams.dec();
        self.usage = end.usage;
        self.cost_usd = match (end.usage, price) {
            (Some(u), Some(p)) => Some(cost_usd(&u, p)),
            _ => None,
        };
        let outcome = match &end.outcome {
            StreamOutcome::Completed => "completed".to_owned(),
            StreamOutcome::ClientGone => "client-gone".to_owned(),
            StreamOutcome::Failed(reason) => {
                self.error = Some(reason.clone());
                "failed".to_owned()
            }
        };
        self.emit(Some((outcome, end.events)));
    }

    /// Records the request in the metrics; called once per request, with the log line.
    fn record_metrics(&self) {
        let m = &self.metrics;
        m.in_flight.dec();
        let tenant = self.tenant.as_deref().unwrap_or("-").to_owned();
        let model = self.model.clone().unwrap_or_else(|| "-".into());
        m.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.clone(),
                model: model.clone(),
                status: self.status,
                cache: self.cache.as_str(),
            })
            .inc();
        let total = self.started.elapsed();
        Metrics::observe(&m.request_seconds, &tenant, total);
        let first_byte = self.first_byte.unwrap_or(total);
        Metrics::observe(&m.first_byte_seconds, &tenant, first_byte);
        Metrics::observe(
            &m.added_latency_seconds,
            &tenant,
            first_byte.saturating_sub(self.upstream_wait),
        );
        if let Some(d) = self.decision {
            Metrics::observe(&m.decision_seconds, &tenant, d);
        }
        if let Some(u) = self.usage
            && self.cache != CacheOutcome::Hit
        {
            for (kind, n) in [
                ("input", u.uncached_prompt_tokens()),
                ("cached_input", u.cached_prompt_tokens),
                ("output", u.completion_tokens),
            ] {
                m.tokens
                    .get_or_create(&TokenLabels {
                        tenant: tenant.clone(),
                        model: model.clone(),
                        kind,
                    })
                    .inc_by(n);
            }
        }
        let labels = TenantModelLabels { tenant, model };
        if let Some(c) = self.cost_usd.filter(|c| *c > 0.0) {
            m.cost_usd.get_or_create(&labels).inc_by(c);
        }
        if let Some(s) = self.saved_usd.filter(|s| *s > 0.0) {
            m.saved_usd.get_or_create(&labels).inc_by(s);
        }
    }

    fn emit(&self, stream_end: Option<(String, u64)>) {
        self.record_metrics();
        let usage = self.usage.unwrap_or_default();
        let tags = self
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let (stream_outcome, events) = stream_end.unwrap_or_default();
        tracing::info!(
            target: "switchyard::access",
            request_id = %self.request_id,
            method = %self.method,
            path = %self.path,
            status = self.status,
            tenant = self.tenant.as_deref().unwrap_or("-"),
            policy = self.policy_header.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
            model = self.model.as_deref().unwrap_or("-"),
            upstream = self.upstream.as_deref().unwrap_or("-"),
            attempts = self.attempts,
            stream = self.stream,
            stream_outcome = %stream_outcome,
            stream_events = events,
            decision_us = self.decision.map_or(0, |d| d.as_micros() as u64),
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            prompt_tokens = usage.prompt_tokens,
            cached_prompt_tokens = usage.cached_prompt_tokens,
            completion_tokens = usage.completion_tokens,
            cost_usd = self.cost_usd.unwrap_or(0.0),
            saved_usd = self.saved_usd.unwrap_or(0.0),
            cache = self.cache.as_str(),
            tags = %tags,
            error = self.error.as_deref().unwrap_or(""),
            prompt = self.prompt.as_deref(),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_are_billed_at_the_cache_hit_price() {
        let flash = crate::config::builtin_models()
            .into_iter()
            .find(|m| m.name == "deepseek-v4-flash")
            .unwrap();
        let usage = Usage {
            prompt_tokens: 1_000_000,
            cached_prompt_tokens: 800_000,
            completion_tokens: 1_000_000,
        };
        // 200k misses at $0.14/M + 800k hits at $0.0028/M + 1M output at $0.28/M
        let expected = 0.2 * 0.14 + 0.8 * 0.0028 + 0.28;
        assert!((cost_usd(&usage, &flash) - expected).abs() < 1e-12);
    }
}
